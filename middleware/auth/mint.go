package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// DefaultMintTTL is the lifetime Mint gives a token when MintOptions.TTL is
// zero.
const DefaultMintTTL = 15 * time.Minute

// MintOptions describe a token to mint.
type MintOptions struct {
	// Subject is the "sub" claim: with Issuer, the caller and owner of its
	// files (jwt:<iss>:<sub>). Required.
	Subject string
	// Scopes become the space-separated "scope" claim.
	Scopes []string
	// Issuer is the "iss" claim. Required.
	Issuer string
	// Audience is the "aud" claim. Required.
	Audience []string
	// TTL is the lifetime (exp − iat). Default 15 minutes.
	TTL time.Duration
	// CertThumbprint, if set, binds the token to a client certificate: it
	// becomes the "cnf" claim's "x5t#S256" (RFC 8705; see
	// CertificateThumbprint).
	CertThumbprint string
	// KeyID, if set, is the "kid" header; it must match the verifier's kid
	// for the key (for a PEM file, its name without the extension).
	KeyID string
	// Now is the issue time. Zero means time.Now().
	Now time.Time
}

// Mint signs an access token (typ "at+jwt") with key: an Ed25519 key signs
// with EdDSA, an ECDSA key with ES256, ES384 or ES512 by curve, and an RSA
// key (≥ 2048 bits) with RS256.
func Mint(key crypto.Signer, o MintOptions) (string, error) {
	if o.Subject == "" || o.Issuer == "" || len(o.Audience) == 0 {
		return "", errors.New("auth: mint needs a subject, an issuer and an audience")
	}
	var method jwt.SigningMethod
	switch k := key.(type) {
	case ed25519.PrivateKey:
		method = jwt.SigningMethodEdDSA
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			method = jwt.SigningMethodES256
		case elliptic.P384():
			method = jwt.SigningMethodES384
		case elliptic.P521():
			method = jwt.SigningMethodES512
		default:
			return "", errors.New("auth: unsupported ECDSA curve")
		}
	case *rsa.PrivateKey:
		if k.N.BitLen() < minRSABits {
			return "", fmt.Errorf("auth: RSA key shorter than %d bits", minRSABits)
		}
		method = jwt.SigningMethodRS256
	default:
		return "", fmt.Errorf("auth: unsupported signing key %T", key)
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	ttl := o.TTL
	if ttl <= 0 {
		ttl = DefaultMintTTL
	}
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", fmt.Errorf("auth: %w", err)
	}
	claims := tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    o.Issuer,
			Subject:   o.Subject,
			Audience:  jwt.ClaimStrings(o.Audience),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        hex.EncodeToString(jti[:]),
		},
	}
	if o.CertThumbprint != "" {
		claims.Cnf = &confirmation{X5tS256: o.CertThumbprint}
	}
	tok := jwt.NewWithClaims(method, mintClaims{tokenClaims: claims, Scope: strings.Join(o.Scopes, " ")})
	tok.Header["typ"] = "at+jwt"
	if o.KeyID != "" {
		tok.Header["kid"] = o.KeyID
	}
	s, err := tok.SignedString(key)
	if err != nil {
		return "", fmt.Errorf("auth: sign token: %w", err)
	}
	return s, nil
}

// mintClaims encodes the scope claim as the string RFC 9068 specifies.
type mintClaims struct {
	tokenClaims
	Scope string `json:"scope,omitempty"`
}

// MintPEM is Mint with a PEM-encoded private key (see ParsePrivateKeyPEM).
func MintPEM(keyPEM []byte, o MintOptions) (string, error) {
	key, err := ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		return "", err
	}
	return Mint(key, o)
}

// ParsePrivateKeyPEM parses the first PEM block of data as a PKCS #8, SEC 1
// (EC) or PKCS #1 (RSA) private key.
func ParsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("auth: no PEM block found")
	}
	var (
		key any
		err error
	)
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("auth: unsupported PEM block %q", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("auth: parse private key: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("auth: unsupported private key %T", key)
	}
	return signer, nil
}
