// Package coordination holds the state that several greeterd replicas must
// share to act as one service, behind small interfaces: rates (how often a
// key may act), slots (how many holders a key may have at once),
// bandwidth (how many bytes a key may move per second), leases (the one
// writer of a resumable upload) and usage (what each owner stores, against
// its quota).
//
// Local, LocalLeases and the stores' own counters keep them inside one
// process, which is all one machine needs; the sub-packages redislimit,
// redislease and redisusage share them through Redis and fall back to the
// local behaviour while Redis is unreachable. Code that applies them, such
// as middleware/ratelimit or the S3 store, takes the interface and does not
// know which it has.
//
// Implementations must be safe for concurrent use. None of the limits'
// methods returns a backend error: a limit that cannot consult its backend
// decides by itself (redislimit fails open to its local limiter), so a
// caller only ever sees a decision, or, from Bandwidth, the end of its own
// context. Leases and usage fall back the same way; Usage reports the
// errors of counting an owner from the storage (Tally).
package coordination

import (
	"context"
	"errors"
	"time"
)

// Limit is a token bucket: PerSecond tokens are added each second, up to
// Burst. A GCRA with emission interval 1/PerSecond and burst Burst admits
// the same events.
type Limit struct {
	PerSecond float64
	Burst     int
}

// RateLimiter decides whether an event of a key may happen now.
type RateLimiter interface {
	// Allow takes one token from key's bucket under limit. When none is
	// left it takes nothing and reports how long until one will be.
	Allow(ctx context.Context, key string, limit Limit) (allowed bool, retryAfter time.Duration)
}

// Counter caps the concurrent holders of a key.
type Counter interface {
	// Acquire takes one of key's max slots. It returns the func that
	// frees the slot (call it once, when done) and true, or nil and false
	// when all max slots are held. A shared implementation holds slots as
	// leases, so the slots of a process that dies are freed within the
	// lease TTL.
	Acquire(ctx context.Context, key string, max int) (release func(), ok bool)
}

// Bandwidth throttles the bytes a key moves.
type Bandwidth interface {
	// Wait blocks until n more bytes of key may pass under limit (bytes
	// per second, burst in bytes). It returns ctx.Err() if ctx ends first
	// and ErrWouldExceedDeadline, at once, if ctx's deadline comes before
	// the bytes could pass.
	Wait(ctx context.Context, key string, limit Limit, n int) error
}

// Limits is everything the per-identity limits need.
type Limits interface {
	RateLimiter
	Counter
	Bandwidth
}

// ErrWouldExceedDeadline is returned by Bandwidth.Wait when the context's
// deadline comes before the bytes could pass.
var ErrWouldExceedDeadline = errors.New("coordination: waiting for bandwidth would exceed the deadline")
