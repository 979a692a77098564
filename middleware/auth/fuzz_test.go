package auth_test

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/greeter/greeter/identity"
	"github.com/greeter/greeter/middleware/auth"
	"github.com/greeter/greeter/middleware/internal/authtest"
)

// Fixed times of every fuzz token: issued in the past, valid for the rest of
// the century. With deterministic Ed25519 keys they make every seed token the
// same bytes in every process, so the fuzzing coordinator, its workers and
// the committed corpus all agree on which tokens are genuine.
var (
	fuzzIssued  = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	fuzzExpires = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
)

// fuzzKey returns an Ed25519 key derived from seed whose public half is
// written to dir/kid.pem.
func fuzzKey(tb testing.TB, dir, kid string, seed byte) *authtest.Key {
	tb.Helper()
	priv := ed25519.NewKeyFromSeed([]byte(strings.Repeat(string(rune(seed)), ed25519.SeedSize)))
	der, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		tb.Fatalf("marshal public key: %v", err)
	}
	k := &authtest.Key{KID: kid, Signer: priv, Method: jwt.SigningMethodEdDSA, PEMPath: filepath.Join(dir, kid+".pem")}
	k.PEM = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	if err := os.WriteFile(k.PEMPath, k.PEM, 0o600); err != nil {
		tb.Fatalf("write public key: %v", err)
	}
	return k
}

// fuzzClaims are valid claims for subject at any time this century.
func fuzzClaims(subject string) jwt.MapClaims {
	return jwt.MapClaims{
		"iss":   authtest.Issuer,
		"aud":   []string{authtest.Audience},
		"sub":   subject,
		"scope": "files:read",
		"iat":   fuzzIssued.Unix(),
		"nbf":   fuzzIssued.Unix(),
		"exp":   fuzzExpires.Unix(),
	}
}

// tlsPeer makes ctx look like a call over TLS, so that the authenticator
// runs with its production setting (tokens refused without TLS).
func tlsPeer(ctx context.Context) context.Context {
	return peer.NewContext(ctx, &peer.Peer{AuthInfo: credentials.TLSInfo{
		CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity},
	}})
}

// FuzzBearer feeds arbitrary authorization values to the real
// authenticator (two trusted Ed25519 keys, TLS required). A value is
// accepted only if it is the Bearer scheme (any case), a space and one of
// the genuine tokens below, byte for byte (RFC 6750: "Bearer" 1*SP
// b64token, so only spaces may precede the token and nothing may follow
// it). Every rejection is Unauthenticated and its
// message holds no part of the token.
func FuzzBearer(f *testing.F) {
	dir := f.TempDir()
	k1 := fuzzKey(f, dir, "k1", 1)
	k2 := fuzzKey(f, dir, "k2", 2)
	stranger := fuzzKey(f, f.TempDir(), "k1", 3) // same kid as k1, not trusted

	cfg := authtest.Config(k1, k2)
	cfg.AllowInsecureTransport = false
	cfg.MaxTokenLifetime = fuzzExpires.Sub(fuzzIssued)
	var reasons []string // only the fuzz body, which runs serially, appends
	cfg.OnResult = func(_ context.Context, r string) { reasons = append(reasons, r) }
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	a, err := auth.New(ctx, cfg)
	cancel()
	if err != nil {
		f.Fatalf("auth.New: %v", err)
	}

	// genuine maps every token that must be accepted to its subject.
	genuine := map[string]string{
		k1.Sign(f, fuzzClaims("alice"), nil):                        "alice",
		k2.Sign(f, fuzzClaims("bob"), nil):                          "bob",
		k1.Sign(f, fuzzClaims("carol"), map[string]any{"kid": nil}): "carol",
	}
	good := k1.Sign(f, fuzzClaims("alice"), nil)
	parts := strings.Split(good, ".")
	if len(parts) != 3 {
		f.Fatalf("token %q has %d segments", good, len(parts))
	}
	with := func(change func(jwt.MapClaims)) jwt.MapClaims {
		c := fuzzClaims("alice")
		change(c)
		return c
	}
	hs256 := func(key []byte) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, fuzzClaims("alice"))
		tok.Header["kid"] = "k1"
		s, err := tok.SignedString(key)
		if err != nil {
			f.Fatalf("sign HS256: %v", err)
		}
		return s
	}
	noneHeader := b64(`{"alg":"none","typ":"JWT"}`)

	for tok := range genuine {
		f.Add("Bearer " + tok)
	}
	for _, seed := range []string{
		"bearer " + good,
		"BEARER " + good,
		"Bearer  " + good + " ",
		"Bearer\t" + good,
		"Bearer " + good + ".",
		"Bearer " + noneHeader + "." + parts[1] + ".",
		"Bearer " + noneHeader + "." + parts[1] + "." + parts[2],
		"Bearer " + hs256(k1.PEM),
		"Bearer " + hs256([]byte{}),
		"Bearer " + parts[0] + "." + parts[1],
		"Bearer " + good + ".AAAA",
		"Bearer " + parts[0] + "==." + parts[1] + "." + parts[2],
		"Bearer " + parts[0] + "." + parts[1] + "." + parts[2] + "=",
		"Bearer " + tamper(good),
		"Bearer " + trailingBits(good),
		"Bearer " + stranger.Sign(f, fuzzClaims("alice"), nil),
		"Bearer " + k1.Sign(f, with(func(c jwt.MapClaims) { c["exp"] = fuzzIssued.Add(time.Hour).Unix() }), nil),
		"Bearer " + k1.Sign(f, with(func(c jwt.MapClaims) { c["aud"] = "other" }), nil),
		"Bearer " + k1.Sign(f, with(func(c jwt.MapClaims) { delete(c, "sub") }), nil),
		"Bearer " + k1.Sign(f, fuzzClaims("alice"), map[string]any{"kid": "k2"}),
		"Bearer " + k1.Sign(f, fuzzClaims("alice"), map[string]any{"typ": "id_token+jwt"}),
		"Bearer " + k1.Sign(f, fuzzClaims("alice"), map[string]any{"crit": []string{"exp"}}),
		"Bearer " + strings.Repeat(".", 8<<10-len("Bearer ")),
		"Bearer " + strings.Repeat(".", 16<<10),
		"Bearer ..",
		"Bearer " + good[:len(good)/2],
		"Basic x",
		"Basic YWxpY2U6cHc=",
		"Bearer",
		"Bearer ",
		"",
	} {
		f.Add(seed)
	}

	f.Fuzz(func(t *testing.T, hdr string) {
		reasons = reasons[:0]
		ctx := metadata.NewIncomingContext(tlsPeer(context.Background()), metadata.MD{"authorization": {hdr}})
		id, err := a.Authenticate(ctx)

		scheme, rest, spaced := strings.Cut(hdr, " ")
		token := strings.TrimLeft(rest, " ")
		subject, isGenuine := genuine[token]
		isGenuine = isGenuine && spaced && strings.EqualFold(scheme, "bearer")

		if len(reasons) != 1 {
			t.Errorf("OnResult called %d times (%q), want once", len(reasons), reasons)
		}
		if err == nil {
			if !isGenuine {
				t.Fatalf("accepted %q as %+v; it is not \"Bearer \" and a genuine token", hdr, id)
			}
			if id.Kind != identity.KindJWT || id.Name != subject {
				t.Errorf("accepted %q as %q, want subject %q", hdr, id.Key(), subject)
			}
			return
		}
		if isGenuine && rest == token {
			t.Errorf("rejected a genuine token: %v", err)
		}
		st, ok := status.FromError(err)
		if !ok || st.Code() != codes.Unauthenticated {
			t.Fatalf("rejection of %q: got %v (%T), want an Unauthenticated status", hdr, err, err)
		}
		msg := st.Message()
		if strings.Contains(msg, "eyJ") {
			t.Errorf("rejection message %q contains a token", msg)
		}
		for seg := range strings.SplitSeq(token, ".") {
			if len(seg) >= 8 && strings.Contains(msg, seg) {
				t.Errorf("rejection message %q contains the token segment %q", msg, seg)
			}
		}
		for _, r := range reasons {
			if r == auth.ResultVerified || r == auth.ResultCached {
				t.Errorf("rejection of %q reported result %q", hdr, r)
			}
		}
	})
}

// TestFuzzBearerTokensAreDeterministic pins what FuzzBearer relies on:
// minting the same claims with the same seed gives the same bytes, so a
// token found by one fuzzing process means the same in every other.
func TestFuzzBearerTokensAreDeterministic(t *testing.T) {
	a := fuzzKey(t, t.TempDir(), "k1", 1).Sign(t, fuzzClaims("alice"), nil)
	b := fuzzKey(t, t.TempDir(), "k1", 1).Sign(t, fuzzClaims("alice"), nil)
	if a != b {
		t.Fatalf("two mints of the same token differ:\n%s\n%s", a, b)
	}
}

// TestBearerTokenWhitespace pins RFC 6750's grammar: whitespace other than
// the spaces after the scheme is not part of a bearer credential.
func TestBearerTokenWhitespace(t *testing.T) {
	ed := authtest.NewKey(t, t.TempDir(), "ed25519", "k1")
	a, _ := newAuthenticator(t, authtest.Config(ed))
	tok := ed.Token(t, "alice", "")
	for _, h := range []string{"Bearer " + tok + "\u00a0", "Bearer \u0085" + tok, "Bearer \v" + tok, "Bearer " + tok + "\n", "Bearer " + tok + " "} {
		ctx := metadata.NewIncomingContext(tlsPeer(context.Background()), metadata.MD{"authorization": {h}})
		if _, err := a.Authenticate(ctx); status.Code(err) != codes.Unauthenticated {
			t.Errorf("Authenticate(%q): got %v, want Unauthenticated", h, err)
		}
	}
	ctx := metadata.NewIncomingContext(tlsPeer(context.Background()), metadata.MD{"authorization": {"bearer   " + tok}})
	if _, err := a.Authenticate(ctx); err != nil {
		t.Errorf("several spaces after the scheme: %v, want accepted", err)
	}
}
