package bench

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/greeter/greeter/middleware/auth"
	"github.com/greeter/greeter/middleware/authz"
)

// tokenEnv is an Authenticator with one Ed25519 key (from a fixed seed, as
// the dev key is an Ed25519 key), a token it accepts, and the incoming
// context of an RPC over TLS carrying that token.
type tokenEnv struct {
	a     *auth.Authenticator
	token string
	ctx   context.Context
}

// newTokenEnv returns a tokenEnv. A cacheTTL of time.Nanosecond makes every
// verification miss the cache (an entry expires before the next call).
func newTokenEnv(tb testing.TB, cacheTTL time.Duration) *tokenEnv {
	seed := make([]byte, ed25519.SeedSize)
	copy(seed, "greeter bench token verification")
	key := ed25519.NewKeyFromSeed(seed)
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		tb.Fatal(err)
	}
	pub := filepath.Join(tb.TempDir(), "jwt-public-key.pem")
	if err := os.WriteFile(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		tb.Fatal(err)
	}
	a, err := auth.New(context.Background(), auth.Config{
		PublicKeyFiles: []string{pub},
		Issuer:         "greeterd",
		Audience:       []string{"greeter"},
		CacheTTL:       cacheTTL,
		// No key-file check during a measurement: it would allocate now
		// and then and make allocation counts depend on timing.
		FileCheckInterval: time.Hour,
	})
	if err != nil {
		tb.Fatal(err)
	}
	tok, err := auth.Mint(key, auth.MintOptions{
		Subject: "bench", Scopes: authz.AllScopes(), Issuer: "greeterd", Audience: []string{"greeter"}, TTL: time.Hour,
	})
	if err != nil {
		tb.Fatal(err)
	}
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+tok))
	ctx = peer.NewContext(ctx, &peer.Peer{
		Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50000},
		AuthInfo: credentials.TLSInfo{
			State:          tls.ConnectionState{Version: tls.VersionTLS13, HandshakeComplete: true},
			CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity},
		},
	})
	return &tokenEnv{a: a, token: tok, ctx: ctx}
}

// BenchmarkTokenVerify measures auth.Authenticator on the dev key type
// (EdDSA): Verify of a cached token (the hot path of every RPC after a
// caller's first), Verify with the cache defeated (a signature check and the
// claim checks every time), and Authenticate (the header and transport
// checks, then Verify) with a cached token.
func BenchmarkTokenVerify(b *testing.B) {
	for _, bm := range []struct {
		name     string
		cacheTTL time.Duration
		fn       func(*tokenEnv) error
	}{
		{"cached", 0, func(e *tokenEnv) error { _, _, err := e.a.Verify(e.ctx, e.token); return err }},
		{"uncached", time.Nanosecond, func(e *tokenEnv) error { _, _, err := e.a.Verify(e.ctx, e.token); return err }},
		{"authenticate-cached", 0, func(e *tokenEnv) error { _, err := e.a.Authenticate(e.ctx); return err }},
	} {
		b.Run(bm.name, func(b *testing.B) {
			e := newTokenEnv(b, bm.cacheTTL)
			if err := bm.fn(e); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := bm.fn(e); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// Allocation budgets of the cached token path, which every authenticated
// RPC takes. Measured with Go 1.26 and grpc 1.85: Verify allocates the
// []byte copy of the token it hashes and the copy of the scopes it returns;
// Authenticate adds the copy of the header values that
// metadata.ValueFromIncomingContext returns. Raise a budget only with a
// reason.
const (
	maxCachedVerifyAllocs       = 2
	maxCachedAuthenticateAllocs = 3
)

// TestTokenVerifyCachedAllocs pins the allocations of verifying a cached
// token. The key files are not rechecked during the test (FileCheckInterval
// is an hour) and the token stays valid for an hour, so the path taken is
// the same on every run.
func TestTokenVerifyCachedAllocs(t *testing.T) {
	e := newTokenEnv(t, 0)
	if _, result, err := e.a.Verify(e.ctx, e.token); err != nil || result != auth.ResultVerified {
		t.Fatalf("first Verify: got %q, %v; want %q, nil", result, err, auth.ResultVerified)
	}
	for _, tt := range []struct {
		name string
		max  float64
		fn   func()
	}{
		{"Verify", maxCachedVerifyAllocs, func() {
			if _, result, err := e.a.Verify(e.ctx, e.token); err != nil || result != auth.ResultCached {
				t.Fatalf("got %q, %v; want %q, nil", result, err, auth.ResultCached)
			}
		}},
		{"Authenticate", maxCachedAuthenticateAllocs, func() {
			if _, err := e.a.Authenticate(e.ctx); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := testing.AllocsPerRun(1000, tt.fn)
			t.Logf("%s of a cached token: %v allocs", tt.name, got)
			if got > tt.max {
				t.Errorf("got %v allocs per cached %s, want at most %v", got, tt.name, tt.max)
			}
		})
	}
}
