package certs

import (
	"bytes"
	"crypto/tls"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func TestParseClientAuth(t *testing.T) {
	tests := []struct {
		in      string
		want    ClientAuth
		wantTLS tls.ClientAuthType
		wantErr bool
	}{
		{"none", ClientAuthNone, tls.NoClientCert, false},
		{"request", ClientAuthRequest, tls.VerifyClientCertIfGiven, false},
		{"require", ClientAuthRequire, tls.RequireAndVerifyClientCert, false},
		{"", 0, 0, true},
		{"Require", 0, 0, true},
		{"verify", 0, 0, true},
	}
	for _, tt := range tests {
		got, err := ParseClientAuth(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseClientAuth(%q): got err %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		var viaText ClientAuth
		textErr := viaText.UnmarshalText([]byte(tt.in))
		if (textErr != nil) != tt.wantErr || viaText != got {
			t.Errorf("UnmarshalText(%q): got (%v, %v), want (%v, error %v)", tt.in, viaText, textErr, got, tt.wantErr)
		}
		if tt.wantErr {
			continue
		}
		if got != tt.want || got.String() != tt.in || got.tlsClientAuth() != tt.wantTLS {
			t.Errorf("ParseClientAuth(%q): got %v (tls %v), want %v (tls %v)", tt.in, got, got.tlsClientAuth(), tt.want, tt.wantTLS)
		}
		if b, err := got.MarshalText(); err != nil || string(b) != tt.in {
			t.Errorf("MarshalText(%v): got (%q, %v), want %q", got, b, err, tt.in)
		}
	}
}

// TestServerConfigSettings checks the fields of the returned configuration
// and of the per-connection configuration grpc-go actually uses.
func TestServerConfigSettings(t *testing.T) {
	ca := newTestCA(t, "test CA")
	srvLeaf := ca.server(t)
	tests := []struct {
		mode    ClientAuth
		wantTLS tls.ClientAuthType
	}{
		{ClientAuthNone, tls.NoClientCert},
		{ClientAuthRequest, tls.VerifyClientCertIfGiven},
		{ClientAuthRequire, tls.RequireAndVerifyClientCert},
	}
	for _, tt := range tests {
		t.Run(tt.mode.String(), func(t *testing.T) {
			opts := serverFiles(t, srvLeaf, ca.certPEM)
			opts.ClientAuth = tt.mode
			cfg, r, err := ServerConfig(opts)
			if err != nil {
				t.Fatalf("ServerConfig: %v", err)
			}
			defer r.Close()
			conn, err := cfg.GetConfigForClient(&tls.ClientHelloInfo{})
			if err != nil {
				t.Fatalf("GetConfigForClient: %v", err)
			}
			for name, c := range map[string]*tls.Config{"returned": cfg, "per-connection": conn} {
				if c.MinVersion != tls.VersionTLS13 {
					t.Errorf("%s MinVersion: got %#x, want TLS 1.3", name, c.MinVersion)
				}
				if len(c.NextProtos) != 1 || c.NextProtos[0] != "h2" {
					t.Errorf("%s NextProtos: got %q, want [h2]", name, c.NextProtos)
				}
				if c.ClientAuth != tt.wantTLS {
					t.Errorf("%s ClientAuth: got %v, want %v", name, c.ClientAuth, tt.wantTLS)
				}
				if !c.SessionTicketsDisabled {
					t.Errorf("%s SessionTicketsDisabled: got false, want true", name)
				}
			}
			if got, want := conn.ClientCAs != nil, tt.mode != ClientAuthNone; got != want {
				t.Errorf("per-connection ClientCAs set: got %v, want %v", got, want)
			}
			if got := len(r.ClientCAs()); got != map[bool]int{true: 1, false: 0}[tt.mode != ClientAuthNone] {
				t.Errorf("ClientCAs: got %d certificates", got)
			}
			if got := r.Certificates(); len(got) != 1 || got[0].SerialNumber.Cmp(srvLeaf.cert.SerialNumber) != 0 {
				t.Errorf("Certificates: got %v, want the server leaf", got)
			}
			if got, want := r.NotAfter(), srvLeaf.cert.NotAfter; !got.Equal(want) {
				t.Errorf("NotAfter: got %v, want %v", got, want)
			}
			// credentials.NewTLS re-applies its defaults to the
			// per-connection configuration; TLS 1.3 must survive that.
			if got := credentials.NewTLS(cfg).Info().SecurityProtocol; got != "tls" {
				t.Errorf("credentials.NewTLS: security protocol %q, want tls", got)
			}
		})
	}
}

// TestServerConfigErrors checks that bad options and bad files fail at
// start-up instead of producing a server that cannot handshake.
func TestServerConfigErrors(t *testing.T) {
	ca := newTestCA(t, "test CA")
	other := newTestCA(t, "other CA")
	good := ca.server(t)
	second := ca.server(t)
	expired := ca.issue(t, IssueRequest{Kind: KindServer, DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-2 * time.Hour), Lifetime: time.Hour})

	tests := []struct {
		name string
		edit func(t *testing.T, o *ServerOptions)
		want string // substring of the error
	}{
		{"no certificate file", func(_ *testing.T, o *ServerOptions) { o.CertFile = "" }, "required"},
		{"no key file", func(_ *testing.T, o *ServerOptions) { o.KeyFile = "" }, "required"},
		{"missing certificate file", func(_ *testing.T, o *ServerOptions) { o.CertFile += ".missing" }, "no such file"},
		{"require without client CA", func(_ *testing.T, o *ServerOptions) { o.ClientAuth, o.ClientCAFile = ClientAuthRequire, "" }, "client CA"},
		{"request without client CA", func(_ *testing.T, o *ServerOptions) { o.ClientAuth, o.ClientCAFile = ClientAuthRequest, "" }, "client CA"},
		{"invalid client auth", func(_ *testing.T, o *ServerOptions) { o.ClientAuth = 7 }, "client auth"},
		{"negative refresh interval", func(_ *testing.T, o *ServerOptions) { o.RefreshInterval = -time.Second }, "refresh"},
		{"truncated certificate", func(t *testing.T, o *ServerOptions) {
			writeInPlace(t, o.CertFile, good.certPEM[:len(good.certPEM)/2])
		}, "truncated"},
		{"truncated key", func(t *testing.T, o *ServerOptions) {
			writeInPlace(t, o.KeyFile, good.keyPEM[:len(good.keyPEM)-20])
		}, "key"},
		{"key of another certificate", func(t *testing.T, o *ServerOptions) { writeInPlace(t, o.KeyFile, second.keyPEM) }, "private key does not match"},
		{"key file holds a certificate", func(t *testing.T, o *ServerOptions) { writeInPlace(t, o.KeyFile, good.certPEM) }, "key"},
		{"expired certificate", func(t *testing.T, o *ServerOptions) {
			writeInPlace(t, o.CertFile, expired.certPEM)
			writeInPlace(t, o.KeyFile, expired.keyPEM)
		}, "expired"},
		{"truncated client CA bundle", func(t *testing.T, o *ServerOptions) {
			writeInPlace(t, o.ClientCAFile, append(append([]byte{}, ca.certPEM...), other.certPEM[:40]...))
		}, "truncated"},
		{"client CA bundle of keys", func(t *testing.T, o *ServerOptions) { writeInPlace(t, o.ClientCAFile, ca.keyPEM) }, "CERTIFICATE"},
		{"oversized certificate file", func(t *testing.T, o *ServerOptions) {
			writeInPlace(t, o.CertFile, bytes.Repeat(good.certPEM, maxPEMFileSize/len(good.certPEM)+1))
		}, "larger"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := serverFiles(t, good, ca.certPEM)
			o.ClientAuth = ClientAuthRequire
			tt.edit(t, &o)
			cfg, r, err := ServerConfig(o)
			if err == nil {
				r.Close()
				t.Fatalf("ServerConfig: got config %p, want an error containing %q", cfg, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ServerConfig: got error %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestReloaderKeepsLastGoodMaterial changes the files one way or another,
// forces checks, and looks at the material in use and at the log.
func TestReloaderKeepsLastGoodMaterial(t *testing.T) {
	ca := newTestCA(t, "test CA")
	other := newTestCA(t, "other CA")
	first := ca.server(t)
	second := ca.server(t)
	expired := ca.issue(t, IssueRequest{Kind: KindServer, DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-2 * time.Hour), Lifetime: time.Hour})
	twoCAs := append(append([]byte{}, ca.certPEM...), other.certPEM...)

	tests := []struct {
		name       string
		edit       func(t *testing.T, o ServerOptions)
		wantSerial *big.Int
		wantCAs    int
		wantErrors int // ERROR records after several checks
		wantInfos  int
	}{
		{"unchanged files", func(*testing.T, ServerOptions) {}, first.cert.SerialNumber, 1, 0, 0},
		{"new certificate and key", func(t *testing.T, o ServerOptions) {
			writeAtomic(t, o.KeyFile, second.keyPEM)
			writeAtomic(t, o.CertFile, second.certPEM)
		}, second.cert.SerialNumber, 1, 0, 1},
		{"new certificate, old key (half-done rotation)", func(t *testing.T, o ServerOptions) {
			writeAtomic(t, o.CertFile, second.certPEM)
		}, first.cert.SerialNumber, 1, 1, 0},
		{"truncated certificate", func(t *testing.T, o ServerOptions) {
			writeInPlace(t, o.CertFile, second.certPEM[:len(second.certPEM)-30])
			writeInPlace(t, o.KeyFile, second.keyPEM)
		}, first.cert.SerialNumber, 1, 1, 0},
		{"truncated key", func(t *testing.T, o ServerOptions) {
			writeInPlace(t, o.CertFile, second.certPEM)
			writeInPlace(t, o.KeyFile, second.keyPEM[:len(second.keyPEM)/2])
		}, first.cert.SerialNumber, 1, 1, 0},
		{"empty certificate file", func(t *testing.T, o ServerOptions) { writeInPlace(t, o.CertFile, nil) }, first.cert.SerialNumber, 1, 1, 0},
		{"expired certificate", func(t *testing.T, o ServerOptions) {
			writeAtomic(t, o.KeyFile, expired.keyPEM)
			writeAtomic(t, o.CertFile, expired.certPEM)
		}, first.cert.SerialNumber, 1, 1, 0},
		{"certificate file removed", func(t *testing.T, o ServerOptions) {
			if err := os.Remove(o.CertFile); err != nil {
				t.Fatal(err)
			}
		}, first.cert.SerialNumber, 1, 1, 0},
		{"new CA bundle", func(t *testing.T, o ServerOptions) { writeAtomic(t, o.ClientCAFile, twoCAs) },
			first.cert.SerialNumber, 2, 0, 1},
		{"truncated CA bundle", func(t *testing.T, o ServerOptions) { writeInPlace(t, o.ClientCAFile, twoCAs[:len(twoCAs)-50]) },
			first.cert.SerialNumber, 1, 1, 0},
		{"CA bundle file removed", func(t *testing.T, o ServerOptions) {
			if err := os.Remove(o.ClientCAFile); err != nil {
				t.Fatal(err)
			}
		}, first.cert.SerialNumber, 1, 1, 0},
		{"bad certificate and bad CA bundle", func(t *testing.T, o ServerOptions) {
			writeInPlace(t, o.CertFile, []byte("garbage"))
			writeInPlace(t, o.ClientCAFile, []byte("garbage"))
		}, first.cert.SerialNumber, 1, 2, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := &logRecorder{}
			o := serverFiles(t, first, ca.certPEM)
			o.ClientAuth = ClientAuthRequire
			o.RefreshInterval = time.Hour // only reloadNow checks
			o.Logger = slog.New(logs)
			cfg, r, err := ServerConfig(o)
			if err != nil {
				t.Fatalf("ServerConfig: %v", err)
			}
			defer r.Close()
			tt.edit(t, o)
			for range 3 {
				r.reloadNow()
			}
			if got := r.Certificates()[0].SerialNumber; got.Cmp(tt.wantSerial) != 0 {
				t.Errorf("serial in use: got %x, want %x", got, tt.wantSerial)
			}
			conn, err := cfg.GetConfigForClient(&tls.ClientHelloInfo{})
			if err != nil {
				t.Fatal(err)
			}
			if got := conn.Certificates[0].Leaf.SerialNumber; got.Cmp(tt.wantSerial) != 0 {
				t.Errorf("serial handed to handshakes: got %x, want %x", got, tt.wantSerial)
			}
			if got := len(r.ClientCAs()); got != tt.wantCAs {
				t.Errorf("client CAs in use: got %d, want %d", got, tt.wantCAs)
			}
			if got := logs.count(slog.LevelError); got != tt.wantErrors {
				t.Errorf("ERROR records after 3 checks: got %d, want %d\n%s", got, tt.wantErrors, logs.text())
			}
			if got := logs.count(slog.LevelInfo); got != tt.wantInfos {
				t.Errorf("INFO records after 3 checks: got %d, want %d\n%s", got, tt.wantInfos, logs.text())
			}
			if text := logs.text(); strings.Contains(text, "PRIVATE KEY") || strings.Contains(text, "BEGIN") {
				t.Errorf("log holds PEM content:\n%s", text)
			}
		})
	}
}

// TestReloaderRefreshInterval checks that files are not read again before
// the refresh interval has passed, and are after it.
func TestReloaderRefreshInterval(t *testing.T) {
	ca := newTestCA(t, "test CA")
	first, second := ca.server(t), ca.server(t)
	tests := []struct {
		name     string
		interval time.Duration
		want     *big.Int
	}{
		{"interval not over", time.Hour, first.cert.SerialNumber},
		{"interval over", time.Nanosecond, second.cert.SerialNumber},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := serverFiles(t, first, nil)
			o.RefreshInterval = tt.interval
			_, r, err := ServerConfig(o)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			writeAtomic(t, o.KeyFile, second.keyPEM)
			writeAtomic(t, o.CertFile, second.certPEM)
			ok := poll(func() bool { return r.Certificates()[0].SerialNumber.Cmp(tt.want) == 0 })
			if !ok {
				t.Fatalf("serial in use: got %x, want %x", r.Certificates()[0].SerialNumber, tt.want)
			}
			// Once seen, the outcome must not change.
			if got := r.Certificates()[0].SerialNumber; got.Cmp(tt.want) != 0 {
				t.Errorf("serial in use: got %x, want %x", got, tt.want)
			}
		})
	}
}

// TestReloaderClose checks that a closed Reloader keeps serving the last
// material and stops reading files.
func TestReloaderClose(t *testing.T) {
	ca := newTestCA(t, "test CA")
	first, second := ca.server(t), ca.server(t)
	o := serverFiles(t, first, nil)
	o.RefreshInterval = time.Nanosecond
	_, r, err := ServerConfig(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	writeAtomic(t, o.KeyFile, second.keyPEM)
	writeAtomic(t, o.CertFile, second.certPEM)
	r.reloadNow()
	if got := r.Certificates()[0].SerialNumber; got.Cmp(first.cert.SerialNumber) != 0 {
		t.Errorf("serial after Close: got %x, want %x", got, first.cert.SerialNumber)
	}
}

// TestRotationOverTheWire rotates the server certificate under a running
// grpc server (RELIABILITY.md T5): new connections see the new certificate
// within the refresh interval, an open connection and its stream keep
// working, and a truncated file does not replace the last good certificate.
func TestRotationOverTheWire(t *testing.T) {
	ca := newTestCA(t, "test CA")
	first, second, third := ca.server(t), ca.server(t), ca.server(t)
	client := ca.issue(t, IssueRequest{Kind: KindClient, CommonName: "alice", Lifetime: time.Hour})

	logs := &logRecorder{}
	o := serverFiles(t, first, ca.certPEM)
	o.ClientAuth = ClientAuthRequire
	o.RefreshInterval = 50 * time.Millisecond
	o.Logger = slog.New(logs)
	cfg, r, err := ServerConfig(o)
	if err != nil {
		t.Fatalf("ServerConfig: %v", err)
	}
	defer r.Close()
	srv := startServer(t, cfg)
	creds := credentials.NewTLS(clientTLS(t, ca, &client))
	ctx := testContext(t)

	// serialOfNewConnection opens a new connection, makes one call and
	// returns the server serial it saw.
	serialOfNewConnection := func() *big.Int {
		t.Helper()
		conn := dial(t, srv.addr, creds)
		defer conn.Close()
		s, err := check(ctx, conn)
		if err != nil {
			t.Fatalf("Check on a new connection: %v", err)
		}
		return s
	}

	old := dial(t, srv.addr, creds)
	if s, err := check(ctx, old); err != nil || s.Cmp(first.cert.SerialNumber) != 0 {
		t.Fatalf("first connection: got serial %x, err %v; want %x", s, err, first.cert.SerialNumber)
	}
	watch, err := healthpb.NewHealthClient(old).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	if m, err := watch.Recv(); err != nil || m.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Watch first message: got %v, %v; want SERVING", m, err)
	}

	// Rotate: key first, then certificate, each by rename.
	writeAtomic(t, o.KeyFile, second.keyPEM)
	writeAtomic(t, o.CertFile, second.certPEM)
	if !poll(func() bool { return serialOfNewConnection().Cmp(second.cert.SerialNumber) == 0 }) {
		t.Fatalf("new connections did not get serial %x within 10 s", second.cert.SerialNumber)
	}

	// The old connection and its stream are unaffected.
	if s, err := check(ctx, old); err != nil || s.Cmp(first.cert.SerialNumber) != 0 {
		t.Errorf("old connection after rotation: got serial %x, err %v; want %x", s, err, first.cert.SerialNumber)
	}
	srv.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	if m, err := watch.Recv(); err != nil || m.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("Watch after rotation: got %v, %v; want NOT_SERVING", m, err)
	}

	// A truncated certificate is logged once and the last good one stays.
	writeInPlace(t, o.CertFile, third.certPEM[:len(third.certPEM)/2])
	if !poll(func() bool { r.Certificates(); return logs.count(slog.LevelError) > 0 }) {
		t.Fatalf("no ERROR logged for a truncated certificate within 10 s:\n%s", logs.text())
	}
	for range 3 {
		if got := serialOfNewConnection(); got.Cmp(second.cert.SerialNumber) != 0 {
			t.Fatalf("new connection after a truncated write: got serial %x, want the last good %x", got, second.cert.SerialNumber)
		}
		r.reloadNow()
	}
	if got := logs.count(slog.LevelError); got != 1 {
		t.Errorf("ERROR records for one bad file: got %d, want 1\n%s", got, logs.text())
	}

	// Finishing the write makes the third certificate current.
	writeInPlace(t, o.KeyFile, third.keyPEM)
	writeInPlace(t, o.CertFile, third.certPEM)
	if !poll(func() bool { return serialOfNewConnection().Cmp(third.cert.SerialNumber) == 0 }) {
		t.Fatalf("new connections did not get serial %x within 10 s", third.cert.SerialNumber)
	}
	if s, err := check(ctx, old); err != nil || s.Cmp(first.cert.SerialNumber) != 0 {
		t.Errorf("old connection at the end: got serial %x, err %v; want %x", s, err, first.cert.SerialNumber)
	}
}

// TestClientCARotation adds a CA to the client CA bundle of a running
// server: a client of the new CA is refused before and accepted after.
func TestClientCARotation(t *testing.T) {
	ca := newTestCA(t, "test CA")
	next := newTestCA(t, "next CA")
	nextClient := next.issue(t, IssueRequest{Kind: KindClient, CommonName: "carol", Lifetime: time.Hour})

	o := serverFiles(t, ca.server(t), ca.certPEM)
	o.ClientAuth = ClientAuthRequire
	o.RefreshInterval = 50 * time.Millisecond
	cfg, r, err := ServerConfig(o)
	if err != nil {
		t.Fatalf("ServerConfig: %v", err)
	}
	defer r.Close()
	srv := startServer(t, cfg)
	creds := credentials.NewTLS(clientTLS(t, ca, &nextClient))
	ctx := testContext(t)
	attempt := func() error {
		conn := dial(t, srv.addr, creds)
		defer conn.Close()
		_, err := check(ctx, conn)
		return err
	}
	if err := attempt(); err == nil {
		t.Fatal("client of a CA not in the bundle: got OK, want a failure")
	}
	writeAtomic(t, filepath.Clean(o.ClientCAFile), append(append([]byte{}, ca.certPEM...), next.certPEM...))
	if !poll(func() bool { return attempt() == nil }) {
		t.Fatalf("client of the added CA still refused after 10 s: %v", attempt())
	}
	if got := srv.lastCall().identity; got != "x509-cn:carol" {
		t.Errorf("identity: got %q, want x509-cn:carol", got)
	}
}
