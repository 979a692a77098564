// Package authtest issues real signed tokens for the middleware tests: it
// generates keys, writes their public halves where auth.Config can load
// them, and signs arbitrary headers and claims.
package authtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/greeter/greeter/middleware/auth"
)

// Issuer and Audience used by every test token.
const (
	Issuer   = "https://issuer.test"
	Audience = "greeterd"
)

// Key is a signing key whose public half is in PEMPath.
type Key struct {
	KID     string
	Signer  crypto.Signer
	Method  jwt.SigningMethod
	PEMPath string
	PEM     []byte
}

// NewKey generates a key of kind "ed25519", "ecdsa" (P-256) or "rsa" (2048
// bits) and writes its public key to dir/kid.pem.
func NewKey(t testing.TB, dir, kind, kid string) *Key {
	t.Helper()
	var (
		signer crypto.Signer
		method jwt.SigningMethod
		err    error
	)
	switch kind {
	case "ed25519":
		_, signer, err = ed25519.GenerateKey(rand.Reader)
		method = jwt.SigningMethodEdDSA
	case "ecdsa":
		signer, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		method = jwt.SigningMethodES256
	case "rsa":
		signer, err = rsa.GenerateKey(rand.Reader, 2048)
		method = jwt.SigningMethodRS256
	default:
		t.Fatalf("unknown key kind %q", kind)
	}
	if err != nil {
		t.Fatalf("generate %s key: %v", kind, err)
	}
	der, err := x509.MarshalPKIXPublicKey(signer.Public())
	if err != nil {
		t.Fatalf("marshal public key: %v", err)
	}
	k := &Key{KID: kid, Signer: signer, Method: method, PEMPath: filepath.Join(dir, kid+".pem")}
	k.PEM = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	if err := os.WriteFile(k.PEMPath, k.PEM, 0o600); err != nil {
		t.Fatalf("write public key: %v", err)
	}
	return k
}

// Claims returns valid claims for subject at now with a 10-minute lifetime.
func Claims(now time.Time, subject, scope string) jwt.MapClaims {
	return jwt.MapClaims{
		"iss":   Issuer,
		"aud":   []string{Audience},
		"sub":   subject,
		"scope": scope,
		"iat":   now.Unix(),
		"nbf":   now.Unix(),
		"exp":   now.Add(10 * time.Minute).Unix(),
	}
}

// Sign signs claims with the key's algorithm, kid and typ "at+jwt", after
// applying header changes (a nil value deletes a header).
func (k *Key) Sign(t testing.TB, claims jwt.MapClaims, header map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(k.Method, claims)
	tok.Header["kid"] = k.KID
	tok.Header["typ"] = "at+jwt"
	for name, v := range header {
		if v == nil {
			delete(tok.Header, name)
		} else {
			tok.Header[name] = v
		}
	}
	s, err := tok.SignedString(k.Signer)
	if err != nil {
		t.Fatalf("sign token: %v", err)
	}
	return s
}

// Token returns a valid token for subject with the given space-separated
// scope, minted with auth.Mint.
func (k *Key) Token(t testing.TB, subject, scope string) string {
	t.Helper()
	var scopes []string
	if scope != "" {
		scopes = []string{scope}
	}
	s, err := auth.Mint(k.Signer, auth.MintOptions{
		Subject: subject, Scopes: scopes, Issuer: Issuer, Audience: []string{Audience},
		TTL: 10 * time.Minute, KeyID: k.KID,
	})
	if err != nil {
		t.Fatalf("mint: %v", err)
	}
	return s
}

// Config returns an auth.Config that trusts keys, accepts tokens over the
// tests' plaintext bufconn, and uses the test issuer and audience.
func Config(keys ...*Key) auth.Config {
	c := auth.Config{Issuer: Issuer, Audience: []string{Audience}, AllowInsecureTransport: true}
	for _, k := range keys {
		c.PublicKeyFiles = append(c.PublicKeyFiles, k.PEMPath)
	}
	return c
}
