// Package standard builds greeterd's middleware chain, in the one order the
// server uses:
//
//  0. Config.Outer: plugins that supply only server options, such as
//     grpc.Creds (the TLS handshake) and grpc.StatsHandler (spans and RPC
//     metrics); they act before any interceptor, so the stats handler sees
//     every RPC, including those the chain rejects.
//  1. recovery: outermost interceptor, so a panic in any plugin or handler
//     becomes Internal "internal error".
//  2. logging: one record per RPC, including rejected and panicked ones.
//  3. realip: the client's address behind trusted proxies.
//  4. ratelimit-peer: per peer (IP address, IPv6 prefix), before any
//     signature check.
//  5. public-streams: caps the open streams of public methods, per peer and
//     in all, before they can pile up.
//  6. auth: establishes the caller's identity.
//  7. authz: checks the method's scope.
//  8. ratelimit: per identity (calls, concurrent transfers, bandwidth).
//  9. Config.Inner, then the handler.
//
// Public methods (by default health and reflection) skip auth, authz and the
// per-identity limits; the per-peer limit and the public stream cap apply to
// them, and only the cap holds their streams' number down. Every hook in
// Config is called with the RPC's context.
package standard

import (
	"context"
	"log/slog"

	"github.com/greeter/greeter/middleware"
	"github.com/greeter/greeter/middleware/authz"
	"github.com/greeter/greeter/middleware/logging"
	"github.com/greeter/greeter/middleware/ratelimit"
	"github.com/greeter/greeter/middleware/recovery"
	"github.com/greeter/greeter/proto/wire"
)

// Config holds the already-built parts of the chain.
type Config struct {
	// Logger receives the access log and panic records. Nil discards them.
	Logger *slog.Logger
	// Auth is the authentication plugin: auth.(*Authenticator).Plugin(),
	// or auth.Anonymous(owner, authz.AllScopes()...) when authentication is
	// off. Required.
	Auth middleware.Plugin
	// Limiter supplies realip, both rate-limit plugins and the public
	// stream cap. Nil means
	// ratelimit.New(ratelimit.Options{}) (the documented defaults).
	Limiter *ratelimit.Limiter
	// Policy maps methods to scopes. Nil means authz.DefaultPolicy().
	Policy authz.Policy
	// Public reports methods served without authentication. Nil means
	// wire.IsPublic.
	Public func(fullMethod string) bool
	// OnPanic, if set, is called with the RPC's context after each
	// recovered panic.
	OnPanic func(ctx context.Context, fullMethod string)
	// OnDeny, if set, is called with the RPC's context for each
	// authorization denial, with the caller's identity key.
	OnDeny func(ctx context.Context, fullMethod, identityKey string)
	// Outer plugins come first in the chain. They are meant for concerns
	// that live outside interceptors and supply only ServerOptions: the
	// transport credentials (grpc.Creds) and the stats handler
	// (grpc.StatsHandler). An interceptor in an Outer plugin would run
	// before recovery, unprotected from panics.
	Outer []middleware.Plugin
	// Inner plugins run after the per-identity limits, just before the
	// handler (for example a global upload semaphore).
	Inner []middleware.Plugin
}

// Chain returns the chain for c. Pass its ServerOptions to grpc.NewServer
// before any other interceptor option.
func Chain(c Config) *middleware.Chain {
	return middleware.NewChain(Plugins(c)...)
}

// Plugins returns the plugins of Chain(c), in chain order.
func Plugins(c Config) []middleware.Plugin {
	limiter := c.Limiter
	if limiter == nil {
		limiter = ratelimit.New(ratelimit.Options{})
	}
	public := c.Public
	if public == nil {
		public = wire.IsPublic
	}
	plugins := append([]middleware.Plugin(nil), c.Outer...)
	plugins = append(plugins,
		recovery.New(recovery.Options{Logger: c.Logger, OnPanic: c.OnPanic}),
		logging.New(logging.Options{Logger: c.Logger}),
		limiter.RealIP(),
		limiter.PerPeer(),
		middleware.Only(limiter.PublicStreams(), public),
		middleware.Skip(c.Auth, public),
		middleware.Skip(authz.New(authz.Options{Policy: c.Policy, OnDeny: c.OnDeny}), public),
		middleware.Skip(limiter.PerIdentity(), public),
	)
	return append(plugins, c.Inner...)
}
