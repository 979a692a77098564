package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"slices"

	"github.com/greeter/greeter/certs"
	"github.com/greeter/greeter/identity"
)

// verifiedToken is what a verified (or cached) token establishes.
type verifiedToken struct {
	id identity.Identity
	// x5t is the token's cnf "x5t#S256", or "" when it has none.
	x5t string
}

// parseCertificateIdentities parses the keys of Config.CertificateIdentities
// with certs.ParseIdentity and returns the scopes by identity key. Two
// entries that name the same identity are an error, so an allowlist never
// silently grants one of two scope lists.
func parseCertificateIdentities(entries map[string][]string) (map[string][]string, error) {
	out := make(map[string][]string, len(entries))
	for entry, scopes := range entries {
		id, err := certs.ParseIdentity(entry)
		if err != nil {
			return nil, fmt.Errorf("auth: %w", err)
		}
		if _, dup := out[id.Key()]; dup {
			return nil, fmt.Errorf("auth: certificate identity %s is listed twice", id.Key())
		}
		out[id.Key()] = slices.Clone(scopes)
	}
	return out, nil
}

// certificateIdentity identifies a call without a token by the first name
// of its verified client certificate, in certs.Identities order, that the
// allowlist lists.
func (a *Authenticator) certificateIdentity(ctx context.Context) (identity.Identity, string, *failure) {
	if a.cfg.PeerCertificate == nil {
		return fail(errMissingToken)
	}
	leaf, ok := a.cfg.PeerCertificate(ctx)
	if !ok {
		return fail(errMissingToken)
	}
	names := certs.Identities(leaf)
	if len(names) == 0 {
		return fail(errMissingToken)
	}
	for _, id := range names {
		if scopes, ok := a.certScopes[id.Key()]; ok {
			id.Scopes = slices.Clone(scopes)
			return id, ResultCertificate, nil
		}
	}
	return fail(errCertNotAllowed)
}

// boundToPeer reports whether tok is bound (RFC 8705) to the verified
// client certificate of the call in ctx.
func (a *Authenticator) boundToPeer(ctx context.Context, tok verifiedToken) bool {
	if tok.x5t == "" {
		return false
	}
	leaf, ok := a.cfg.PeerCertificate(ctx)
	if !ok {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(CertificateThumbprint(leaf)), []byte(tok.x5t)) == 1
}

// CertificateThumbprint returns the RFC 8705 thumbprint of c: the unpadded
// base64url encoding of the SHA-256 of its DER encoding, the value of a
// certificate-bound token's cnf "x5t#S256".
func CertificateThumbprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
