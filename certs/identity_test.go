package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"net/url"
	"strings"
	"testing"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/greeter/greeter/identity"
)

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// firstKey returns the key of the certificate's first identity, or "".
func firstKey(c *x509.Certificate) string {
	if ids := Identities(c); len(ids) > 0 {
		return ids[0].Key()
	}
	return ""
}

// keys returns the keys of ids, space-separated.
func keys(ids []identity.Identity) string {
	var out []string
	for _, id := range ids {
		out = append(out, id.Key())
	}
	return strings.Join(out, " ")
}

// plainAuthInfo stands for a connection without TLS.
type plainAuthInfo struct{ credentials.CommonAuthInfo }

func (plainAuthInfo) AuthType() string { return "insecure" }

// TestIdentities is R1: a certificate offers each of its names typed, in
// precedence order, and a common name that reads like a SPIFFE ID is still
// only a common name.
func TestIdentities(t *testing.T) {
	spiffe := "spiffe://greeter.local/user/alice"
	tests := []struct {
		name string
		cert *x509.Certificate
		want string
	}{
		{"nil", nil, ""},
		{"URI SAN, then DNS SANs, then CN", &x509.Certificate{
			URIs: []*url.URL{mustURL(t, spiffe)}, DNSNames: []string{"a.example", "B.Example"}, Subject: pkix.Name{CommonName: "cn"},
		}, "x509-uri:" + spiffe + " x509-dns:a.example x509-dns:b.example x509-cn:cn"},
		{"two URI SANs offer no URI", &x509.Certificate{
			URIs: []*url.URL{mustURL(t, spiffe), mustURL(t, "spiffe://greeter.local/user/root")}, DNSNames: []string{"a.example"}, Subject: pkix.Name{CommonName: "cn"},
		}, "x509-dns:a.example x509-cn:cn"},
		{"CN-only certificate naming a SPIFFE ID", &x509.Certificate{Subject: pkix.Name{CommonName: spiffe}}, "x509-cn:" + spiffe},
		{"IP SAN only names nobody", &x509.Certificate{IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}, ""},
		{"nothing", &x509.Certificate{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := keys(Identities(tt.cert)); got != tt.want {
				t.Errorf("Identities: got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestParseIdentity is R1: allowlist entries are typed, a spiffe:// entry
// is a URI SAN, and a common name needs an explicit x509-cn: prefix.
func TestParseIdentity(t *testing.T) {
	tests := []struct {
		entry, want string // want "" means an error
	}{
		{"spiffe://greeter.local/svc/billing", "x509-uri:spiffe://greeter.local/svc/billing"},
		{"x509-uri:spiffe://greeter.local/svc/billing", "x509-uri:spiffe://greeter.local/svc/billing"},
		{"billing.greeter.internal", "x509-dns:billing.greeter.internal"},
		{"Billing.Greeter.Internal", "x509-dns:billing.greeter.internal"},
		{"x509-dns:billing.greeter.internal", "x509-dns:billing.greeter.internal"},
		{"x509-cn:spiffe://greeter.local/svc/billing", "x509-cn:spiffe://greeter.local/svc/billing"},
		{"x509-cn:Bob", "x509-cn:Bob"},
		{"", ""},
		{"x509-cn:", ""},
		{"x509-uri:billing", ""},
		{"x509-dns:spiffe://greeter.local/svc/billing", ""},
		{"jwt:greeterd:ada", ""},
		{"anonymous:anonymous", ""},
	}
	for _, tt := range tests {
		id, err := ParseIdentity(tt.entry)
		switch {
		case tt.want == "" && err == nil:
			t.Errorf("ParseIdentity(%q) = %q, want an error", tt.entry, id.Key())
		case tt.want != "" && (err != nil || id.Key() != tt.want):
			t.Errorf("ParseIdentity(%q) = %q, %v; want %q", tt.entry, id.Key(), err, tt.want)
		}
	}
}

// TestPeerCertificateContexts covers the contexts a real handshake cannot
// produce easily.
func TestPeerCertificateContexts(t *testing.T) {
	bob := &x509.Certificate{Subject: pkix.Name{CommonName: "bob"}}
	withPeer := func(ai credentials.AuthInfo) context.Context {
		return peer.NewContext(context.Background(), &peer.Peer{AuthInfo: ai})
	}
	tests := []struct {
		name string
		ctx  context.Context
		want *x509.Certificate
	}{
		{"no peer", context.Background(), nil},
		{"peer without auth info", withPeer(nil), nil},
		{"insecure connection", withPeer(plainAuthInfo{}), nil},
		{"TLS without client certificate", withPeer(credentials.TLSInfo{}), nil},
		{"presented but unverified certificate", withPeer(credentials.TLSInfo{State: tls.ConnectionState{
			PeerCertificates: []*x509.Certificate{bob},
		}}), nil},
		{"empty verified chain", withPeer(credentials.TLSInfo{State: tls.ConnectionState{
			PeerCertificates: []*x509.Certificate{bob}, VerifiedChains: [][]*x509.Certificate{{}},
		}}), nil},
		{"verified certificate", withPeer(credentials.TLSInfo{State: tls.ConnectionState{
			PeerCertificates: []*x509.Certificate{bob}, VerifiedChains: [][]*x509.Certificate{{bob}},
		}}), bob},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := PeerCertificate(tt.ctx)
			if got != tt.want || ok != (tt.want != nil) {
				t.Errorf("PeerCertificate: got (%v, %v), want (%v, %v)", got, ok, tt.want, tt.want != nil)
			}
		})
	}
}
