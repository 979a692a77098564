package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/greeter/greeter/proto/greeterpb"
)

// jwksIssuer and jwksAudience are the claims greeterd is told to require.
const (
	jwksIssuer   = "https://idp.test"
	jwksAudience = "greeter"
)

// jwksKey is one IdP signing key.
type jwksKey struct {
	kid  string
	priv ed25519.PrivateKey
}

func newJWKSKey(t *testing.T, kid string) jwksKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return jwksKey{kid: kid, priv: priv}
}

// token signs a token for sub naming kid (which need not be k's).
func (k jwksKey) token(t *testing.T, kid, sub string) string {
	t.Helper()
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{
		"iss": jwksIssuer, "aud": jwksAudience, "sub": sub,
		"iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
	})
	tok.Header["kid"] = kid
	s, err := tok.SignedString(k.priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// jwksIdP is the JWKS endpoint of an identity provider: it answers with the
// keys it publishes after a latency, counts answers and fetches its client
// gave up on, and closes fetched on the first fetch after watch.
type jwksIdP struct {
	mu       sync.Mutex
	body     []byte
	latency  time.Duration
	answered int
	aborted  int
	fetched  chan struct{}
}

// publish serves keys from now on, answering after latency.
func (p *jwksIdP) publish(t *testing.T, latency time.Duration, keys ...jwksKey) {
	t.Helper()
	var set []map[string]string
	for _, k := range keys {
		set = append(set, map[string]string{"kty": "OKP", "crv": "Ed25519", "use": "sig", "kid": k.kid,
			"x": base64.RawURLEncoding.EncodeToString(k.priv.Public().(ed25519.PublicKey))})
	}
	body, err := json.Marshal(map[string]any{"keys": set})
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.body, p.latency = body, latency
}

// watch returns a channel closed by the next fetch.
func (p *jwksIdP) watch() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fetched = make(chan struct{})
	return p.fetched
}

func (p *jwksIdP) counts() (answered, aborted int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.answered, p.aborted
}

func (p *jwksIdP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	body, latency := p.body, p.latency
	if p.fetched != nil {
		close(p.fetched)
		p.fetched = nil
	}
	p.mu.Unlock()
	timer := time.NewTimer(latency)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-r.Context().Done():
		p.mu.Lock()
		p.aborted++
		p.mu.Unlock()
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
	p.mu.Lock()
	p.answered++
	p.mu.Unlock()
}

// jwksServer starts greeterd in dev mode (TLS with the dev CA) verifying
// tokens with the JWK Set at url, with per-peer limits out of the way so
// that every call reaches authentication.
func jwksServer(t *testing.T, env []string, url string, args ...string) (addr, caFile string, log func() string) {
	t.Helper()
	state := t.TempDir()
	srv := bins.StartServer(t, env, append([]string{"--state-dir", state,
		"--jwt-jwks-url", url, "--jwt-issuer", jwksIssuer, "--jwt-audience", jwksAudience,
		"--rate-peer", "100000", "--rate-peer-burst", "100000"}, args...)...)
	return srv.Addr, filepath.Join(state, "ca.pem"), srv.Log.String
}

// jwksClient dials addr over TLS trusting caFile.
func jwksClient(t *testing.T, addr, caFile string) greeterpb.GreeterClient {
	t.Helper()
	ca, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		t.Fatalf("%s holds no certificate", caFile)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(
		&tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS13})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return greeterpb.NewGreeterClient(conn)
}

// jwksHello calls SayHello with token within d.
func jwksHello(c greeterpb.GreeterClient, token string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	_, err := c.SayHello(ctx, &greeterpb.HelloRequest{Name: "jwks"})
	return err
}

// TestHardeningJWKSRotationUnderAbortAttack (R2): the IdP (https, trusted
// by greeterd through SSL_CERT_FILE, answering in 200 ms) rotates to a new
// key while unauthenticated callers hammer greeterd with junk kids and 3 ms
// deadlines. Their calls can no longer abort the key fetch they trigger,
// so a token signed with the new key is accepted within seconds, not after
// the 5-minute unknown-kid budget.
func TestHardeningJWKSRotationUnderAbortAttack(t *testing.T) {
	oldKey, newKey := newJWKSKey(t, "2026-old"), newJWKSKey(t, "2026-new")
	idp := &jwksIdP{}
	idp.publish(t, 0, oldKey)
	ts := httptest.NewTLSServer(idp)
	t.Cleanup(ts.Close)
	caFile := filepath.Join(t.TempDir(), "idp-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	addr, greeterCA, log := jwksServer(t, []string{"SSL_CERT_FILE=" + caFile}, ts.URL+"/jwks.json")
	c := jwksClient(t, addr, greeterCA)
	if err := jwksHello(c, oldKey.token(t, oldKey.kid, "alice"), 30*time.Second); err != nil {
		t.Fatalf("old-key token before the rotation: %v", err)
	}

	// The IdP rotates; the attackers' junk kids trigger the first fetch.
	fetched := idp.watch()
	idp.publish(t, 200*time.Millisecond, oldKey, newKey)
	rotated := time.Now()
	var junk []string
	for i := range 64 {
		junk = append(junk, oldKey.token(t, fmt.Sprintf("junk-%d", i), "mallory"))
	}
	stop := make(chan struct{})
	var attackers sync.WaitGroup
	var attacks [4]int
	for i := range attacks {
		attackers.Go(func() {
			for n := range 5000 {
				select {
				case <-stop:
					return
				default:
				}
				jwksHello(c, junk[(i*16+n)%len(junk)], 3*time.Millisecond)
				attacks[i]++
			}
		})
	}
	halt := sync.OnceFunc(func() { close(stop); attackers.Wait() })
	defer halt()
	select {
	case <-fetched:
	case <-time.After(30 * time.Second):
		t.Fatal("no JWKS fetch within 30s of junk kids")
	}

	var accepted time.Duration
	valid := newKey.token(t, newKey.kid, "alice")
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	for accepted == 0 && time.Since(rotated) < 20*time.Second {
		err := jwksHello(c, valid, 5*time.Second)
		switch status.Code(err) {
		case codes.OK:
			accepted = time.Since(rotated)
		case codes.Unauthenticated:
			<-poll.C
		default:
			t.Fatalf("new-key token: %v", err)
		}
	}
	halt()
	total := 0
	for _, n := range attacks {
		total += n
	}
	answered, aborted := idp.counts()
	t.Logf("rotation to acceptance of a new-key token: %v; %d junk calls with 3 ms deadlines; IdP: %d answered, %d aborted fetches",
		accepted.Round(time.Millisecond), total, answered, aborted)
	if accepted == 0 {
		t.Fatalf("new-key token still refused 20s after the rotation (%d junk calls)", total)
	}
	if accepted > 5*time.Second {
		t.Errorf("new-key token accepted %v after the rotation, want within 5s", accepted)
	}
	if aborted != 0 {
		t.Errorf("%d JWKS fetches were aborted, want 0: callers must not cancel them", aborted)
	}
	if strings.Contains(log(), "jwks_refresh_failed") {
		t.Errorf("greeterd logged a failed JWKS fetch:\n%s", log())
	}
}

// TestHardeningJWKSURLMustBeHTTPS (R2): an http:// --jwt-jwks-url is a
// usage error unless --jwt-jwks-insecure-http is given; with it, keys are
// fetched over plain http.
func TestHardeningJWKSURLMustBeHTTPS(t *testing.T) {
	key := newJWKSKey(t, "k1")
	idp := &jwksIdP{}
	idp.publish(t, 0, key)
	ts := httptest.NewServer(idp)
	t.Cleanup(ts.Close)

	res := bins.RunServer(t, nil, "--state-dir", t.TempDir(), "--jwt-jwks-url", ts.URL+"/jwks.json")
	if res.Code != 2 || !strings.Contains(res.Stderr, "--jwt-jwks-url: must use https://") ||
		!strings.Contains(res.Stderr, "--jwt-jwks-insecure-http") {
		t.Fatalf("http:// JWKS URL without the opt-in: exit %d, stderr:\n%s\nwant exit 2 naming https:// and --jwt-jwks-insecure-http", res.Code, res.Stderr)
	}
	if answered, _ := idp.counts(); answered != 0 {
		t.Errorf("the refused URL was fetched %d times, want 0", answered)
	}

	addr, ca, _ := jwksServer(t, nil, ts.URL+"/jwks.json", "--jwt-jwks-insecure-http")
	if err := jwksHello(jwksClient(t, addr, ca), key.token(t, key.kid, "alice"), 30*time.Second); err != nil {
		t.Errorf("token with --jwt-jwks-insecure-http: %v", err)
	}
}
