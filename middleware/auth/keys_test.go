package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/greeter/greeter/middleware/auth"
	"github.com/greeter/greeter/middleware/internal/authtest"
)

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}

// touch gives path a modification time d after the epoch of the test, so
// that a rewrite is seen even within one file-system timestamp tick.
func touch(t *testing.T, path string, d time.Duration) {
	t.Helper()
	mt := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).Add(d)
	if err := os.Chtimes(path, mt, mt); err != nil {
		t.Fatalf("chtimes %s: %v", path, err)
	}
}

func privatePEM(t *testing.T, k *authtest.Key) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k.Signer)
	if err != nil {
		t.Fatalf("marshal private key: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// wantCall checks that SayHello with token gives wantCode (and, for errors,
// wantMsg).
func wantCall(t *testing.T, call func() (string, error), wantCode codes.Code, wantMsg string) {
	t.Helper()
	got, err := call()
	st := status.Convert(err)
	if st.Code() != wantCode {
		t.Fatalf("got code %v (%q), want %v", st.Code(), st.Message(), wantCode)
	}
	if wantCode == codes.OK && !strings.Contains(got, wantMsg) {
		t.Errorf("got reply %q, want it to contain %q", got, wantMsg)
	}
	if wantCode != codes.OK && st.Message() != wantMsg {
		t.Errorf("got message %q, want %q", st.Message(), wantMsg)
	}
}

func TestKeyFileReload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		oldKey := authtest.NewKey(t, dir, "ed25519", "k1")
		touch(t, oldKey.PEMPath, 0)
		newKey := authtest.NewKey(t, t.TempDir(), "ed25519", "k1") // the rotated key, same kid
		cc, _, logs := start(t, authtest.Config(oldKey))
		hello := func(k *authtest.Key) func() (string, error) {
			tok := k.Token(t, "alice", "")
			return func() (string, error) { return call(t, cc, "SayHello", "Bearer "+tok) }
		}
		oldCall := hello(oldKey)
		wantCall(t, oldCall, codes.OK, "jwt:https://issuer.test:alice[")
		wantCall(t, hello(newKey), codes.Unauthenticated, "token signature is invalid")

		// Rotate: the file now holds the new key.
		writeFile(t, oldKey.PEMPath, newKey.PEM)
		touch(t, oldKey.PEMPath, time.Hour)
		wantCall(t, oldCall, codes.OK, "jwt:https://issuer.test:alice[") // not checked again before the interval
		time.Sleep(auth.DefaultFileCheckInterval)
		synctest.Wait() // the background reload is done
		wantCall(t, hello(newKey), codes.OK, "jwt:https://issuer.test:alice[")
		// The old token was cached, but the cache does not survive a reload.
		wantCall(t, oldCall, codes.Unauthenticated, "token signature is invalid")

		// A broken file keeps the last good key.
		writeFile(t, oldKey.PEMPath, []byte("-----BEGIN PUBLIC KEY-----\ntruncated"))
		touch(t, oldKey.PEMPath, 2*time.Hour)
		time.Sleep(auth.DefaultFileCheckInterval)
		synctest.Wait()
		wantCall(t, hello(newKey), codes.OK, "jwt:https://issuer.test:alice[")
		if !strings.Contains(logs.String(), "key_reload_failed") {
			t.Errorf("logs lack key_reload_failed after a broken key file:\n%s", logs)
		}
	})
}

func TestLeewayBoundaries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ed := authtest.NewKey(t, t.TempDir(), "ed25519", "k1")
		cc, _, _ := start(t, authtest.Config(ed))
		start := time.Now()
		exp := start.Add(time.Minute)
		claims := func(step int) jwt.MapClaims {
			c := authtest.Claims(start, "alice", "")
			c["exp"] = exp.Unix()
			c["jti"] = fmt.Sprint(step) // a distinct token, so the cache does not answer
			return c
		}
		cached := ed.Sign(t, claims(0), nil)
		tests := []struct {
			name     string
			at       time.Time
			wantCode codes.Code
			wantMsg  string
		}{
			{"exp-1s", exp.Add(-time.Second), codes.OK, "jwt:https://issuer.test:alice["},
			{"exp+leeway-1s", exp.Add(auth.DefaultLeeway - time.Second), codes.OK, "jwt:https://issuer.test:alice["},
			{"exp+leeway+1s", exp.Add(auth.DefaultLeeway + time.Second), codes.Unauthenticated, "token expired"},
		}
		for i, tc := range tests {
			time.Sleep(time.Until(tc.at))
			for _, tok := range []struct{ kind, token string }{
				{"fresh", ed.Sign(t, claims(i+1), nil)},
				{"cached", cached},
			} {
				_, err := call(t, cc, "SayHello", "Bearer "+tok.token)
				if st := status.Convert(err); st.Code() != tc.wantCode || (err != nil && st.Message() != tc.wantMsg) {
					t.Errorf("%s, %s token: got %v %q, want %v %q", tc.name, tok.kind, st.Code(), st.Message(), tc.wantCode, tc.wantMsg)
				}
			}
		}
	})
}

func b64big(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// jwk encodes k's public key as a JWK.
func jwk(t *testing.T, k *authtest.Key) map[string]any {
	t.Helper()
	switch pub := k.Signer.Public().(type) {
	case ed25519.PublicKey:
		return map[string]any{"kty": "OKP", "crv": "Ed25519", "kid": k.KID, "x": b64big(pub), "use": "sig"}
	case *ecdsa.PublicKey:
		raw, err := pub.Bytes()
		if err != nil {
			t.Fatalf("ecdsa bytes: %v", err)
		}
		return map[string]any{"kty": "EC", "crv": "P-256", "kid": k.KID, "alg": "ES256", "x": b64big(raw[1:33]), "y": b64big(raw[33:])}
	case *rsa.PublicKey:
		return map[string]any{"kty": "RSA", "kid": k.KID, "alg": "RS256", "n": b64big(pub.N.Bytes()), "e": b64big(big.NewInt(int64(pub.E)).Bytes())}
	}
	t.Fatalf("unsupported key %T", k.Signer)
	return nil
}

func jwks(t *testing.T, keys ...map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatalf("marshal jwks: %v", err)
	}
	return b
}

func TestJWKSFile(t *testing.T) {
	dir := t.TempDir()
	ed := authtest.NewKey(t, dir, "ed25519", "okp")
	ec := authtest.NewKey(t, dir, "ecdsa", "ec")
	rs := authtest.NewKey(t, dir, "rsa", "rsa")
	secret := []byte("0123456789abcdef0123456789abcdef")
	path := dir + "/jwks.json"
	writeFile(t, path, jwks(t, jwk(t, ed), jwk(t, ec), jwk(t, rs),
		map[string]any{"kty": "oct", "kid": "sym", "k": b64big(secret)},
		map[string]any{"kty": "OKP", "crv": "Ed25519", "kid": "enc", "x": b64big(make([]byte, 32)), "use": "enc"},
	))
	cc, _, _ := start(t, auth.Config{Issuer: authtest.Issuer, Audience: []string{authtest.Audience}, JWKSFile: path, AllowInsecureTransport: true})

	hmac := jwt.NewWithClaims(jwt.SigningMethodHS256, authtest.Claims(time.Now(), "mallory", ""))
	hmac.Header["kid"] = "sym"
	hmacToken, err := hmac.SignedString(secret)
	if err != nil {
		t.Fatalf("sign HS256: %v", err)
	}
	tests := []struct {
		name     string
		token    string
		wantCode codes.Code
		wantMsg  string
	}{
		{"OKP Ed25519", ed.Token(t, "alice", ""), codes.OK, "jwt:https://issuer.test:alice["},
		{"EC P-256", ec.Token(t, "bob", ""), codes.OK, "jwt:https://issuer.test:bob["},
		{"RSA", rs.Token(t, "carol", ""), codes.OK, "jwt:https://issuer.test:carol["},
		{"symmetric key is never used", hmacToken, codes.Unauthenticated, "token algorithm not allowed"},
		{"encryption key is never used", ed.Sign(t, authtest.Claims(time.Now(), "alice", ""), map[string]any{"kid": "enc"}), codes.Unauthenticated, "token signing key is unknown"},
		{"RSA token under the EC kid", rs.Sign(t, authtest.Claims(time.Now(), "alice", ""), map[string]any{"kid": "ec"}), codes.Unauthenticated, "token algorithm not allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantCall(t, func() (string, error) { return call(t, cc, "SayHello", "Bearer "+tc.token) }, tc.wantCode, tc.wantMsg)
		})
	}
}

// jwksServer is an in-memory JWKS endpoint for http.Client.Transport. It
// answers after latency (a fetch whose context ends first is counted as
// aborted), or fails with netErr as a dead network would.
type jwksServer struct {
	mu      sync.Mutex
	body    []byte
	code    int
	latency time.Duration
	netErr  error
	fetches int
	aborted int
}

func (s *jwksServer) set(code int, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.code, s.body = code, body
}

// setLatency makes later answers take d.
func (s *jwksServer) setLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// setNetErr makes later fetches fail with err before any answer (nil: answer).
func (s *jwksServer) setNetErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.netErr = err
}

func (s *jwksServer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fetches
}

func (s *jwksServer) abortedCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.aborted
}

func (s *jwksServer) RoundTrip(r *http.Request) (*http.Response, error) {
	s.mu.Lock()
	s.fetches++
	latency, netErr := s.latency, s.netErr
	s.mu.Unlock()
	if latency > 0 {
		timer := time.NewTimer(latency)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-r.Context().Done():
			s.mu.Lock()
			s.aborted++
			s.mu.Unlock()
			return nil, r.Context().Err()
		}
	}
	if netErr != nil {
		return nil, netErr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return &http.Response{
		StatusCode: s.code,
		Header:     http.Header{"Content-Type": {"application/json"}},
		Body:       io.NopCloser(strings.NewReader(string(s.body))),
		Request:    r,
	}, nil
}

func TestJWKSURL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		ka := authtest.NewKey(t, dir, "ecdsa", "a")
		kb := authtest.NewKey(t, dir, "ed25519", "b")
		srv := &jwksServer{}
		srv.set(http.StatusOK, jwks(t, jwk(t, ka)))
		cc, _, logs := start(t, auth.Config{
			Issuer: authtest.Issuer, Audience: []string{authtest.Audience}, AllowInsecureTransport: true,
			JWKSURL: "https://idp.test/jwks.json", HTTPClient: &http.Client{Transport: srv, Timeout: time.Second},
		})
		hello := func(k *authtest.Key, kid string) func() (string, error) {
			tok := k.Sign(t, authtest.Claims(time.Now(), "alice", ""), map[string]any{"kid": kid})
			return func() (string, error) { return call(t, cc, "SayHello", "Bearer "+tok) }
		}
		if got := srv.count(); got != 1 {
			t.Fatalf("fetches after start: got %d, want 1", got)
		}
		wantCall(t, hello(ka, "a"), codes.OK, "jwt:https://issuer.test:alice[")

		// A11: a flood of unknown kids refetches at most once per interval.
		for i := range 20 {
			wantCall(t, hello(ka, fmt.Sprintf("random-%d", i)), codes.Unauthenticated, "token signing key is unknown")
		}
		if got := srv.count(); got != 2 {
			t.Errorf("fetches after 20 unknown kids: got %d, want 2", got)
		}

		// Rotation: key b is published; it is found once the unknown-kid
		// limit allows another fetch.
		srv.set(http.StatusOK, jwks(t, jwk(t, ka), jwk(t, kb)))
		wantCall(t, hello(kb, "b"), codes.Unauthenticated, "token signing key is unknown")
		time.Sleep(auth.DefaultUnknownKIDInterval)
		synctest.Wait()
		wantCall(t, hello(kb, "b"), codes.OK, "jwt:https://issuer.test:alice[")
		if got := srv.count(); got != 3 {
			t.Errorf("fetches after rotation: got %d, want 3", got)
		}

		// A13: the endpoint fails from the next scheduled refresh on; known
		// keys keep working, nothing crashes, and the failed fetch is
		// retried in the background with backoff (1 s doubling up to
		// JWKSRetryInterval), not on every call.
		maxPerHour := 1 + int(time.Hour/auth.DefaultJWKSRetryInterval) + 5
		for _, fault := range []struct {
			code int
			body string
		}{{http.StatusInternalServerError, ""}, {http.StatusOK, "{garbage"}, {http.StatusOK, `{"keys":[]}`}} {
			srv.set(fault.code, []byte(fault.body))
			before := srv.count()
			time.Sleep(auth.DefaultJWKSRefreshInterval)
			synctest.Wait()
			wantCall(t, hello(kb, "b"), codes.OK, "jwt:https://issuer.test:alice[")
			wantCall(t, hello(ka, "a"), codes.OK, "jwt:https://issuer.test:alice[")
			if got := srv.count() - before; got < 1 || got > maxPerHour {
				t.Errorf("fetches in an hour of a failing endpoint: got %d, want 1 to %d", got, maxPerHour)
			}
		}
		if !strings.Contains(logs.String(), "jwks_refresh_failed") {
			t.Errorf("logs lack jwks_refresh_failed:\n%s", logs)
		}
	})
}

func TestMint(t *testing.T) {
	dir := t.TempDir()
	var keys []*authtest.Key
	for _, kind := range []string{"ed25519", "ecdsa", "rsa"} {
		keys = append(keys, authtest.NewKey(t, dir, kind, kind))
	}
	a, _ := newAuthenticator(t, authtest.Config(keys...))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, k := range keys {
		t.Run(k.KID, func(t *testing.T) {
			tok, err := auth.MintPEM(privatePEM(t, k), auth.MintOptions{
				Subject: "svc", Scopes: []string{"files:read", "files:write"},
				Issuer: authtest.Issuer, Audience: []string{authtest.Audience}, KeyID: k.KID,
			})
			if err != nil {
				t.Fatalf("MintPEM: %v", err)
			}
			id, result, err := a.Verify(ctx, tok)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if id.Key() != "jwt:"+authtest.Issuer+":svc" || !id.HasScope("files:read") || !id.HasScope("files:write") || result != auth.ResultVerified {
				t.Errorf("Verify: got %+v %q, want jwt:<issuer>:svc with files:read and files:write, %q", id, result, auth.ResultVerified)
			}
		})
	}
	t.Run("lifetime over the maximum", func(t *testing.T) {
		tok, err := auth.Mint(keys[0].Signer, auth.MintOptions{Subject: "svc", Issuer: authtest.Issuer, Audience: []string{authtest.Audience}, TTL: 25 * time.Hour})
		if err != nil {
			t.Fatalf("Mint: %v", err)
		}
		if _, _, err := a.Verify(ctx, tok); status.Code(err) != codes.Unauthenticated {
			t.Errorf("Verify of a 25 h token: got %v, want Unauthenticated", err)
		}
	})
	for _, tc := range []struct {
		name string
		o    auth.MintOptions
	}{
		{"no subject", auth.MintOptions{Issuer: "i", Audience: []string{"a"}}},
		{"no issuer", auth.MintOptions{Subject: "s", Audience: []string{"a"}}},
		{"no audience", auth.MintOptions{Subject: "s", Issuer: "i"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := auth.Mint(keys[0].Signer, tc.o); err == nil {
				t.Errorf("Mint: got nil error, want an error")
			}
		})
	}
	if _, err := auth.ParsePrivateKeyPEM(keys[0].PEM); err == nil {
		t.Errorf("ParsePrivateKeyPEM(public key): got nil error, want an error")
	}
}
