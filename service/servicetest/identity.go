package servicetest

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/greeter/greeter/identity"
)

// OwnerHeader is the request header through which a test names the caller.
// The server puts a JWT identity of issuer TestIssuer with that subject into
// the context of the call; AsOwner sets it, and OwnerKey gives the key the
// store files it under.
const OwnerHeader = "x-test-owner"

// TestIssuer is the issuer of the identities the test plugin makes.
const TestIssuer = "test"

// OwnerKey returns the owner key under which the store keeps the files of
// calls made AsOwner(owner).
func OwnerKey(owner string) string { return testIdentity(owner).Key() }

func testIdentity(owner string) identity.Identity {
	return identity.Identity{Kind: identity.KindJWT, Issuer: TestIssuer, Name: owner}
}

// AsOwner returns a context whose calls run as owner: the stand-in for the
// authentication plugins.
func AsOwner(ctx context.Context, owner string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, OwnerHeader, owner)
}

// identityPlugin is the test identity plugin: it puts the identity a call
// names in OwnerHeader into its context, or that of defaultOwner if it names
// none, as the authentication plugins would.
type identityPlugin struct{ defaultOwner string }

func (p identityPlugin) withIdentity(ctx context.Context) context.Context {
	owner := p.defaultOwner
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(OwnerHeader); len(v) == 1 {
		owner = v[0]
	}
	return identity.NewContext(ctx, testIdentity(owner))
}

func (p identityPlugin) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	return next(p.withIdentity(ctx), req)
}

func (p identityPlugin) stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, next grpc.StreamHandler) error {
	return next(srv, &ctxStream{ServerStream: ss, ctx: p.withIdentity(ss.Context())})
}

// ctxStream is a server stream whose handler sees ctx.
type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *ctxStream) Context() context.Context { return s.ctx }
