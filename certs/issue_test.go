package certs

import (
	"crypto/x509"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseKind(t *testing.T) {
	tests := []struct {
		in      string
		want    Kind
		wantErr bool
	}{
		{"server", KindServer, false},
		{"client", KindClient, false},
		{"", 0, true},
		{"Server", 0, true},
		{"ca", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseKind(tt.in)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("ParseKind(%q): got (%v, %v), want (%v, error %v)", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err == nil && got.String() != tt.in {
			t.Errorf("Kind(%d).String(): got %q, want %q", got, got.String(), tt.in)
		}
	}
}

func TestIssue(t *testing.T) {
	ca := newTestCA(t, "test CA")
	notBefore := time.Now().Add(-time.Hour).Truncate(time.Second)
	tests := []struct {
		name     string
		req      IssueRequest
		eku      x509.ExtKeyUsage
		verifyAs string // DNS name or IP to verify a server certificate for
		identity string
	}{
		{"server", IssueRequest{
			Kind: KindServer, DNSNames: []string{"localhost", "*.greeter.internal"},
			IPAddresses: []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")},
		}, x509.ExtKeyUsageServerAuth, "::1", "x509-dns:localhost"},
		{"server by wildcard", IssueRequest{Kind: KindServer, DNSNames: []string{"*.greeter.internal"}},
			x509.ExtKeyUsageServerAuth, "files.greeter.internal", "x509-dns:*.greeter.internal"},
		{"SPIFFE client", IssueRequest{Kind: KindClient, CommonName: "alice", URIs: []string{"spiffe://greeter.local/user/alice"}},
			x509.ExtKeyUsageClientAuth, "", "x509-uri:spiffe://greeter.local/user/alice"},
		{"client by common name", IssueRequest{Kind: KindClient, CommonName: "bob", NotBefore: notBefore, Lifetime: 2 * time.Hour},
			x509.ExtKeyUsageClientAuth, "", "x509-cn:bob"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := ca.issue(t, tt.req), ca.issue(t, tt.req)
			if a.cert.SerialNumber.Cmp(b.cert.SerialNumber) == 0 {
				t.Errorf("two certificates share serial %x", a.cert.SerialNumber)
			}
			c := a.cert
			roots := x509.NewCertPool()
			roots.AddCert(ca.cert)
			if _, err := c.Verify(x509.VerifyOptions{Roots: roots, DNSName: tt.verifyAs, KeyUsages: []x509.ExtKeyUsage{tt.eku}}); err != nil {
				t.Errorf("Verify(%q, %v): %v", tt.verifyAs, tt.eku, err)
			}
			if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{tt.eku}) || c.IsCA || c.KeyUsage != x509.KeyUsageDigitalSignature {
				t.Errorf("usages: got EKU %v, IsCA %v, KeyUsage %v; want only %v, leaf, digitalSignature", c.ExtKeyUsage, c.IsCA, c.KeyUsage, tt.eku)
			}
			if c.PublicKeyAlgorithm != x509.ECDSA {
				t.Errorf("key algorithm: got %v, want ECDSA", c.PublicKeyAlgorithm)
			}
			if got := firstKey(c); got != tt.identity {
				t.Errorf("identity: got %q, want %q", got, tt.identity)
			}
			lifetime := tt.req.Lifetime
			if lifetime == 0 {
				lifetime = DefaultLeafLifetime
			}
			if !tt.req.NotBefore.IsZero() {
				if !c.NotBefore.Equal(tt.req.NotBefore) || !c.NotAfter.Equal(tt.req.NotBefore.Add(lifetime)) {
					t.Errorf("validity: got %v to %v, want %v to %v", c.NotBefore, c.NotAfter, tt.req.NotBefore, tt.req.NotBefore.Add(lifetime))
				}
			} else if got := c.NotAfter.Sub(c.NotBefore); got < lifetime || got > lifetime+backdate+time.Minute {
				t.Errorf("validity length: got %v, want %v plus the %v backdate", got, lifetime, backdate)
			}
			if _, err := parsePrivateKeyPEM(a.keyPEM); err != nil || !strings.Contains(string(a.keyPEM), "BEGIN PRIVATE KEY") {
				t.Errorf("key: want a PKCS#8 PRIVATE KEY block, got err %v", err)
			}
		})
	}
}

func TestIssueErrors(t *testing.T) {
	ca := newTestCA(t, "test CA")
	other := newTestCA(t, "other CA")
	leafCert := ca.server(t)
	client := IssueRequest{Kind: KindClient, CommonName: "alice"}
	tests := []struct {
		name          string
		caCert, caKey []byte
		req           IssueRequest
		want          string
	}{
		{"no kind", ca.certPEM, ca.keyPEM, IssueRequest{CommonName: "x"}, "kind"},
		{"server without SAN", ca.certPEM, ca.keyPEM, IssueRequest{Kind: KindServer, CommonName: "localhost"}, "SAN"},
		{"client naming nobody", ca.certPEM, ca.keyPEM, IssueRequest{Kind: KindClient}, "common name or a SAN"},
		{"two URI SANs", ca.certPEM, ca.keyPEM, IssueRequest{Kind: KindClient, URIs: []string{"spiffe://a/b", "spiffe://a/c"}}, "at most one URI"},
		{"URI without scheme", ca.certPEM, ca.keyPEM, IssueRequest{Kind: KindClient, URIs: []string{"greeter.local/user/x"}}, "URI SAN"},
		{"URI with user info", ca.certPEM, ca.keyPEM, IssueRequest{Kind: KindClient, URIs: []string{"spiffe://root@greeter.local/x"}}, "user info"},
		{"overlong URI", ca.certPEM, ca.keyPEM, IssueRequest{Kind: KindClient, URIs: []string{"spiffe://a/" + strings.Repeat("x", 2048)}}, "longer"},
		{"empty DNS label", ca.certPEM, ca.keyPEM, IssueRequest{Kind: KindServer, DNSNames: []string{"a..b"}}, "DNS SAN"},
		{"DNS label with hyphen at start", ca.certPEM, ca.keyPEM, IssueRequest{Kind: KindServer, DNSNames: []string{"-a.b"}}, "DNS SAN"},
		{"DNS name with space", ca.certPEM, ca.keyPEM, IssueRequest{Kind: KindServer, DNSNames: []string{"a b"}}, "DNS SAN"},
		{"invalid IP", ca.certPEM, ca.keyPEM, IssueRequest{Kind: KindServer, IPAddresses: []netip.Addr{{}}}, "IP SAN"},
		{"overlong common name", ca.certPEM, ca.keyPEM, IssueRequest{Kind: KindClient, CommonName: strings.Repeat("x", 65)}, "common name"},
		{"negative lifetime", ca.certPEM, ca.keyPEM, IssueRequest{Kind: KindClient, CommonName: "x", Lifetime: -time.Hour}, "negative"},
		{"outlives the CA", ca.certPEM, ca.keyPEM, IssueRequest{Kind: KindClient, CommonName: "x", Lifetime: 3 * DefaultLeafLifetime}, "after its CA"},
		{"key of another CA", ca.certPEM, other.keyPEM, client, "does not match"},
		{"leaf as CA", leafCert.certPEM, leafCert.keyPEM, client, "not a CA"},
		{"garbage CA certificate", []byte("garbage"), ca.keyPEM, client, "CA certificate"},
		{"truncated CA key", ca.certPEM, ca.keyPEM[:len(ca.keyPEM)/2], client, "CA key"},
		{"two CA certificates", append(append([]byte{}, ca.certPEM...), other.certPEM...), ca.keyPEM, client, "want 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			certPEM, keyPEM, err := Issue(tt.caCert, tt.caKey, tt.req)
			if err == nil {
				t.Fatalf("Issue: got a %d-byte certificate, want an error containing %q", len(certPEM), tt.want)
			}
			if certPEM != nil || keyPEM != nil {
				t.Errorf("Issue: got output with error %v", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Issue: got error %q, want it to contain %q", err, tt.want)
			}
		})
	}
}
