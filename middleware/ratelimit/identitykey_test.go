package ratelimit_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/greeter/greeter/identity"
	"github.com/greeter/greeter/middleware"
	"github.com/greeter/greeter/middleware/internal/greetertest"
	"github.com/greeter/greeter/middleware/ratelimit"
	"github.com/greeter/greeter/middleware/standard"
	"github.com/greeter/greeter/proto/greeterpb"
)

// TestIdentityKeysAreTyped is R1: the per-identity limits are keyed by the
// typed identity key, so a token whose sub equals a certificate's URI SAN
// does not share (or drain) that certificate's bucket.
func TestIdentityKeysAreTyped(t *testing.T) {
	const billing = "spiffe://greeter.local/svc/billing"
	as := middleware.FromFunc("as", func(ctx context.Context, _ *middleware.Call, next middleware.Next) error {
		md, _ := metadata.FromIncomingContext(ctx)
		id := identity.Identity{Kind: identity.KindX509URI, Name: billing}
		if len(md.Get("as-token")) > 0 {
			id = identity.Identity{Kind: identity.KindJWT, Issuer: "greeterd", Name: billing}
		}
		return next(identity.NewContext(ctx, id))
	})
	limiter := ratelimit.New(ratelimit.Options{
		PerPeer: off, Transfer: off, MaxConcurrentTransfers: -1, Bandwidth: -1,
		Unary: ratelimit.Rate{PerSecond: 1e-6, Burst: 1},
	})
	cc := greetertest.Start(t, standard.Chain(standard.Config{Auth: as, Limiter: limiter}).ServerOptions())
	c := greeterpb.NewGreeterClient(cc)
	hello := func(token bool) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if token {
			ctx = metadata.AppendToOutgoingContext(ctx, "as-token", "1")
		}
		_, err := c.SayHello(ctx, &greeterpb.HelloRequest{Name: "x"})
		return err
	}
	if err := hello(true); err != nil {
		t.Fatalf("token's first call: %v", err)
	}
	if err := hello(false); err != nil {
		t.Fatalf("certificate's first call after the token's: %v, want OK (its own bucket)", err)
	}
	if err := hello(true); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("token's second call: %v, want ResourceExhausted", err)
	}
}
