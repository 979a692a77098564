package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// minRSABits is the smallest RSA modulus accepted for verification.
const minRSABits = 2048

// maxJWKSBytes bounds a JWKS document read from a file or URL.
const maxJWKSBytes = 1 << 20

// publicKey is one verification key with the single algorithm it may verify.
type publicKey struct {
	kid string
	alg string
	key crypto.PublicKey
}

// keySet is an immutable set of verification keys.
type keySet struct {
	gen   uint64
	keys  []publicKey
	byKID map[string]publicKey
}

func newKeySet(gen uint64, groups ...[]publicKey) *keySet {
	ks := &keySet{gen: gen, byKID: make(map[string]publicKey)}
	for _, g := range groups {
		for _, k := range g {
			if k.kid != "" {
				if _, dup := ks.byKID[k.kid]; dup {
					continue // the first source to name a kid wins
				}
				ks.byKID[k.kid] = k
			}
			ks.keys = append(ks.keys, k)
		}
	}
	return ks
}

// fileStamp identifies one version of a key file.
type fileStamp struct {
	mod  time.Time
	size int64
}

// keyStore loads keys from files and a JWKS URL and reloads them while
// serving. Refreshes run in the goroutine of the RPC that notices they are
// due, one at a time; other RPCs keep using the current keys.
type keyStore struct {
	pemFiles  []string
	jwksFile  string
	jwksURL   string
	client    *http.Client
	fileEvery time.Duration
	urlEvery  time.Duration
	urlRetry  time.Duration
	logger    *slog.Logger
	onEvent   func(string)

	cur atomic.Pointer[keySet]

	// sem (capacity 1) serialises refreshes; the fields below are guarded
	// by it.
	sem        chan struct{}
	gen        uint64
	fileKeys   map[string][]publicKey
	fileStamps map[string]fileStamp
	urlKeys    []publicKey
	nextFiles  time.Time
	nextURL    time.Time
	unknownKID *rate.Limiter
}

// load reads every source for the first time. Files must load; a JWKS URL
// that fails is retried later, as long as some key was loaded.
func (s *keyStore) load(ctx context.Context) error {
	s.sem = make(chan struct{}, 1)
	s.fileKeys = make(map[string][]publicKey)
	s.fileStamps = make(map[string]fileStamp)
	now := time.Now()
	for _, path := range s.files() {
		keys, stamp, err := readKeyFile(path, path == s.jwksFile)
		if err != nil {
			return err
		}
		s.fileKeys[path], s.fileStamps[path] = keys, stamp
	}
	s.nextFiles = now.Add(s.fileEvery)
	if s.jwksURL != "" {
		if err := s.fetchURL(ctx, now); err != nil {
			s.logger.LogAttrs(ctx, slog.LevelWarn, "jwks_refresh_failed", slog.String("error", err.Error()))
		}
	}
	s.publish()
	if len(s.cur.Load().keys) == 0 {
		return errors.New("auth: no usable verification key was loaded")
	}
	return nil
}

func (s *keyStore) files() []string {
	files := slices.Clone(s.pemFiles)
	if s.jwksFile != "" {
		files = append(files, s.jwksFile)
	}
	return files
}

// publish makes the current per-source keys the active key set.
func (s *keyStore) publish() {
	s.gen++
	groups := make([][]publicKey, 0, len(s.fileKeys)+1)
	for _, path := range s.files() {
		groups = append(groups, s.fileKeys[path])
	}
	groups = append(groups, s.urlKeys)
	s.cur.Store(newKeySet(s.gen, groups...))
}

// current returns the active key set, first refreshing it if a refresh is
// due and no other RPC is refreshing.
func (s *keyStore) current(ctx context.Context) *keySet {
	now := time.Now()
	select {
	case s.sem <- struct{}{}:
		s.refreshDue(ctx, now)
		<-s.sem
	default:
	}
	return s.cur.Load()
}

// refreshUnknownKID is called when a token names a kid the active set lacks.
// It refetches the JWKS URL at most once per unknown-kid interval, waiting
// no longer than ctx allows, and returns the (possibly new) active set.
func (s *keyStore) refreshUnknownKID(ctx context.Context) *keySet {
	if s.jwksURL == "" || !s.unknownKID.Allow() {
		return s.cur.Load()
	}
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return s.cur.Load()
	}
	defer func() { <-s.sem }()
	now := time.Now()
	if err := s.fetchURL(ctx, now); err != nil {
		s.logger.LogAttrs(ctx, slog.LevelWarn, "jwks_refresh_failed", slog.String("error", err.Error()))
		return s.cur.Load()
	}
	s.publish()
	return s.cur.Load()
}

func (s *keyStore) refreshDue(ctx context.Context, now time.Time) {
	changed := false
	if len(s.fileStamps) > 0 && !now.Before(s.nextFiles) {
		s.nextFiles = now.Add(s.fileEvery)
		for _, path := range s.files() {
			fi, err := os.Stat(path)
			if err != nil {
				s.logger.LogAttrs(ctx, slog.LevelError, "key_reload_failed",
					slog.String("file", path), slog.String("error", err.Error()))
				continue
			}
			if (fileStamp{fi.ModTime(), fi.Size()}) == s.fileStamps[path] {
				continue
			}
			keys, stamp, err := readKeyFile(path, path == s.jwksFile)
			if err != nil {
				// Keep the last good keys; retry when the file changes again.
				s.fileStamps[path] = fileStamp{fi.ModTime(), fi.Size()}
				s.logger.LogAttrs(ctx, slog.LevelError, "key_reload_failed",
					slog.String("file", path), slog.String("error", err.Error()))
				continue
			}
			s.fileKeys[path], s.fileStamps[path] = keys, stamp
			s.logger.LogAttrs(ctx, slog.LevelInfo, "keys_reloaded", slog.String("file", path), slog.Int("keys", len(keys)))
			changed = true
		}
	}
	if s.jwksURL != "" && !now.Before(s.nextURL) {
		if err := s.fetchURL(ctx, now); err != nil {
			s.logger.LogAttrs(ctx, slog.LevelWarn, "jwks_refresh_failed", slog.String("error", err.Error()))
		} else {
			changed = true
		}
	}
	if changed {
		s.publish()
	}
}

// fetchURL fetches the JWKS URL and, on success, replaces the URL keys.
// Failures keep the last good keys and are retried after urlRetry.
func (s *keyStore) fetchURL(ctx context.Context, now time.Time) error {
	s.nextURL = now.Add(s.urlRetry)
	if s.onEvent != nil {
		s.onEvent("jwks_fetch")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.jwksURL, nil)
	if err != nil {
		return fmt.Errorf("jwks request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("jwks fetch: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("jwks fetch: HTTP %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return fmt.Errorf("jwks read: %w", err)
	}
	keys, err := parseJWKS(body)
	if err != nil {
		return err
	}
	s.urlKeys = keys
	s.nextURL = now.Add(s.urlEvery)
	return nil
}

// readKeyFile reads a PEM public key or a JWKS document.
func readKeyFile(path string, jwks bool) ([]publicKey, fileStamp, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("auth: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("auth: %w", err)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxJWKSBytes+1))
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("auth: read %s: %w", path, err)
	}
	stamp := fileStamp{fi.ModTime(), fi.Size()}
	if jwks {
		keys, err := parseJWKS(data)
		if err != nil {
			return nil, fileStamp{}, fmt.Errorf("auth: %s: %w", path, err)
		}
		return keys, stamp, nil
	}
	kid := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	k, err := parsePublicKeyPEM(data, kid)
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("auth: %s: %w", path, err)
	}
	return []publicKey{k}, stamp, nil
}

// parsePublicKeyPEM parses the first PEM block of data: a PKIX or PKCS #1
// public key, or a certificate.
func parsePublicKeyPEM(data []byte, kid string) (publicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return publicKey{}, errors.New("no PEM block found")
	}
	var (
		pub any
		err error
	)
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			pub = cert.PublicKey
		}
	default:
		if strings.Contains(block.Type, "PRIVATE KEY") {
			return publicKey{}, errors.New("file holds a private key; configure the public key")
		}
		return publicKey{}, fmt.Errorf("unsupported PEM block %q", block.Type)
	}
	if err != nil {
		return publicKey{}, fmt.Errorf("parse public key: %w", err)
	}
	alg, err := algorithmFor(pub)
	if err != nil {
		return publicKey{}, err
	}
	return publicKey{kid: kid, alg: alg, key: pub}, nil
}

// algorithmFor pins the one JWS algorithm a public key verifies.
func algorithmFor(pub any) (string, error) {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		return "EdDSA", nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return "ES256", nil
		case elliptic.P384():
			return "ES384", nil
		case elliptic.P521():
			return "ES512", nil
		}
		return "", errors.New("unsupported ECDSA curve")
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return "", fmt.Errorf("RSA key shorter than %d bits", minRSABits)
		}
		return "RS256", nil
	}
	return "", fmt.Errorf("unsupported public key type %T", pub)
}

// jsonWebKey holds the JWK members this package reads (RFC 7517, 7518, 8037).
type jsonWebKey struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	N   string `json:"n"`
	E   string `json:"e"`
}

// parseJWKS parses a JWK Set. Keys that are not signature keys of a
// supported type are skipped; symmetric ("oct") keys are never used. It
// fails if no key is usable.
func parseJWKS(data []byte) ([]publicKey, error) {
	if len(data) > maxJWKSBytes {
		return nil, errors.New("jwks: document too large")
	}
	var doc struct {
		Keys []jsonWebKey `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	var keys []publicKey
	for _, j := range doc.Keys {
		if j.Use != "" && j.Use != "sig" {
			continue
		}
		k, err := j.publicKey()
		if err != nil {
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("jwks: no usable signature key")
	}
	return keys, nil
}

func (j jsonWebKey) publicKey() (publicKey, error) {
	b64 := base64.RawURLEncoding.Strict()
	switch j.Kty {
	case "OKP":
		if j.Crv != "Ed25519" || (j.Alg != "" && j.Alg != "EdDSA" && j.Alg != "Ed25519") {
			return publicKey{}, errors.New("unsupported OKP key")
		}
		x, err := b64.DecodeString(j.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return publicKey{}, errors.New("bad Ed25519 key")
		}
		return publicKey{kid: j.Kid, alg: "EdDSA", key: ed25519.PublicKey(x)}, nil
	case "EC":
		var (
			curve elliptic.Curve
			alg   string
		)
		switch j.Crv {
		case "P-256":
			curve, alg = elliptic.P256(), "ES256"
		case "P-384":
			curve, alg = elliptic.P384(), "ES384"
		case "P-521":
			curve, alg = elliptic.P521(), "ES512"
		default:
			return publicKey{}, errors.New("unsupported curve")
		}
		if j.Alg != "" && j.Alg != alg {
			return publicKey{}, errors.New("alg does not match curve")
		}
		size := (curve.Params().BitSize + 7) / 8
		x, errX := b64.DecodeString(j.X)
		y, errY := b64.DecodeString(j.Y)
		if errX != nil || errY != nil || len(x) != size || len(y) != size {
			return publicKey{}, errors.New("bad EC coordinates")
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, append(append([]byte{4}, x...), y...))
		if err != nil {
			return publicKey{}, err
		}
		return publicKey{kid: j.Kid, alg: alg, key: pub}, nil
	case "RSA":
		alg := j.Alg
		switch alg {
		case "":
			alg = "RS256"
		case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		default:
			return publicKey{}, errors.New("unsupported RSA alg")
		}
		n, errN := b64.DecodeString(j.N)
		e, errE := b64.DecodeString(j.E)
		if errN != nil || errE != nil || len(e) == 0 || len(e) > 4 {
			return publicKey{}, errors.New("bad RSA key")
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		if pub.N.BitLen() < minRSABits || pub.E < 3 || pub.E%2 == 0 {
			return publicKey{}, errors.New("weak RSA key")
		}
		return publicKey{kid: j.Kid, alg: alg, key: pub}, nil
	}
	return publicKey{}, errors.New("unsupported key type")
}
