// Package middleware composes the server-side layers of greeterd (panic
// recovery, logging, rate limiting, authentication, authorization) into one
// explicitly ordered chain.
//
// A Plugin is one value that supplies both a unary and a stream interceptor,
// and optionally server options (for example a grpc.StatsHandler). Most
// plugins are built with FromFunc, so their logic is written once: the same
// Func runs around unary and streaming RPCs, the handler sees the context the
// Func passes to next, and per-message hooks (Call.OnRecv, Call.OnSend) see
// every message of either kind.
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
//
// The recommended order for greeterd, outermost first, is:
//
//  1. recovery: a panic anywhere below becomes Internal "internal error".
//  2. logging: one line per RPC, including RPCs rejected by later plugins.
//  3. ratelimit per peer: cheap, runs before any signature check.
//  4. auth: establishes identity.Identity (skip for health and reflection).
//  5. authz: maps methods to scopes (skip for health and reflection).
//  6. ratelimit per identity: calls, concurrent transfers, bandwidth.
//  7. the handler.
//
// This package imports no plugin; the sub-packages recovery, logging, auth,
// authz and ratelimit provide them, and the program's main function lists
// them in one NewChain call.
package middleware
