package certs

import (
	"crypto/tls"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// TestHandshakeMatrix runs real handshakes against real grpc servers built
// with ServerConfig, one per client auth policy (RELIABILITY.md T1, T3).
func TestHandshakeMatrix(t *testing.T) {
	ca := newTestCA(t, "test CA")
	other := newTestCA(t, "unknown CA")
	srvLeaf := ca.server(t)

	spiffe := "spiffe://greeter.local/user/alice"
	goodClient := ca.issue(t, IssueRequest{Kind: KindClient, CommonName: "alice", URIs: []string{spiffe}, Lifetime: time.Hour})
	dnsClient := ca.issue(t, IssueRequest{Kind: KindClient, CommonName: "ignored", DNSNames: []string{"billing.greeter.internal"}, Lifetime: time.Hour})
	cnClient := ca.issue(t, IssueRequest{Kind: KindClient, CommonName: "bob", Lifetime: time.Hour})
	unknownCAClient := other.issue(t, IssueRequest{Kind: KindClient, CommonName: "mallory", Lifetime: time.Hour})
	expiredClient := ca.issue(t, IssueRequest{Kind: KindClient, CommonName: "old",
		NotBefore: time.Now().Add(-48 * time.Hour), Lifetime: 24 * time.Hour})
	serverAuthOnly := ca.issue(t, IssueRequest{Kind: KindServer, CommonName: "svc", DNSNames: []string{"svc.greeter.internal"}, Lifetime: time.Hour})

	servers := map[ClientAuth]*testServer{}
	for _, mode := range []ClientAuth{ClientAuthNone, ClientAuthRequest, ClientAuthRequire} {
		opts := serverFiles(t, srvLeaf, ca.certPEM)
		opts.ClientAuth = mode
		cfg, r, err := ServerConfig(opts)
		if err != nil {
			t.Fatalf("ServerConfig(%v): %v", mode, err)
		}
		t.Cleanup(func() { r.Close() })
		servers[mode] = startServer(t, cfg)
	}

	tlsCreds := func(cert *leaf, edit func(*tls.Config)) func(t *testing.T) credentials.TransportCredentials {
		return func(t *testing.T) credentials.TransportCredentials {
			cfg := clientTLS(t, ca, cert)
			if edit != nil {
				edit(cfg)
			}
			return credentials.NewTLS(cfg)
		}
	}
	plaintext := func(*testing.T) credentials.TransportCredentials { return insecure.NewCredentials() }
	tls12Only := func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS12, tls.VersionTLS12 }
	wrongName := func(c *tls.Config) { c.ServerName = "wrong.example" }
	// offerOnlyIfAccepted lets crypto/tls choose: it offers a certificate
	// only if its issuer is among the server's acceptable CAs.
	offerOnlyIfAccepted := func(l leaf) func(*tls.Config) {
		return func(c *tls.Config) {
			c.GetClientCertificate = nil
			c.Certificates = []tls.Certificate{l.tlsCertificate(t)}
		}
	}

	tests := []struct {
		name         string
		mode         ClientAuth
		creds        func(*testing.T) credentials.TransportCredentials
		wantCode     codes.Code
		wantIdentity string // checked when wantCode is OK; "" means none
	}{
		{"require/plaintext client", ClientAuthRequire, plaintext, codes.Unavailable, ""},
		{"none/plaintext client", ClientAuthNone, plaintext, codes.Unavailable, ""},
		{"require/TLS 1.2 only client", ClientAuthRequire, tlsCreds(&goodClient, tls12Only), codes.Unavailable, ""},
		{"none/TLS 1.2 only client", ClientAuthNone, tlsCreds(nil, tls12Only), codes.Unavailable, ""},
		{"require/no client certificate", ClientAuthRequire, tlsCreds(nil, nil), codes.Unavailable, ""},
		{"require/client certificate from unknown CA", ClientAuthRequire, tlsCreds(&unknownCAClient, nil), codes.Unavailable, ""},
		{"require/expired client certificate", ClientAuthRequire, tlsCreds(&expiredClient, nil), codes.Unavailable, ""},
		{"require/client certificate with serverAuth EKU only", ClientAuthRequire, tlsCreds(&serverAuthOnly, nil), codes.Unavailable, ""},
		{"require/wrong server name", ClientAuthRequire, tlsCreds(&goodClient, wrongName), codes.Unavailable, ""},
		{"request/client certificate from unknown CA", ClientAuthRequest, tlsCreds(&unknownCAClient, nil), codes.Unavailable, ""},
		{"request/expired client certificate", ClientAuthRequest, tlsCreds(&expiredClient, nil), codes.Unavailable, ""},
		{"none/wrong server name", ClientAuthNone, tlsCreds(nil, wrongName), codes.Unavailable, ""},

		{"require/good client certificate (URI SAN)", ClientAuthRequire, tlsCreds(&goodClient, nil), codes.OK, "x509-uri:" + spiffe},
		{"require/good client certificate (DNS SAN)", ClientAuthRequire, tlsCreds(&dnsClient, nil), codes.OK, "x509-dns:billing.greeter.internal"},
		{"require/good client certificate (CN only)", ClientAuthRequire, tlsCreds(&cnClient, nil), codes.OK, "x509-cn:bob"},
		{"request/good client certificate", ClientAuthRequest, tlsCreds(&goodClient, nil), codes.OK, "x509-uri:" + spiffe},
		{"request/unknown-CA certificate left out by the client", ClientAuthRequest, tlsCreds(nil, offerOnlyIfAccepted(unknownCAClient)), codes.OK, ""},
		{"request/no client certificate", ClientAuthRequest, tlsCreds(nil, nil), codes.OK, ""},
		{"none/no client certificate", ClientAuthNone, tlsCreds(nil, nil), codes.OK, ""},
		{"none/client certificate is not asked for", ClientAuthNone, tlsCreds(&goodClient, nil), codes.OK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := servers[tt.mode]
			before := srv.calls.Load()
			conn := dial(t, srv.addr, tt.creds(t))
			serial, err := check(testContext(t), conn)
			if got := status.Code(err); got != tt.wantCode {
				t.Fatalf("Check: got code %v (%v), want %v", got, err, tt.wantCode)
			}
			wantCalls := int64(0)
			if tt.wantCode == codes.OK {
				wantCalls = 1
			}
			if got := srv.calls.Load() - before; got != wantCalls {
				t.Errorf("handler invocations: got %d, want %d", got, wantCalls)
			}
			if tt.wantCode != codes.OK {
				return
			}
			if serial == nil || serial.Cmp(srvLeaf.cert.SerialNumber) != 0 {
				t.Errorf("server certificate serial: got %v, want %v", serial, srvLeaf.cert.SerialNumber)
			}
			c := srv.lastCall()
			if c.identity != tt.wantIdentity || c.identityOK != (tt.wantIdentity != "") {
				t.Errorf("PeerCertificate identity: got (%q, %v), want (%q, %v)", c.identity, c.identityOK, tt.wantIdentity, tt.wantIdentity != "")
			}
		})
	}
}

// TestPeerCertificateIgnoresUnverifiedCertificate shows over a real handshake
// that a certificate the client presented but nobody verified (a server
// using tls.RequestClientCert) names no one.
func TestPeerCertificateIgnoresUnverifiedCertificate(t *testing.T) {
	ca := newTestCA(t, "test CA")
	other := newTestCA(t, "unknown CA")
	srvLeaf := ca.server(t)
	self := other.issue(t, IssueRequest{Kind: KindClient, CommonName: "mallory", URIs: []string{"spiffe://greeter.local/user/admin"}})

	srv := startServer(t, &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{srvLeaf.tlsCertificate(t)},
		ClientAuth:   tls.RequestClientCert,
	})
	conn := dial(t, srv.addr, credentials.NewTLS(clientTLS(t, ca, &self)))
	if _, err := check(testContext(t), conn); err != nil {
		t.Fatalf("Check: %v", err)
	}
	c := srv.lastCall()
	if c.peerCerts != 1 {
		t.Fatalf("peer certificates seen by the server: got %d, want 1", c.peerCerts)
	}
	if c.identity != "" || c.identityOK {
		t.Errorf("PeerCertificate of an unverified certificate: got (%q, %v), want (\"\", false)", c.identity, c.identityOK)
	}
}

// TestServerRejectsClientsWithoutH2 checks RELIABILITY.md T2 with raw TLS
// connections: a client that offers no ALPN, or only http/1.1, gets no
// gRPC service.
func TestServerRejectsClientsWithoutH2(t *testing.T) {
	ca := newTestCA(t, "test CA")
	opts := serverFiles(t, ca.server(t), nil)
	cfg, r, err := ServerConfig(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	srv := startServer(t, cfg)

	tests := []struct {
		name       string
		nextProtos []string
	}{
		{"no ALPN", nil},
		{"http/1.1 only", []string{"http/1.1"}},
		{"h2c only", []string{"h2c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ccfg := clientTLS(t, ca, nil)
			ccfg.NextProtos = tt.nextProtos
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", srv.addr, ccfg)
			if err != nil {
				return // the server refused the handshake: no_application_protocol
			}
			defer conn.Close()
			// The handshake succeeded without ALPN; grpc must close the
			// connection instead of speaking HTTP/2 on it.
			if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
				t.Fatal(err)
			}
			var buf [64]byte
			n, err := conn.Read(buf[:])
			if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("Read after handshake without h2: got %d bytes, err %v; want the server to close the connection", n, err)
			}
		})
	}
	if got := srv.calls.Load(); got != 0 {
		t.Errorf("handler invocations: got %d, want 0", got)
	}
}
