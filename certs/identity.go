package certs

import (
	"context"
	"crypto/x509"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// PeerIdentity returns the identity named by the verified client
// certificate of the RPC in ctx (see IdentityFromCertificate). It returns
// false when the connection is not TLS, the client sent no certificate, or
// the certificate was not verified against the client CAs (for example under
// tls.RequestClientCert): only State.VerifiedChains counts, never
// State.PeerCertificates.
func PeerIdentity(ctx context.Context) (string, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok || p.AuthInfo == nil {
		return "", false
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return "", false
	}
	chains := info.State.VerifiedChains
	if len(chains) == 0 || len(chains[0]) == 0 {
		return "", false
	}
	return IdentityFromCertificate(chains[0][0])
}

// IdentityFromCertificate returns the identity a certificate names, in this
// order: its URI SAN (such as a SPIFFE ID) if it has exactly one, else its
// first DNS SAN, else its subject common name. It returns false for a nil
// certificate, for one that names nothing, and for one with more than one
// URI SAN: such a certificate is ambiguous (a SPIFFE X.509-SVID has exactly
// one, and grpc-go gives it no SPIFFE ID), and falling back to a DNS name or
// common name would silently identify the caller by a weaker name.
//
// It does not verify c; callers must pass a verified certificate.
func IdentityFromCertificate(c *x509.Certificate) (string, bool) {
	switch {
	case c == nil || len(c.URIs) > 1:
		return "", false
	case len(c.URIs) == 1:
		if s := c.URIs[0].String(); s != "" {
			return s, true
		}
		return "", false
	case len(c.DNSNames) > 0 && c.DNSNames[0] != "":
		return c.DNSNames[0], true
	case c.Subject.CommonName != "":
		return c.Subject.CommonName, true
	default:
		return "", false
	}
}
