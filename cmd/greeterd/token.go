package main

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/greeter/greeter/certs"
	"github.com/greeter/greeter/middleware/auth"
	"github.com/greeter/greeter/middleware/authz"
)

// Dev tokens: the file name in the state directory, their lifetime, and how
// close to expiry a start of greeterd mints a fresh one.
const (
	devTokenFile    = "token"
	devTokenTTL     = 24 * time.Hour
	devTokenRefresh = time.Hour
)

// ensureDevToken writes a token for user to <dir>/token unless a token that
// is valid for at least another hour is there. It reports whether it wrote.
func ensureDevToken(dev *certs.DevFiles, user string) (bool, error) {
	if user == "" {
		user = "dev"
	}
	path := filepath.Join(dev.Dir, devTokenFile)
	if data, err := os.ReadFile(path); err == nil {
		if exp, ok := expiry(strings.TrimSpace(string(data))); ok && time.Until(exp) > devTokenRefresh {
			return false, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	keyPEM, err := os.ReadFile(dev.JWTSigningKey)
	if err != nil {
		return false, err
	}
	token, err := auth.MintPEM(keyPEM, auth.MintOptions{
		Subject:  user,
		Scopes:   authz.AllScopes(),
		Issuer:   defaultIssuer,
		Audience: []string{defaultAudience},
		TTL:      devTokenTTL,
		KeyID:    keyID(dev.JWTPublicKey),
	})
	if err != nil {
		return false, fmt.Errorf("minting the dev token: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(token+"\n"), 0o600); err != nil {
		return false, err
	}
	return true, os.Rename(tmp, path)
}

// keyID is the kid the verifier gives a PEM key file: its name without the
// extension.
func keyID(publicKeyFile string) string {
	return strings.TrimSuffix(filepath.Base(publicKeyFile), filepath.Ext(publicKeyFile))
}

// expiry reads a token's exp without verifying it; only to decide whether
// the dev token needs replacing.
func expiry(token string) (time.Time, bool) {
	var claims jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(token, &claims); err != nil || claims.ExpiresAt == nil {
		return time.Time{}, false
	}
	return claims.ExpiresAt.Time, true
}

// runToken mints a token and prints it.
func runToken(args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("greeterd token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	stateDir := fs.String("state-dir", ".greeter", "dev state directory holding jwt-signing-key.pem")
	key := fs.String("key", "", "signing key (PEM; default <state-dir>/jwt-signing-key.pem)")
	sub := fs.String("sub", "", "subject: with the issuer, the caller (identity jwt:ISSUER:SUB) and the owner of its files (required)")
	scope := fs.String("scope", strings.Join(authz.AllScopes(), " "), "space- or comma-separated scopes")
	ttl := fs.Duration("ttl", auth.DefaultMintTTL, "lifetime")
	issuer := fs.String("issuer", defaultIssuer, "issuer (iss)")
	audience := listFlag{defaultAudience}
	fs.Var(&audience, "audience", "audience (aud), comma-separated")
	kid := fs.String("kid", "", "key id header (default: the matching public key file's name for a dev key)")
	cnfCert := fs.String("cnf-cert", "", "bind the token to this client certificate (PEM): cnf x5t#S256, RFC 8705, for greeterd --require-token-cert-match")
	if err := parseSubcommand(fs, args, getenv); err != nil {
		return err
	}
	if *sub == "" {
		return usageError{errors.New("--sub is required")}
	}
	if *key == "" {
		*key = filepath.Join(*stateDir, certs.JWTSigningKeyFile)
		if *kid == "" {
			*kid = keyID(certs.JWTPublicKeyFile)
		}
	}
	keyPEM, err := os.ReadFile(*key)
	if err != nil {
		return err
	}
	var thumbprint string
	if *cnfCert != "" {
		if thumbprint, err = certificateThumbprint(*cnfCert); err != nil {
			return err
		}
	}
	token, err := auth.MintPEM(keyPEM, auth.MintOptions{
		CertThumbprint: thumbprint,
		Subject:        *sub,
		Scopes:         strings.FieldsFunc(*scope, func(r rune) bool { return r == ' ' || r == ',' }),
		Issuer:         *issuer,
		Audience:       audience,
		TTL:            *ttl,
		KeyID:          *kid,
	})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, token)
	return err
}

// certificateThumbprint returns the RFC 8705 thumbprint of the first
// certificate in the PEM file path.
func certificateThumbprint(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		switch {
		case block == nil:
			return "", fmt.Errorf("--cnf-cert %s: no CERTIFICATE block", path)
		case block.Type != "CERTIFICATE":
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return "", fmt.Errorf("--cnf-cert %s: %w", path, err)
		}
		return auth.CertificateThumbprint(c), nil
	}
}
