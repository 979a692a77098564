// Package middleware composes the server-side layers of greeterd (panic
// recovery, logging, rate limiting, authentication, authorization) into one
// explicitly ordered chain.
//
// A Plugin is one value that supplies both a unary and a stream interceptor,
// and optionally server options (for example grpc.Creds or a
// grpc.StatsHandler). Most plugins are built with FromFunc, so their logic is
// written once: the same Func runs around unary and streaming RPCs, the
// handler sees the context the Func passes to next, and per-message hooks
// (Call.OnRecv, Call.OnSend) see every message of either kind.
//
// The package guarantees:
//
//   - Order is exactly the order given to NewChain: the first plugin is the
//     outermost, so a panic in any later plugin or in the handler unwinds
//     through every earlier one.
//   - A Func's own errors reach the client as status errors: a status error
//     is passed through, a context error becomes Canceled or
//     DeadlineExceeded, and any other error becomes Internal "internal error".
//     Errors returned by next (the rest of the chain and the handler) are
//     passed through untouched.
//   - Method selection is done in one place, by Only and Skip, against the
//     exact method name gRPC routed the call with (never a re-parsed copy).
//   - A message hook that panics is recovered where it runs, even on a
//     goroutine the handler started: the panic goes to the context's
//     PanicHandler (the recovery plugin installs one) and the RecvMsg or
//     SendMsg fails with Internal "internal error", so the RPC ends with
//     that status instead of the process.
//
// This package imports no plugin; the sub-packages recovery, logging, auth,
// authz and ratelimit provide them. The sub-package standard is the one
// place that orders them for greeterd, outermost first: plugins that supply
// only server options (the transport credentials, the stats handler),
// recovery, logging, realip, the per-peer limit, the public stream cap,
// auth, authz, the per-identity limits. Its Example pins that order; greeterd's serve command builds the
// plugins from its flags and hands them to standard.Chain.
package middleware
