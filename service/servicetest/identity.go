package servicetest

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/greeter/greeter/identity"
)

// OwnerHeader is the request header through which a test names the caller.
// The server puts an identity.Identity with that subject into the context of
// the call; AsOwner sets it.
const OwnerHeader = "x-test-owner"

// AsOwner returns a context whose calls run as owner: the stand-in for the
// authentication plugins.
func AsOwner(ctx context.Context, owner string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, OwnerHeader, owner)
}

// withIdentity returns ctx carrying the identity the call names in
// OwnerHeader, or ctx itself if it names none.
func withIdentity(ctx context.Context) context.Context {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(OwnerHeader); len(v) == 1 {
		return identity.NewContext(ctx, identity.Identity{Subject: v[0], Source: identity.SourceToken})
	}
	return ctx
}

// identityUnary and identityStream are the test identity plugin.
func identityUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	return next(withIdentity(ctx), req)
}

func identityStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, next grpc.StreamHandler) error {
	return next(srv, &ctxStream{ServerStream: ss, ctx: withIdentity(ss.Context())})
}

// ctxStream is a server stream whose handler sees ctx.
type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *ctxStream) Context() context.Context { return s.ctx }
