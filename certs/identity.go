package certs

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/greeter/greeter/identity"
)

// PeerCertificate returns the verified client certificate (the leaf) of the
// RPC in ctx. It returns false when the connection is not TLS, the client
// sent no certificate, or the certificate was not verified against the
// client CAs (for example under tls.RequestClientCert): only
// State.VerifiedChains counts, never State.PeerCertificates.
func PeerCertificate(ctx context.Context) (*x509.Certificate, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok || p.AuthInfo == nil {
		return nil, false
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return nil, false
	}
	chains := info.State.VerifiedChains
	if len(chains) == 0 || len(chains[0]) == 0 || chains[0][0] == nil {
		return nil, false
	}
	return chains[0][0], true
}

// Identities returns the typed identities a certificate offers, in order of
// precedence:
//
//  1. identity.KindX509URI: its URI SAN (such as a SPIFFE ID), only if it
//     has exactly one. A certificate with several names no single workload
//     (a SPIFFE X.509-SVID has exactly one, and grpc-go gives such a
//     certificate no SPIFFE ID), so none of them is offered.
//  2. identity.KindX509DNS: each DNS SAN, lowercased (DNS names are
//     case-insensitive), in certificate order.
//  3. identity.KindX509CN: its subject common name.
//
// None of them carries scopes. Which one, if any, names the caller is the
// allowlist's decision (see ParseIdentity): the kinds never match each
// other, so a common name that reads like a SPIFFE ID is still only a
// common name.
//
// It does not verify c; callers must pass a verified certificate.
func Identities(c *x509.Certificate) []identity.Identity {
	if c == nil {
		return nil
	}
	var out []identity.Identity
	if len(c.URIs) == 1 && c.URIs[0] != nil {
		if s := c.URIs[0].String(); s != "" {
			out = append(out, identity.Identity{Kind: identity.KindX509URI, Name: s})
		}
	}
	for _, d := range c.DNSNames {
		if d != "" {
			out = append(out, identity.Identity{Kind: identity.KindX509DNS, Name: strings.ToLower(d)})
		}
	}
	if cn := c.Subject.CommonName; cn != "" {
		out = append(out, identity.Identity{Kind: identity.KindX509CN, Name: cn})
	}
	return out
}

// Prefixes of certificate identities in an allowlist entry (see
// ParseIdentity).
const (
	PrefixURI = string(identity.KindX509URI) + ":"
	PrefixDNS = string(identity.KindX509DNS) + ":"
	PrefixCN  = string(identity.KindX509CN) + ":"
)

// ParseIdentity parses a certificate identity as an operator writes it in an
// allowlist (greeterd's --cert-identity) and returns it without scopes:
//
//   - "x509-uri:URI", "x509-dns:NAME" and "x509-cn:NAME" are that kind;
//   - an entry without one of these prefixes is a URI SAN if it contains
//     "://" (spiffe://greeter.local/svc/billing), else a DNS SAN.
//
// A common name is an identity only through an explicit "x509-cn:" entry:
// that is the operator's opt-in. URIs are compared in the form url.URL's
// String gives them, DNS names lowercased, common names exactly.
func ParseIdentity(entry string) (identity.Identity, error) {
	kind, name := identity.KindX509DNS, entry
	switch {
	case strings.HasPrefix(entry, PrefixURI):
		kind, name = identity.KindX509URI, entry[len(PrefixURI):]
	case strings.HasPrefix(entry, PrefixDNS):
		name = entry[len(PrefixDNS):]
	case strings.HasPrefix(entry, PrefixCN):
		kind, name = identity.KindX509CN, entry[len(PrefixCN):]
	case strings.Contains(entry, "://"):
		kind = identity.KindX509URI
	case strings.HasPrefix(entry, string(identity.KindJWT)+":"), strings.HasPrefix(entry, string(identity.KindAnonymous)+":"):
		return identity.Identity{}, errors.New("certificate identity: a certificate cannot name a token or anonymous identity")
	}
	if name == "" {
		return identity.Identity{}, errors.New("certificate identity: empty name")
	}
	switch kind {
	case identity.KindX509URI:
		u, err := url.Parse(name)
		if err != nil || u.Scheme == "" {
			return identity.Identity{}, fmt.Errorf("certificate identity: %q is not an absolute URI", truncate(name))
		}
		name = u.String()
	case identity.KindX509DNS:
		if strings.ContainsAny(name, "/:@ ") {
			return identity.Identity{}, fmt.Errorf("certificate identity: %q is not a DNS name (write x509-uri: or x509-cn: for other kinds)", truncate(name))
		}
		name = strings.ToLower(name)
	}
	return identity.Identity{Kind: kind, Name: name}, nil
}

// truncate bounds what an error message quotes of an operator's entry.
func truncate(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
