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
//  3. ratelimit-peer: per peer IP, before any signature check.
//  4. auth: establishes the caller's identity.
//  5. authz: checks the method's scope.
//  6. ratelimit: per identity (calls, concurrent transfers, bandwidth).
//  7. Config.Inner, then the handler.
//
// Public methods (by default health and reflection) skip auth, authz and the
// per-identity limits; the per-peer limit still applies to them. Every hook
// in Config is called with the RPC's context.
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
	// Limiter supplies both rate-limit plugins. Nil means
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
		limiter.PerPeer(),
		middleware.Skip(c.Auth, public),
		middleware.Skip(authz.New(authz.Options{Policy: c.Policy, OnDeny: c.OnDeny}), public),
		middleware.Skip(limiter.PerIdentity(), public),
	)
	return append(plugins, c.Inner...)
}
