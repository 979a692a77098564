package middleware

import (
	"context"
	"strings"

	"google.golang.org/grpc"
)

// Only returns p restricted to the methods for which match returns true; for
// every other method the RPC continues as if p were absent. match receives
// the method exactly as gRPC routed it (for example "/Greeter/SayHello").
// p's ServerOptions are kept unchanged.
//
// It is written here rather than with go-grpc-middleware's selector because
// one call restricts a whole Plugin, both interceptor kinds with its
// ServerOptions kept, where selector wraps each interceptor on its own; and
// because match sees the method exactly as gRPC routed it, where selector
// hands its Matcher a service and method split at the first slash (gRPC's
// router splits at the last). The grpc-go we use (v1.85) refuses a path
// without its leading slash (Unimplemented "malformed method name") before
// any interceptor runs, so such a path can no longer look public to one
// matcher and private to the router; the exact string is kept so that an
// exemption cannot depend on that check.
func Only(p Plugin, match func(fullMethod string) bool) Plugin {
	out := Plugin{Name: p.Name, ServerOptions: p.ServerOptions}
	if p.Unary != nil {
		inner := p.Unary
		out.Unary = func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			if match(info.FullMethod) {
				return inner(ctx, req, info, handler)
			}
			return handler(ctx, req)
		}
	}
	if p.Stream != nil {
		inner := p.Stream
		out.Stream = func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
			if match(info.FullMethod) {
				return inner(srv, ss, info, handler)
			}
			return handler(srv, ss)
		}
	}
	return out
}

// Skip returns p restricted to the methods for which match returns false.
func Skip(p Plugin, match func(fullMethod string) bool) Plugin {
	return Only(p, func(m string) bool { return !match(m) })
}

// MethodPrefix returns a match function that reports whether a method starts
// with any of prefixes. Use whole service prefixes ending in "/" (for example
// "/grpc.health.v1.Health/") so that a similarly named service cannot match.
func MethodPrefix(prefixes ...string) func(fullMethod string) bool {
	ps := append([]string(nil), prefixes...)
	return func(m string) bool {
		for _, p := range ps {
			if strings.HasPrefix(m, p) {
				return true
			}
		}
		return false
	}
}
