package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"net/url"
	"testing"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// plainAuthInfo stands for a connection without TLS.
type plainAuthInfo struct{ credentials.CommonAuthInfo }

func (plainAuthInfo) AuthType() string { return "insecure" }

func TestIdentityFromCertificate(t *testing.T) {
	spiffe := "spiffe://greeter.local/user/alice"
	tests := []struct {
		name   string
		cert   *x509.Certificate
		want   string
		wantOK bool
	}{
		{"nil", nil, "", false},
		{"one URI SAN wins over DNS and CN", &x509.Certificate{
			URIs: []*url.URL{mustURL(t, spiffe)}, DNSNames: []string{"a.example"}, Subject: pkix.Name{CommonName: "cn"},
		}, spiffe, true},
		{"two URI SANs are ambiguous", &x509.Certificate{
			URIs: []*url.URL{mustURL(t, spiffe), mustURL(t, "spiffe://greeter.local/user/root")}, DNSNames: []string{"a.example"}, Subject: pkix.Name{CommonName: "cn"},
		}, "", false},
		{"first DNS SAN wins over CN", &x509.Certificate{DNSNames: []string{"a.example", "b.example"}, Subject: pkix.Name{CommonName: "cn"}}, "a.example", true},
		{"common name", &x509.Certificate{Subject: pkix.Name{CommonName: "bob"}}, "bob", true},
		{"IP SAN only names nobody", &x509.Certificate{IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}, "", false},
		{"nothing", &x509.Certificate{}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := IdentityFromCertificate(tt.cert)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("IdentityFromCertificate: got (%q, %v), want (%q, %v)", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

// TestPeerIdentityContexts covers the contexts a real handshake cannot
// produce easily.
func TestPeerIdentityContexts(t *testing.T) {
	bob := &x509.Certificate{Subject: pkix.Name{CommonName: "bob"}}
	withPeer := func(ai credentials.AuthInfo) context.Context {
		return peer.NewContext(context.Background(), &peer.Peer{AuthInfo: ai})
	}
	tests := []struct {
		name   string
		ctx    context.Context
		want   string
		wantOK bool
	}{
		{"no peer", context.Background(), "", false},
		{"peer without auth info", withPeer(nil), "", false},
		{"insecure connection", withPeer(plainAuthInfo{}), "", false},
		{"TLS without client certificate", withPeer(credentials.TLSInfo{}), "", false},
		{"presented but unverified certificate", withPeer(credentials.TLSInfo{State: tls.ConnectionState{
			PeerCertificates: []*x509.Certificate{bob},
		}}), "", false},
		{"empty verified chain", withPeer(credentials.TLSInfo{State: tls.ConnectionState{
			PeerCertificates: []*x509.Certificate{bob}, VerifiedChains: [][]*x509.Certificate{{}},
		}}), "", false},
		{"verified certificate", withPeer(credentials.TLSInfo{State: tls.ConnectionState{
			PeerCertificates: []*x509.Certificate{bob}, VerifiedChains: [][]*x509.Certificate{{bob}},
		}}), "bob", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := PeerIdentity(tt.ctx)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("PeerIdentity: got (%q, %v), want (%q, %v)", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
