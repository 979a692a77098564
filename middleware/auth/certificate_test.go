package auth_test

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"net/url"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/greeter/greeter/middleware/auth"
	"github.com/greeter/greeter/middleware/authz"
	"github.com/greeter/greeter/middleware/internal/authtest"
)

const reporter = "spiffe://greeter/reporter"

// leaf returns a stand-in for a verified client certificate: the names
// identify it, raw stands for its DER (all the thumbprint reads).
func leaf(t *testing.T, raw, uri, cn string, dns ...string) *x509.Certificate {
	t.Helper()
	c := &x509.Certificate{Raw: []byte(raw), DNSNames: dns, Subject: pkix.Name{CommonName: cn}}
	if uri != "" {
		u, err := url.Parse(uri)
		if err != nil {
			t.Fatal(err)
		}
		c.URIs = []*url.URL{u}
	}
	return c
}

// peerIs returns a Config.PeerCertificate that always finds c (none if nil).
func peerIs(c *x509.Certificate) func(context.Context) (*x509.Certificate, bool) {
	return func(context.Context) (*x509.Certificate, bool) { return c, c != nil }
}

// TestCertificateIdentity is R1: certificates are identified by typed
// names that must match an allowlist entry of their own type, and a token
// is a different identity from a certificate even when its sub equals the
// certificate's URI SAN.
func TestCertificateIdentity(t *testing.T) {
	ed := authtest.NewKey(t, t.TempDir(), "ed25519", "k1")
	allow := map[string][]string{
		reporter:                      {authz.ScopeRead},
		"x509-cn:legacy-batch":        {authz.ScopeWrite},
		"billing.greeter.internal":    {authz.ScopeDelete},
		"x509-dns:audit.greeter.test": {authz.ScopeRead, authz.ScopeWrite},
	}
	tests := []struct {
		name     string
		peer     *x509.Certificate
		auth     []string
		wantCode codes.Code
		want     string // the echoed identity, or the status message
	}{
		{"URI SAN listed", leaf(t, "a", reporter, "cn"), nil, codes.OK, "x509-uri:" + reporter + "[files:read]"},
		{"URI SAN wins over a listed CN", leaf(t, "a", reporter, "legacy-batch"), nil, codes.OK, "x509-uri:" + reporter + "[files:read]"},
		{"DNS SAN listed without prefix", leaf(t, "a", "", "", "Billing.Greeter.Internal"), nil, codes.OK, "x509-dns:billing.greeter.internal[files:delete]"},
		{"second DNS SAN listed", leaf(t, "a", "", "", "x.test", "audit.greeter.test"), nil, codes.OK, "x509-dns:audit.greeter.test[files:read files:write]"},
		{"CN opted in with x509-cn:", leaf(t, "a", "", "legacy-batch"), nil, codes.OK, "x509-cn:legacy-batch[files:write]"},
		{"CN-only certificate naming a listed SPIFFE ID", leaf(t, "a", "", reporter), nil, codes.PermissionDenied, "certificate identity not allowed"},
		{"DNS SAN naming a listed CN", leaf(t, "a", "", "", "legacy-batch"), nil, codes.PermissionDenied, "certificate identity not allowed"},
		{"URI SAN not listed", leaf(t, "a", "spiffe://greeter/intruder", ""), nil, codes.PermissionDenied, "certificate identity not allowed"},
		{"no certificate", nil, nil, codes.Unauthenticated, "missing bearer token"},
		{"token wins over certificate", leaf(t, "a", reporter, ""), []string{"Bearer " + ed.Token(t, "alice", "")}, codes.OK, "jwt:" + authtest.Issuer + ":alice[]"},
		{"token whose sub is a certificate identity", leaf(t, "a", reporter, ""), []string{"Bearer " + ed.Token(t, reporter, "")}, codes.OK, "jwt:" + authtest.Issuer + ":" + reporter + "[]"},
		{"bad token does not fall back", leaf(t, "a", reporter, ""), []string{"Bearer x.y.z"}, codes.Unauthenticated, "malformed token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := authtest.Config(ed)
			cfg.PeerCertificate = peerIs(tc.peer)
			cfg.CertificateIdentities = allow
			cc, _, _ := start(t, cfg)
			got, err := call(t, cc, "SayHello", tc.auth...)
			st := status.Convert(err)
			if st.Code() != tc.wantCode {
				t.Fatalf("got code %v (%q), want %v", st.Code(), st.Message(), tc.wantCode)
			}
			if tc.wantCode == codes.OK && !strings.HasSuffix(got, " from "+tc.want) {
				t.Errorf("got reply %q, want it to end with %q", got, " from "+tc.want)
			}
			if tc.wantCode != codes.OK && st.Message() != tc.want {
				t.Errorf("got message %q, want %q", st.Message(), tc.want)
			}
		})
	}
}

// TestRequireTokenCertMatch is R1 for mTLS deployments: with
// RequireTokenCertMatch a token must be bound (cnf x5t#S256, RFC 8705) to
// the connection's verified client certificate, on the first call and on
// cached ones.
func TestRequireTokenCertMatch(t *testing.T) {
	ed := authtest.NewKey(t, t.TempDir(), "ed25519", "k1")
	mine, other := leaf(t, "mine", reporter, ""), leaf(t, "other", reporter, "")
	mint := func(thumbprint string) string {
		tok, err := auth.Mint(ed.Signer, auth.MintOptions{
			Subject: "alice", Issuer: authtest.Issuer, Audience: []string{authtest.Audience},
			KeyID: ed.KID, CertThumbprint: thumbprint,
		})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	bound, unbound := mint(auth.CertificateThumbprint(mine)), mint("")
	tests := []struct {
		name     string
		peer     *x509.Certificate
		token    string
		wantCode codes.Code
	}{
		{"bound token with its certificate", mine, bound, codes.OK},
		{"bound token with another certificate", other, bound, codes.Unauthenticated},
		{"bound token without a certificate", nil, bound, codes.Unauthenticated},
		{"token without cnf", mine, unbound, codes.Unauthenticated},
		{"certificate alone still works", mine, "", codes.OK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := authtest.Config(ed)
			cfg.PeerCertificate = peerIs(tc.peer)
			cfg.CertificateIdentities = map[string][]string{reporter: nil}
			cfg.RequireTokenCertMatch = true
			cc, r, _ := start(t, cfg)
			var hdr []string
			if tc.token != "" {
				hdr = []string{"Bearer " + tc.token}
			}
			for range 2 { // verified, then cached
				_, err := call(t, cc, "SayHello", hdr...)
				if got := status.Code(err); got != tc.wantCode {
					t.Fatalf("got %v, want %v", err, tc.wantCode)
				}
				if tc.wantCode == codes.Unauthenticated && status.Convert(err).Message() != "token is not bound to the client certificate" {
					t.Errorf("got message %q", status.Convert(err).Message())
				}
			}
			if n := r.count(auth.ReasonTokenCertMismatch); (n == 2) != (tc.wantCode != codes.OK) {
				t.Errorf("token_cert_mismatch results: got %d", n)
			}
		})
	}

	// Without RequireTokenCertMatch the same tokens work on any connection.
	cfg := authtest.Config(ed)
	cfg.PeerCertificate = peerIs(other)
	cc, _, _ := start(t, cfg)
	for _, tok := range []string{bound, unbound} {
		if _, err := call(t, cc, "SayHello", "Bearer "+tok); err != nil {
			t.Errorf("without RequireTokenCertMatch: %v", err)
		}
	}
}

func TestNewRejectsBadCertificateIdentities(t *testing.T) {
	ed := authtest.NewKey(t, t.TempDir(), "ed25519", "k1")
	tests := []struct {
		name   string
		change func(*auth.Config)
	}{
		{"empty entry", func(c *auth.Config) { c.CertificateIdentities = map[string][]string{"": nil} }},
		{"token identity", func(c *auth.Config) { c.CertificateIdentities = map[string][]string{"jwt:i:alice": nil} }},
		{"one identity twice", func(c *auth.Config) {
			c.CertificateIdentities = map[string][]string{reporter: nil, "x509-uri:" + reporter: nil}
		}},
		{"binding without certificates", func(c *auth.Config) { c.RequireTokenCertMatch = true }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := authtest.Config(ed)
			tc.change(&cfg)
			if _, err := auth.New(context.Background(), cfg); err == nil {
				t.Error("auth.New: got nil error, want an error")
			}
		})
	}
}
