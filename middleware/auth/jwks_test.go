package auth_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/greeter/greeter/middleware/auth"
	"github.com/greeter/greeter/middleware/internal/authtest"
)

// idp is a JWKS endpoint for httptest servers: it answers with the current
// key set after a latency, the way a distant IdP does, and counts the
// answers it sent and the fetches its client gave up on.
type idp struct {
	mu       sync.Mutex
	body     []byte
	latency  time.Duration
	answered int
	aborted  int
}

func (p *idp) set(body []byte, latency time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.body, p.latency = body, latency
}

func (p *idp) counts() (answered, aborted int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.answered, p.aborted
}

func (p *idp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	body, latency := p.body, p.latency
	p.mu.Unlock()
	if latency > 0 {
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
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
	p.mu.Lock()
	p.answered++
	p.mu.Unlock()
}

// verifyWithin verifies token with a deadline d from now.
func verifyWithin(a *auth.Authenticator, token string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	_, _, err := a.Verify(ctx, token)
	return err
}

// junkToken is a token naming a kid no IdP publishes, as an
// unauthenticated attacker sends them.
func junkToken(t *testing.T, k *authtest.Key, kid string) string {
	t.Helper()
	return k.Sign(t, authtest.Claims(time.Now(), "mallory", ""), map[string]any{"kid": kid})
}

// urlConfig is an auth.Config whose only key source is the JWKS URL.
func urlConfig(url string, client *http.Client) auth.Config {
	return auth.Config{Issuer: authtest.Issuer, Audience: []string{authtest.Audience}, AllowInsecureTransport: true,
		JWKSURL: url, HTTPClient: client}
}

// R2: during an IdP key rotation, an unauthenticated caller with a junk kid
// and a 3 ms deadline neither aborts the fetch it triggers nor spends the
// unknown-kid budget on an aborted fetch; a token signed with the new key
// is accepted as soon as the IdP has answered (over https, the IdP taking
// 200 ms to answer).
func TestUnknownKIDFetchOutlivesAbortingCaller(t *testing.T) {
	dir := t.TempDir()
	oldKey := authtest.NewKey(t, dir, "ed25519", "old")
	newKey := authtest.NewKey(t, dir, "ed25519", "new")
	p := &idp{}
	p.set(jwks(t, jwk(t, oldKey)), 0)
	srv := httptest.NewTLSServer(p)
	t.Cleanup(srv.Close)
	a, _ := newAuthenticator(t, urlConfig(srv.URL+"/jwks.json", srv.Client()))

	p.set(jwks(t, jwk(t, oldKey), jwk(t, newKey)), 200*time.Millisecond)
	rotated := time.Now()
	if err := verifyWithin(a, junkToken(t, oldKey, "junk-1"), 3*time.Millisecond); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("junk token: got %v, want Unauthenticated", err)
	}
	if err := verifyWithin(a, newKey.Token(t, "alice", ""), 10*time.Second); err != nil {
		t.Fatalf("new-key token right after the rotation: got %v, want it accepted", err)
	}
	took := time.Since(rotated)
	t.Logf("new-key token accepted %v after the rotation, under the abort attack", took.Round(time.Millisecond))
	if took > 2*time.Second {
		t.Errorf("new-key token accepted %v after the rotation, want within 2s", took)
	}
	if answered, aborted := p.counts(); aborted != 0 || answered != 2 {
		t.Errorf("IdP: %d answered, %d aborted fetches; want 2 answered (start, rotation), 0 aborted", answered, aborted)
	}
}

// R2: a revoked key stops being trusted at the scheduled refresh even while
// callers with 3 ms deadlines arrive exactly when it is due: the fetch is
// the server's, not theirs.
func TestScheduledRefreshOutlivesAbortingCallers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		ka := authtest.NewKey(t, dir, "ed25519", "a")
		kb := authtest.NewKey(t, dir, "ed25519", "b")
		srv := &jwksServer{}
		srv.set(http.StatusOK, jwks(t, jwk(t, ka), jwk(t, kb)))
		a, _ := newAuthenticator(t, urlConfig("https://idp.test/jwks.json", &http.Client{Transport: srv}))
		if err := verifyWithin(a, kb.Token(t, "alice", ""), 10*time.Second); err != nil {
			t.Fatalf("key b before revocation: %v", err)
		}

		srv.set(http.StatusOK, jwks(t, jwk(t, ka))) // the IdP revokes b
		srv.setLatency(100 * time.Millisecond)
		time.Sleep(auth.DefaultJWKSRefreshInterval) // the refresh is due
		for i := range 10 {
			verifyWithin(a, junkToken(t, ka, "junk"), 3*time.Millisecond)
			verifyWithin(a, ka.Sign(t, authtest.Claims(time.Now(), "mallory", ""), map[string]any{"jti": i}), 3*time.Millisecond)
			time.Sleep(3 * time.Millisecond)
		}
		time.Sleep(time.Second)
		synctest.Wait()

		err := verifyWithin(a, kb.Sign(t, authtest.Claims(time.Now(), "alice", ""), map[string]any{"jti": "after"}), 10*time.Second)
		if st := status.Convert(err); st.Code() != codes.Unauthenticated || st.Message() != "token signing key is unknown" {
			t.Errorf("revoked key b after the scheduled refresh: got %v, want Unauthenticated \"token signing key is unknown\"", err)
		}
		if got := srv.abortedCount(); got != 0 {
			t.Errorf("callers aborted %d fetches, want 0", got)
		}
	})
}

// R2: the unknown-kid budget is spent only by fetches that got an HTTP
// answer. A fetch cut off by the network spends nothing and is retried in
// the background; an answered one (even HTTP 500) spends it.
func TestUnknownKIDBudgetSpentOnlyByAnsweredFetches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		ka := authtest.NewKey(t, dir, "ed25519", "a")
		kb := authtest.NewKey(t, dir, "ed25519", "b")
		kc := authtest.NewKey(t, dir, "ed25519", "c")
		srv := &jwksServer{}
		srv.set(http.StatusOK, jwks(t, jwk(t, ka)))
		a, _ := newAuthenticator(t, urlConfig("https://idp.test/jwks.json", &http.Client{Transport: srv}))

		// The IdP rotates to b, but the network to it is down.
		srv.set(http.StatusOK, jwks(t, jwk(t, ka), jwk(t, kb)))
		srv.setNetErr(errors.New("connection refused"))
		if err := verifyWithin(a, kb.Token(t, "alice", ""), 10*time.Second); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("key b while the IdP is unreachable: got %v, want Unauthenticated", err)
		}
		if got := srv.count(); got != 2 {
			t.Fatalf("fetches: got %d, want 2 (start, unknown kid)", got)
		}
		srv.setNetErr(nil) // the network is back
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if got := srv.count(); got != 3 {
			t.Errorf("fetches 2s after a network failure: got %d, want 3 (retried in the background)", got)
		}
		if err := verifyWithin(a, kb.Token(t, "alice", ""), 10*time.Second); err != nil {
			t.Errorf("key b once the IdP is reachable: got %v, want it accepted", err)
		}

		// An answered fetch spends the budget: the next unknown kid within
		// the interval fetches nothing.
		srv.set(http.StatusInternalServerError, nil)
		if err := verifyWithin(a, kc.Token(t, "alice", ""), 10*time.Second); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("unknown key c: got %v, want Unauthenticated", err)
		}
		before := srv.count()
		if err := verifyWithin(a, junkToken(t, ka, "junk"), 10*time.Second); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("junk kid: got %v, want Unauthenticated", err)
		}
		if got := srv.count(); got != before {
			t.Errorf("fetches for a second unknown kid after an HTTP 500: got %d, want %d", got, before)
		}
	})
}

// R2: junk kids sent without pause from before an IdP rotation can spend
// the unknown-kid budget on fetches that answered with the old keys, but
// no longer abort them: a new-key token is accepted at most one
// UnknownKIDInterval after the rotation. (Before, the attacker aborted every
// fetch, scheduled ones included; a new-key token got in only if its own
// RPC happened to win the race for a due retry.)
func TestSustainedJunkKIDsDelayRotationAtMostOneInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		ka := authtest.NewKey(t, dir, "ed25519", "a")
		kb := authtest.NewKey(t, dir, "ed25519", "b")
		srv := &jwksServer{}
		srv.set(http.StatusOK, jwks(t, jwk(t, ka)))
		a, _ := newAuthenticator(t, urlConfig("https://idp.test/jwks.json", &http.Client{Transport: srv}))
		srv.setLatency(100 * time.Millisecond)

		stop := make(chan struct{})
		attacker := make(chan struct{})
		go func() {
			defer close(attacker)
			junk := junkToken(t, ka, "junk")
			for range 100_000 {
				select {
				case <-stop:
					return
				default:
				}
				verifyWithin(a, junk, 3*time.Millisecond)
				time.Sleep(10 * time.Millisecond)
			}
		}()
		time.Sleep(time.Minute)
		srv.set(http.StatusOK, jwks(t, jwk(t, ka), jwk(t, kb))) // the IdP rotates
		rotated := time.Now()
		valid := kb.Token(t, "alice", "")
		for verifyWithin(a, valid, 10*time.Second) != nil && time.Since(rotated) < 2*auth.DefaultUnknownKIDInterval {
			time.Sleep(time.Second)
		}
		took := time.Since(rotated)
		close(stop)
		<-attacker
		t.Logf("new-key token accepted %v after the rotation under a sustained attack", took)
		if took > auth.DefaultUnknownKIDInterval {
			t.Errorf("new-key token accepted %v after the rotation, want at most %v", took, auth.DefaultUnknownKIDInterval)
		}
		if got := srv.abortedCount(); got != 0 {
			t.Errorf("callers aborted %d fetches, want 0", got)
		}
	})
}

// R2: a token with a known kid never waits for key I/O, even when a
// refresh is due and the IdP hangs: the key set is one atomic read.
func TestVerifyNeverWaitsForKeyRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		ka := authtest.NewKey(t, dir, "ed25519", "a")
		srv := &jwksServer{}
		srv.set(http.StatusOK, jwks(t, jwk(t, ka)))
		cfg := urlConfig("https://idp.test/jwks.json", &http.Client{Transport: srv})
		cfg.PublicKeyFiles = []string{authtest.NewKey(t, dir, "ed25519", "f").PEMPath}
		a, _ := newAuthenticator(t, cfg)

		srv.setLatency(time.Minute) // the IdP hangs
		time.Sleep(auth.DefaultJWKSRefreshInterval)
		for i := range 3 {
			start := time.Now()
			tok := ka.Sign(t, authtest.Claims(start, "alice", ""), map[string]any{"jti": i})
			if err := verifyWithin(a, tok, 10*time.Second); err != nil {
				t.Fatalf("known key while a refresh is due: %v", err)
			}
			if waited := time.Since(start); waited != 0 {
				t.Fatalf("Verify waited %v for a key refresh, want 0", waited)
			}
			time.Sleep(auth.DefaultFileCheckInterval)
		}
	})
}

// R2: Close cancels a fetch in progress and waits for it; afterwards the
// last keys still verify and an unknown kid waits for nothing.
func TestCloseCancelsFetch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		ka := authtest.NewKey(t, dir, "ed25519", "a")
		srv := &jwksServer{}
		srv.set(http.StatusOK, jwks(t, jwk(t, ka)))
		a, _ := newAuthenticator(t, urlConfig("https://idp.test/jwks.json", &http.Client{Transport: srv}))

		srv.setLatency(time.Minute) // the IdP hangs
		verifyWithin(a, junkToken(t, ka, "junk"), time.Millisecond)
		synctest.Wait()
		if got := srv.abortedCount(); got != 0 {
			t.Fatalf("the caller's deadline aborted %d fetches, want 0", got)
		}
		start := time.Now()
		a.Close()
		if waited := time.Since(start); waited != 0 {
			t.Errorf("Close waited %v for a hung fetch, want it cancelled", waited)
		}
		if got := srv.abortedCount(); got != 1 {
			t.Errorf("fetches cancelled by Close: got %d, want 1", got)
		}
		if err := verifyWithin(a, ka.Token(t, "alice", ""), 10*time.Second); err != nil {
			t.Errorf("known key after Close: %v", err)
		}
		start = time.Now()
		if err := verifyWithin(a, junkToken(t, ka, "junk-2"), 10*time.Second); status.Code(err) != codes.Unauthenticated {
			t.Errorf("unknown kid after Close: got %v, want Unauthenticated", err)
		}
		if waited := time.Since(start); waited != 0 {
			t.Errorf("unknown kid after Close waited %v, want 0", waited)
		}
		a.Close() // a second Close is harmless
	})
}

// R2: --jwt-jwks-url must be https unless plain http is explicitly allowed.
func TestJWKSURLMustBeHTTPS(t *testing.T) {
	ka := authtest.NewKey(t, t.TempDir(), "ed25519", "a")
	p := &idp{}
	p.set(jwks(t, jwk(t, ka)), 0)
	plain := httptest.NewServer(p)
	t.Cleanup(plain.Close)
	for _, tc := range []struct {
		name, url string
		allowHTTP bool
		wantErr   string // "" for success
	}{
		{"http refused", plain.URL + "/jwks.json", false, "https"},
		{"http with the opt-in", plain.URL + "/jwks.json", true, ""},
		{"other scheme", "ftp://idp.test/jwks.json", true, "https"},
		{"relative", "jwks.json", false, "absolute"},
		{"no host", "https:///jwks.json", false, "absolute"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := urlConfig(tc.url, nil)
			cfg.AllowInsecureJWKSURL = tc.allowHTTP
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			a, err := auth.New(ctx, cfg)
			if err == nil {
				a.Close()
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("auth.New: %v, want success", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("auth.New: got %v, want an error mentioning %q", err, tc.wantErr)
			}
		})
	}
}

// R2: the JWKS client follows a redirect only on the same host and never
// from https to http.
func TestJWKSRedirects(t *testing.T) {
	ka := authtest.NewKey(t, t.TempDir(), "ed25519", "a")
	p := &idp{}
	p.set(jwks(t, jwk(t, ka)), 0)
	plain := httptest.NewServer(p)
	t.Cleanup(plain.Close)
	mux := http.NewServeMux()
	mux.Handle("/jwks.json", p)
	mux.Handle("/moved", http.RedirectHandler("/jwks.json", http.StatusFound))
	mux.Handle("/to-http", http.RedirectHandler(plain.URL+"/jwks.json", http.StatusFound))
	tlsSrv := httptest.NewUnstartedServer(mux)
	tlsSrv.StartTLS()
	t.Cleanup(tlsSrv.Close)
	_, port, _ := net.SplitHostPort(tlsSrv.Listener.Addr().String())
	mux.Handle("/to-other-host", http.RedirectHandler("https://example.com:"+port+"/jwks.json", http.StatusFound))
	// example.com resolves to the test server, so that following a
	// redirect to another host would succeed if it were allowed.
	tr := tlsSrv.Client().Transport.(*http.Transport).Clone()
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if strings.HasPrefix(addr, "example.com:") {
			addr = tlsSrv.Listener.Addr().String()
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	client := &http.Client{Transport: tr}
	for _, tc := range []struct {
		path    string
		wantErr bool
	}{
		{"/jwks.json", false},
		{"/moved", false},
		{"/to-http", true},
		{"/to-other-host", true},
	} {
		t.Run(tc.path, func(t *testing.T) {
			cfg := urlConfig(tlsSrv.URL+tc.path, client)
			cfg.AllowInsecureJWKSURL = true // even then, https never redirects to http
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			a, err := auth.New(ctx, cfg)
			if err == nil {
				a.Close()
			}
			if gotErr := err != nil; gotErr != tc.wantErr {
				t.Errorf("auth.New with the JWKS at %s: got error %v, want error: %v", tc.path, err, tc.wantErr)
			}
		})
	}
}
