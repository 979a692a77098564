package auth_test

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/greeter/greeter/middleware/auth"
	"github.com/greeter/greeter/middleware/authz"
	"github.com/greeter/greeter/middleware/internal/authtest"
	"github.com/greeter/greeter/middleware/internal/greetertest"
	"github.com/greeter/greeter/middleware/ratelimit"
	"github.com/greeter/greeter/middleware/standard"
	"github.com/greeter/greeter/proto/greeterpb"
)

// unlimited switches every rate limit off, so that only authentication and
// authorization decide.
var unlimited = ratelimit.Options{
	PerPeer:                ratelimit.Rate{PerSecond: -1},
	Unary:                  ratelimit.Rate{PerSecond: -1},
	Transfer:               ratelimit.Rate{PerSecond: -1},
	MaxConcurrentTransfers: -1,
	Bandwidth:              -1,
}

// results records the reasons reported through auth.Config.OnResult.
type results struct {
	mu   sync.Mutex
	list []string
}

func (r *results) add(reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.list = append(r.list, reason)
}

func (r *results) count(reason string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, s := range r.list {
		if s == reason {
			n++
		}
	}
	return n
}

// start builds an Authenticator from cfg and serves the full standard
// chain with it over bufconn. Its logs are checked for tokens at the end.
func start(t *testing.T, cfg auth.Config) (*grpc.ClientConn, *results, *greetertest.LogBuffer) {
	t.Helper()
	logger, logs := greetertest.NewLogger()
	cfg.Logger = logger
	a, r := newAuthenticator(t, cfg)
	chain := standard.Chain(standard.Config{Logger: logger, Auth: a.Plugin(), Limiter: ratelimit.New(unlimited)})
	cc := greetertest.Start(t, chain.ServerOptions())
	t.Cleanup(func() {
		if strings.Contains(logs.String(), "eyJ") {
			t.Errorf("logs contain a token:\n%s", logs.String())
		}
	})
	return cc, r, logs
}

func newAuthenticator(t *testing.T, cfg auth.Config) (*auth.Authenticator, *results) {
	t.Helper()
	var r results
	cfg.OnResult = func(_ context.Context, reason string) { r.add(reason) }
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, err := auth.New(ctx, cfg)
	if err != nil {
		t.Fatalf("auth.New: %v", err)
	}
	t.Cleanup(a.Close)
	return a, &r
}

// call invokes method with the given authorization values and returns the
// text the fake service echoed (it names the caller's identity).
func call(t *testing.T, cc *grpc.ClientConn, method string, authorization ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if len(authorization) > 0 {
		md := metadata.MD{"authorization": authorization}
		ctx = metadata.NewOutgoingContext(ctx, md)
	}
	c := greeterpb.NewGreeterClient(cc)
	switch method {
	case "SayHello":
		r, err := c.SayHello(ctx, &greeterpb.HelloRequest{Name: "bob"})
		return r.GetMessage(), err
	case "StatFile":
		r, err := c.StatFile(ctx, &greeterpb.MetaData{Filename: "a", Extension: ".txt"})
		return r.GetName(), err
	case "DeleteFile":
		r, err := c.DeleteFile(ctx, &greeterpb.MetaData{Filename: "a", Extension: ".txt"})
		return r.GetMessage(), err
	case "UploadFile":
		s, err := c.UploadFile(ctx)
		if err != nil {
			return "", err
		}
		for _, m := range []*greeterpb.UploadFileRequest{
			{Request: &greeterpb.UploadFileRequest_Metadata{Metadata: &greeterpb.MetaData{Filename: "a", Extension: ".txt"}}},
			{Request: &greeterpb.UploadFileRequest_ChunkData{ChunkData: []byte("hello")}},
		} {
			if err := s.Send(m); err != nil && !errors.Is(err, io.EOF) {
				return "", err
			}
		}
		r, err := s.CloseAndRecv()
		return r.GetMessage(), err
	case "DownloadFile":
		s, err := c.DownloadFile(ctx, &greeterpb.MetaData{Filename: "a", Limit: 10})
		if err != nil {
			return "", err
		}
		for {
			if _, err := s.Recv(); errors.Is(err, io.EOF) {
				return "downloaded", nil
			} else if err != nil {
				return "", err
			}
		}
	}
	t.Fatalf("unknown method %q", method)
	return "", nil
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// tamper changes one character in the middle of the signature.
func tamper(token string) string {
	i := strings.LastIndexByte(token, '.') + 5
	c := byte('A')
	if token[i] == 'A' {
		c = 'B'
	}
	return token[:i] + string(c) + token[i+1:]
}

// trailingBits sets a non-zero unused bit in the signature's last
// base64url character, which strict decoding refuses.
func trailingBits(token string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, token[len(token)-1])
	return token[:len(token)-1] + string(alphabet[last|1])
}

func TestAuthenticationThroughChain(t *testing.T) {
	dir := t.TempDir()
	ed := authtest.NewKey(t, dir, "ed25519", "k1")
	ec := authtest.NewKey(t, dir, "ecdsa", "k2")
	stranger := authtest.NewKey(t, t.TempDir(), "ed25519", "k1") // same kid, key not trusted
	cc, _, _ := start(t, authtest.Config(ed, ec))

	now := time.Now()
	valid := func() jwt.MapClaims { return authtest.Claims(now, "alice", "files:read") }
	with := func(change func(jwt.MapClaims)) jwt.MapClaims {
		c := valid()
		change(c)
		return c
	}
	noneHeader := b64(`{"alg":"none","typ":"JWT"}`)
	claimsSeg := b64(`{"iss":"https://issuer.test","aud":"greeterd","sub":"alice","exp":` +
		strconv.FormatInt(now.Add(time.Minute).Unix(), 10) + `}`)
	goodToken := ed.Sign(t, valid(), nil)
	hmacWithPEM := func() string {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, valid())
		tok.Header["kid"] = "k1"
		s, err := tok.SignedString(ed.PEM)
		if err != nil {
			t.Fatalf("sign HS256: %v", err)
		}
		return s
	}()
	expired := with(func(c jwt.MapClaims) {
		c["iat"] = now.Add(-20 * time.Minute).Unix()
		c["nbf"] = now.Add(-20 * time.Minute).Unix()
		c["exp"] = now.Add(-10 * time.Minute).Unix()
	})
	parts := strings.Split(goodToken, ".")

	tests := []struct {
		name     string
		auth     []string
		method   string
		wantCode codes.Code
		wantMsg  string // exact status message, or a substring of the echo on OK
	}{
		// A1, A2
		{"no token", nil, "SayHello", codes.Unauthenticated, "missing bearer token"},
		{"wrong scheme", []string{"Basic YWxpY2U6cHc="}, "SayHello", codes.Unauthenticated, "authorization scheme must be Bearer"},
		{"empty token", []string{"Bearer "}, "SayHello", codes.Unauthenticated, "missing bearer token"},
		{"scheme only", []string{"Bearer"}, "SayHello", codes.Unauthenticated, "missing bearer token"},
		{"two values, first valid", []string{"Bearer " + goodToken, "Bearer x"}, "SayHello", codes.Unauthenticated, "exactly one authorization header is required"},
		{"lowercase scheme", []string{"bearer " + goodToken}, "SayHello", codes.OK, "jwt:https://issuer.test:alice[files:read]"},
		// A4
		{"oversized header", []string{"Bearer " + strings.Repeat("a", 9<<10)}, "SayHello", codes.Unauthenticated, "authorization header too large"},
		{"1 MiB of dots", []string{"Bearer " + strings.Repeat(".", 1<<20)}, "SayHello", codes.Unauthenticated, "authorization header too large"},
		// A3
		{"two segments", []string{"Bearer " + parts[0] + "." + parts[1]}, "SayHello", codes.Unauthenticated, "malformed token"},
		{"four segments", []string{"Bearer " + goodToken + ".AAAA"}, "SayHello", codes.Unauthenticated, "malformed token"},
		{"bad base64", []string{"Bearer !!!." + parts[1] + "." + parts[2]}, "SayHello", codes.Unauthenticated, "malformed token"},
		{"padded segment", []string{"Bearer " + parts[0] + "==." + parts[1] + "." + parts[2]}, "SayHello", codes.Unauthenticated, "malformed token"},
		{"non-zero trailing bits", []string{"Bearer " + trailingBits(goodToken)}, "SayHello", codes.Unauthenticated, "malformed token"},
		{"garbage", []string{"Bearer not-a-jwt"}, "SayHello", codes.Unauthenticated, "malformed token"},
		// A5, A6
		{"alg none without signature", []string{"Bearer " + noneHeader + "." + claimsSeg + "."}, "SayHello", codes.Unauthenticated, "token algorithm not allowed"},
		{"alg none with signature", []string{"Bearer " + noneHeader + "." + claimsSeg + "." + b64("sig")}, "SayHello", codes.Unauthenticated, "token algorithm not allowed"},
		{"HS256 MACed with the public key PEM", []string{"Bearer " + hmacWithPEM}, "SayHello", codes.Unauthenticated, "token algorithm not allowed"},
		{"ES256 under the EdDSA key's kid", []string{"Bearer " + ec.Sign(t, valid(), map[string]any{"kid": "k1"})}, "SayHello", codes.Unauthenticated, "token algorithm not allowed"},
		// A7
		{"tampered signature and expired", []string{"Bearer " + tamper(ed.Sign(t, expired, nil))}, "SayHello", codes.Unauthenticated, "token signature is invalid"},
		{"signed by an untrusted key", []string{"Bearer " + stranger.Sign(t, valid(), nil)}, "SayHello", codes.Unauthenticated, "token signature is invalid"},
		// A8
		{"expired", []string{"Bearer " + ed.Sign(t, expired, nil)}, "SayHello", codes.Unauthenticated, "token expired"},
		{"expired within leeway", []string{"Bearer " + ed.Sign(t, with(func(c jwt.MapClaims) {
			c["iat"] = now.Add(-10 * time.Minute).Unix()
			c["exp"] = now.Add(-10 * time.Second).Unix()
		}), nil)}, "SayHello", codes.OK, "jwt:https://issuer.test:alice["},
		{"nbf in the future", []string{"Bearer " + ed.Sign(t, with(func(c jwt.MapClaims) { c["nbf"] = now.Add(5 * time.Minute).Unix() }), nil)}, "SayHello", codes.Unauthenticated, "token not yet valid"},
		{"iat in the future", []string{"Bearer " + ed.Sign(t, with(func(c jwt.MapClaims) { c["iat"] = now.Add(5 * time.Minute).Unix() }), nil)}, "SayHello", codes.Unauthenticated, "token not yet valid"},
		{"no exp", []string{"Bearer " + ed.Sign(t, with(func(c jwt.MapClaims) { delete(c, "exp") }), nil)}, "SayHello", codes.Unauthenticated, "token is missing a required claim"},
		{"lifetime over the maximum", []string{"Bearer " + ed.Sign(t, with(func(c jwt.MapClaims) { c["exp"] = now.Add(48 * time.Hour).Unix() }), nil)}, "SayHello", codes.Unauthenticated, "token lifetime too long"},
		{"no iat and exp too far", []string{"Bearer " + ed.Sign(t, with(func(c jwt.MapClaims) {
			delete(c, "iat")
			c["exp"] = now.Add(48 * time.Hour).Unix()
		}), nil)}, "SayHello", codes.Unauthenticated, "token lifetime too long"},
		// A9
		{"wrong iss", []string{"Bearer " + ed.Sign(t, with(func(c jwt.MapClaims) { c["iss"] = "https://evil.test" }), nil)}, "SayHello", codes.Unauthenticated, "token issuer not accepted"},
		{"missing iss", []string{"Bearer " + ed.Sign(t, with(func(c jwt.MapClaims) { delete(c, "iss") }), nil)}, "SayHello", codes.Unauthenticated, "token is missing a required claim"},
		{"aud missing", []string{"Bearer " + ed.Sign(t, with(func(c jwt.MapClaims) { delete(c, "aud") }), nil)}, "SayHello", codes.Unauthenticated, "token is missing a required claim"},
		{"aud another service", []string{"Bearer " + ed.Sign(t, with(func(c jwt.MapClaims) { c["aud"] = "other" }), nil)}, "SayHello", codes.Unauthenticated, "token audience not accepted"},
		{"aud other and ours", []string{"Bearer " + ed.Sign(t, with(func(c jwt.MapClaims) { c["aud"] = []string{"other", authtest.Audience} }), nil)}, "SayHello", codes.OK, "jwt:https://issuer.test:alice["},
		{"aud a number", []string{"Bearer " + ed.Sign(t, with(func(c jwt.MapClaims) { c["aud"] = 42 }), nil)}, "SayHello", codes.Unauthenticated, "malformed token"},
		{"no sub", []string{"Bearer " + ed.Sign(t, with(func(c jwt.MapClaims) { delete(c, "sub") }), nil)}, "SayHello", codes.Unauthenticated, "token is missing a required claim"},
		// A10
		{"typ of another token kind", []string{"Bearer " + ed.Sign(t, valid(), map[string]any{"typ": "id_token+jwt"})}, "SayHello", codes.Unauthenticated, "token type not accepted"},
		{"typ JWT", []string{"Bearer " + ed.Sign(t, valid(), map[string]any{"typ": "JWT"})}, "SayHello", codes.OK, "jwt:https://issuer.test:alice["},
		{"typ application/at+jwt", []string{"Bearer " + ed.Sign(t, valid(), map[string]any{"typ": "application/at+jwt"})}, "SayHello", codes.OK, "jwt:https://issuer.test:alice["},
		{"no typ", []string{"Bearer " + ed.Sign(t, valid(), map[string]any{"typ": nil})}, "SayHello", codes.OK, "jwt:https://issuer.test:alice["},
		{"crit header", []string{"Bearer " + ed.Sign(t, valid(), map[string]any{"crit": []string{"exp"}})}, "SayHello", codes.Unauthenticated, "malformed token"},
		// A11, A12
		{"unknown kid", []string{"Bearer " + ed.Sign(t, valid(), map[string]any{"kid": "k9"})}, "SayHello", codes.Unauthenticated, "token signing key is unknown"},
		{"kid path traversal", []string{"Bearer " + ed.Sign(t, valid(), map[string]any{"kid": "../../dev/null"})}, "SayHello", codes.Unauthenticated, "token signing key is unknown"},
		{"kid SQL", []string{"Bearer " + ed.Sign(t, valid(), map[string]any{"kid": "' OR 1=1 --"})}, "SayHello", codes.Unauthenticated, "token signing key is unknown"},
		{"jku and no kid", []string{"Bearer " + stranger.Sign(t, valid(), map[string]any{"kid": nil, "jku": "https://evil.test/jwks"})}, "SayHello", codes.Unauthenticated, "token signature is invalid"},
		{"no kid, trusted key", []string{"Bearer " + ed.Sign(t, valid(), map[string]any{"kid": nil})}, "SayHello", codes.OK, "jwt:https://issuer.test:alice["},
		{"ES256 key", []string{"Bearer " + ec.Token(t, "carol", "files:read")}, "SayHello", codes.OK, "jwt:https://issuer.test:carol[files:read]"},
		// A14: scopes
		{"no scope, SayHello", []string{"Bearer " + ed.Token(t, "alice", "")}, "SayHello", codes.OK, "jwt:https://issuer.test:alice[]"},
		{"read scope, StatFile", []string{"Bearer " + goodToken}, "StatFile", codes.OK, "jwt:https://issuer.test:alice[files:read]"},
		{"read scope, DownloadFile", []string{"Bearer " + goodToken}, "DownloadFile", codes.OK, "downloaded"},
		{"read scope, UploadFile", []string{"Bearer " + goodToken}, "UploadFile", codes.PermissionDenied, "missing scope files:write"},
		{"read scope, DeleteFile", []string{"Bearer " + goodToken}, "DeleteFile", codes.PermissionDenied, "missing scope files:delete"},
		{"no scope, StatFile", []string{"Bearer " + ed.Token(t, "alice", "")}, "StatFile", codes.PermissionDenied, "missing scope files:read"},
		{"write scope, UploadFile", []string{"Bearer " + ed.Token(t, "alice", "files:read files:write")}, "UploadFile", codes.OK, "jwt:https://issuer.test:alice[files:read files:write]"},
		{"scp array", []string{"Bearer " + ed.Sign(t, with(func(c jwt.MapClaims) {
			delete(c, "scope")
			c["scp"] = []string{"files:delete"}
		}), nil)}, "DeleteFile", codes.OK, "deleted by jwt:https://issuer.test:alice[files:delete]"},
		{"unauthenticated upload", nil, "UploadFile", codes.Unauthenticated, "missing bearer token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := call(t, cc, tc.method, tc.auth...)
			st := status.Convert(err)
			if st.Code() != tc.wantCode {
				t.Fatalf("%s: got code %v (%q), want %v", tc.method, st.Code(), st.Message(), tc.wantCode)
			}
			if tc.wantCode == codes.OK {
				if !strings.Contains(got, tc.wantMsg) {
					t.Errorf("%s: got reply %q, want it to contain %q", tc.method, got, tc.wantMsg)
				}
				return
			}
			if st.Message() != tc.wantMsg {
				t.Errorf("%s: got message %q, want %q", tc.method, st.Message(), tc.wantMsg)
			}
			if strings.Contains(st.Message(), "eyJ") {
				t.Errorf("status message contains a token: %q", st.Message())
			}
		})
	}
}

func TestHealthSkipsAuthentication(t *testing.T) {
	ed := authtest.NewKey(t, t.TempDir(), "ed25519", "k1")
	cc, _, _ := start(t, authtest.Config(ed))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatalf("health Check without a token: got %v, want OK", err)
	}
	if got, want := resp.GetStatus(), healthpb.HealthCheckResponse_SERVING; got != want {
		t.Errorf("health status: got %v, want %v", got, want)
	}
}

func TestInsecureTransportRefusesTokens(t *testing.T) {
	ed := authtest.NewKey(t, t.TempDir(), "ed25519", "k1")
	cfg := authtest.Config(ed)
	cfg.AllowInsecureTransport = false
	cc, r, _ := start(t, cfg)
	_, err := call(t, cc, "SayHello", "Bearer "+ed.Token(t, "alice", ""))
	st := status.Convert(err)
	if st.Code() != codes.Unauthenticated || st.Message() != "bearer tokens require a secure transport" {
		t.Errorf("token over plaintext: got %v %q, want Unauthenticated %q", st.Code(), st.Message(), "bearer tokens require a secure transport")
	}
	if got := r.count(auth.ReasonInsecureTransport); got != 1 {
		t.Errorf("insecure_transport results: got %d, want 1", got)
	}
}

func TestCacheHitDoesNotReverify(t *testing.T) {
	ed := authtest.NewKey(t, t.TempDir(), "ed25519", "k1")
	cc, r, _ := start(t, authtest.Config(ed))
	tok := ed.Token(t, "alice", "files:read")
	for i := range 5 {
		if _, err := call(t, cc, "SayHello", "Bearer "+tok); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if got, want := r.count(auth.ResultVerified), 1; got != want {
		t.Errorf("signature verifications: got %d, want %d", got, want)
	}
	if got, want := r.count(auth.ResultCached), 4; got != want {
		t.Errorf("cache hits: got %d, want %d", got, want)
	}
	// A tampered copy of a cached token is never a cache hit.
	if _, err := call(t, cc, "SayHello", "Bearer "+tamper(tok)); status.Code(err) != codes.Unauthenticated {
		t.Errorf("tampered copy of a cached token: got %v, want Unauthenticated", err)
	}
}

func TestAnonymous(t *testing.T) {
	logger, _ := greetertest.NewLogger()
	chain := standard.Chain(standard.Config{
		Logger:  logger,
		Auth:    auth.Anonymous("owner", authz.AllScopes()...),
		Limiter: ratelimit.New(unlimited),
	})
	cc := greetertest.Start(t, chain.ServerOptions())
	for _, tc := range []struct{ method, want string }{
		{"SayHello", "anonymous:owner[files:read files:write files:delete]"},
		{"DeleteFile", "deleted by anonymous:owner["},
		{"UploadFile", "anonymous:owner["},
	} {
		got, err := call(t, cc, tc.method)
		if err != nil {
			t.Fatalf("%s: %v", tc.method, err)
		}
		if !strings.Contains(got, tc.want) {
			t.Errorf("%s: got %q, want it to contain %q", tc.method, got, tc.want)
		}
	}
}

func TestNewRejectsIncompleteConfig(t *testing.T) {
	ed := authtest.NewKey(t, t.TempDir(), "ed25519", "k1")
	priv := t.TempDir() + "/priv.pem"
	writeFile(t, priv, privatePEM(t, ed))
	tests := []struct {
		name   string
		change func(*auth.Config)
	}{
		{"no issuer", func(c *auth.Config) { c.Issuer = "" }},
		{"no audience", func(c *auth.Config) { c.Audience = nil }},
		{"empty audience", func(c *auth.Config) { c.Audience = []string{""} }},
		{"no key source", func(c *auth.Config) { c.PublicKeyFiles = nil }},
		{"missing key file", func(c *auth.Config) { c.PublicKeyFiles = []string{"/nonexistent/k.pem"} }},
		{"private key file", func(c *auth.Config) { c.PublicKeyFiles = []string{priv} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := authtest.Config(ed)
			tc.change(&cfg)
			if _, err := auth.New(context.Background(), cfg); err == nil {
				t.Errorf("auth.New: got nil error, want an error")
			}
		})
	}
}

// TestMalformedPathCannotSkipAuthentication pins CVE-2026-33186: a :path
// without its leading slash must not reach the handler unauthenticated.
func TestMalformedPathCannotSkipAuthentication(t *testing.T) {
	ed := authtest.NewKey(t, t.TempDir(), "ed25519", "k1")
	cc, _, _ := start(t, authtest.Config(ed))
	for _, method := range []string{"Greeter/SayHello", "//Greeter/SayHello"} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var resp greeterpb.StringResponse
		err := cc.Invoke(ctx, method, &greeterpb.HelloRequest{Name: "bob"}, &resp)
		cancel()
		if code := status.Code(err); code != codes.Unimplemented && code != codes.Unauthenticated {
			t.Errorf("Invoke(%q) without a token: got %v (reply %q), want Unimplemented or Unauthenticated", method, err, resp.GetMessage())
		}
	}
}
