package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testCA is a CA made for one test.
type testCA struct {
	certPEM, keyPEM []byte
	cert            *x509.Certificate
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	certPEM, keyPEM, err := newCA(name, time.Now(), 2*DefaultLeafLifetime)
	if err != nil {
		t.Fatalf("newCA: %v", err)
	}
	ca, _, err := parseCA(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("parseCA: %v", err)
	}
	return &testCA{certPEM: certPEM, keyPEM: keyPEM, cert: ca}
}

// leaf is an issued certificate and key.
type leaf struct {
	certPEM, keyPEM []byte
	cert            *x509.Certificate
}

func (ca *testCA) issue(t *testing.T, req IssueRequest) leaf {
	t.Helper()
	certPEM, keyPEM, err := Issue(ca.certPEM, ca.keyPEM, req)
	if err != nil {
		t.Fatalf("Issue(%+v): %v", req, err)
	}
	chain, err := parseCertificatesPEM(certPEM)
	if err != nil {
		t.Fatalf("parse issued certificate: %v", err)
	}
	return leaf{certPEM: certPEM, keyPEM: keyPEM, cert: chain[0]}
}

// server issues a localhost server certificate.
func (ca *testCA) server(t *testing.T) leaf {
	t.Helper()
	return ca.issue(t, IssueRequest{
		Kind:        KindServer,
		DNSNames:    []string{"localhost"},
		IPAddresses: []netip.Addr{netip.MustParseAddr("127.0.0.1")},
		Lifetime:    time.Hour,
	})
}

func (l leaf) tlsCertificate(t *testing.T) tls.Certificate {
	t.Helper()
	c, err := tls.X509KeyPair(l.certPEM, l.keyPEM)
	if err != nil {
		t.Fatalf("X509KeyPair: %v", err)
	}
	return c
}

// writeAtomic replaces path the way a careful rotation tool does.
func writeAtomic(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// writeInPlace overwrites path without a rename, as a careless tool does.
func writeInPlace(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// serverFiles writes a server pair and an optional CA bundle into a new
// directory and returns ServerOptions for them.
func serverFiles(t *testing.T, srv leaf, caBundle []byte) ServerOptions {
	t.Helper()
	dir := t.TempDir()
	o := ServerOptions{
		CertFile: filepath.Join(dir, "server.pem"),
		KeyFile:  filepath.Join(dir, "server-key.pem"),
	}
	writeAtomic(t, o.CertFile, srv.certPEM)
	writeAtomic(t, o.KeyFile, srv.keyPEM)
	if caBundle != nil {
		o.ClientCAFile = filepath.Join(dir, "client-ca.pem")
		writeAtomic(t, o.ClientCAFile, caBundle)
	}
	return o
}

// logRecorder is a slog.Handler that keeps every record.
type logRecorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logRecorder) WithGroup(string) slog.Handler            { return h }

func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r.Clone())
	return nil
}

// count returns how many records have level.
func (h *logRecorder) count(level slog.Level) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range h.records {
		if r.Level == level {
			n++
		}
	}
	return n
}

// text renders every record, for assertions on what was logged.
func (h *logRecorder) text() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var b strings.Builder
	for _, r := range h.records {
		b.WriteString(r.Message)
		r.Attrs(func(a slog.Attr) bool {
			b.WriteString(" " + a.String())
			return true
		})
		b.WriteString("\n")
	}
	return b.String()
}

// poll calls cond every 20 ms until it returns true or 10 s have passed,
// and reports whether it returned true.
func poll(cond func() bool) bool {
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
}

// call is what the server saw of one RPC.
type call struct {
	identity   string
	identityOK bool
	peerCerts  int
}

// testServer is a real grpc server with the health service on loopback.
type testServer struct {
	addr   string
	health *health.Server
	calls  atomic.Int64

	mu   sync.Mutex
	last call
}

func (s *testServer) record(ctx context.Context) {
	c := call{}
	if leaf, ok := PeerCertificate(ctx); ok {
		c.identity = firstKey(leaf)
		c.identityOK = c.identity != ""
	}
	if p, ok := peer.FromContext(ctx); ok {
		if info, ok := p.AuthInfo.(credentials.TLSInfo); ok {
			c.peerCerts = len(info.State.PeerCertificates)
		}
	}
	s.mu.Lock()
	s.last = c
	s.mu.Unlock()
	s.calls.Add(1)
}

func (s *testServer) lastCall() call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// startServer serves the health service with cfg on 127.0.0.1:0 until the
// test ends. Interceptors count handler invocations and record the caller.
func startServer(t *testing.T, cfg *tls.Config) *testServer {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{addr: lis.Addr().String(), health: health.NewServer()}
	srv := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(cfg)),
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			ts.record(ctx)
			return h(ctx, req)
		}),
		grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			ts.record(ss.Context())
			return h(srv, ss)
		}),
	)
	healthpb.RegisterHealthServer(srv, ts.health)
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(lis)
	}()
	t.Cleanup(func() {
		ts.health.Shutdown()
		srv.Stop()
		<-done
	})
	return ts
}

// dial returns a client connection to addr that the test closes.
func dial(t *testing.T, addr string, creds credentials.TransportCredentials) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// check makes one health Check call and returns the server's leaf serial
// as the client saw it.
func check(ctx context.Context, conn *grpc.ClientConn) (*big.Int, error) {
	var p peer.Peer
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p)); err != nil {
		return nil, err
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 {
		return nil, nil
	}
	return info.State.PeerCertificates[0].SerialNumber, nil
}

// clientTLS returns a TLS 1.3 client configuration trusting ca, presenting
// cert if it is not nil. The certificate is sent whatever CAs the server
// names as acceptable (crypto/tls would otherwise silently leave out a
// certificate of another CA), so that the server's verification is tested.
func clientTLS(t *testing.T, ca *testCA, cert *leaf) *tls.Config {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool}
	if cert != nil {
		c := cert.tlsCertificate(t)
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &c, nil }
	}
	return cfg
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}
