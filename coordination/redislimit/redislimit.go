// Package redislimit shares the limits of package coordination between
// greeterd replicas through one Redis, so that N replicas grant one quota
// between them, not N:
//
//   - Rates are GCRA buckets, decided in one Lua round trip
//     (github.com/go-redis/redis_rate); concurrent calls of one key share
//     one decision (AllowAtMost(n)), and calls of other keys that arrive
//     together share a pipeline. When the calls of one key arrive fast, a
//     decision also leases a few tokens (at most an eighth of the burst),
//     spent locally for 50 ms and lost if not: Redis still grants every
//     token, so the limit is never exceeded, and a slow caller leases none.
//   - Slots are leases: a sorted set per key whose members are slot ids
//     scored by their expiry, cleaned and counted in one Lua round trip. A
//     replica refreshes the leases it holds every LeaseTTL/3, so the slots
//     of a replica that dies are free again within LeaseTTL.
//   - Bandwidth is leased in blocks: a replica reserves a block of bytes
//     (up to Options.BlockSize) from a shared GCRA bucket in one round trip
//     and spends it locally, message by message; it never makes a Redis call
//     per message.
//
// Every Redis call is bounded by Options.Timeout. When one fails, the limits
// fail open to the local limiter given to New (logged once per outage at
// WARN, each call counted through Options.OnFallback), and a circuit breaker
// sends later calls straight to it without waiting on Redis; a prober
// checks Redis every Options.ProbeInterval (scripts loaded, PING answered
// within Options.Timeout), and shared limiting resumes (logged once) when it
// answers. Slots held when Redis comes back are written back, so a Redis
// restarted empty relearns them.
//
// Keys are hashed (SHA-256, 128 bits kept): key length in Redis is bounded
// and identities are not stored in the clear. One Redis serves one
// deployment per Options.Prefix. Redis Cluster is not supported (a lease
// refresh touches several keys in one script).
package redislimit

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"log/slog"
	"math"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/greeter/greeter/coordination"
	"github.com/greeter/greeter/coordination/internal/breaker"
)

// Defaults applied to zero fields of Options.
const (
	DefaultPrefix        = "greeter:"
	DefaultTimeout       = 100 * time.Millisecond
	DefaultProbeInterval = time.Second
	DefaultLeaseTTL      = 10 * time.Second
	DefaultBlockSize     = 4 << 20
	// minBlock is the smallest block leased, unless the burst is smaller.
	minBlock = 64 << 10
)

// Options configure Limits. Zero fields take the defaults.
type Options struct {
	// Prefix starts every key this package writes, so that deployments
	// can share a Redis. Default "greeter:".
	Prefix string
	// Timeout bounds each Redis call; a call that takes longer fails open.
	// Default 100 ms.
	Timeout time.Duration
	// ProbeInterval is how often an unreachable Redis is PINGed. Default 1 s.
	ProbeInterval time.Duration
	// LeaseTTL is how long a slot outlives the last refresh of the replica
	// holding it. Default 10 s.
	LeaseTTL time.Duration
	// BlockSize is the most bytes a replica leases per round trip. A block
	// is also at most the burst and about an eighth of a second of the
	// rate (but at least 64 KiB), so a slow limit is not spent in lumps.
	// Default 4 MiB.
	BlockSize int
	// MaxKeys and IdleTTL bound the table of leased, unspent bandwidth, as
	// coordination.LocalOptions bound a Local.
	MaxKeys int
	IdleTTL time.Duration
	// Logger receives the outage and recovery records. Nil discards them.
	Logger *slog.Logger
	// OnFallback, if set, is called with the caller's context for every
	// decision the local fallback made because Redis did not answer.
	OnFallback func(ctx context.Context)
}

// Limits implements coordination.Limits on Redis, with a local fallback.
type Limits struct {
	rdb   *redis.Client
	local coordination.Limits
	o     Options
	pipe  *pipeliner
	rates *redis_rate.Limiter
	merge *coalescer
	br    *breaker.Breaker
	slots *slots
	bw    *bandwidth
}

var _ coordination.Limits = (*Limits)(nil)

// Tune sets the client options Limits relies on and returns o: context
// deadlines honoured (so that Options.Timeout bounds a call even on a dead
// network), no retries (a failed limit call falls back at once; a retry
// would only delay it), and no maintenance notifications (a Redis Cloud
// feature that costs other servers a refused command per connection).
func Tune(o *redis.Options) *redis.Options {
	o.ContextTimeoutEnabled = true
	o.MaxRetries = -1
	o.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return o
}

// New returns Limits on rdb that fall back to local while Redis does not
// answer. Build rdb with options passed through Tune. Close stops its
// background work.
func New(rdb *redis.Client, local coordination.Limits, o Options) *Limits {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.ProbeInterval <= 0 {
		o.ProbeInterval = DefaultProbeInterval
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = DefaultLeaseTTL
	}
	if o.BlockSize <= 0 {
		o.BlockSize = DefaultBlockSize
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Limits{rdb: rdb, local: local, o: o, pipe: newPipeliner(rdb, o.Timeout)}
	l.rates = redis_rate.NewLimiter(l.pipe)
	l.merge = newCoalescer(l)
	l.slots = newSlots(l)
	l.br = breaker.New(l.probe, o.ProbeInterval, o.Logger, breaker.Messages{
		Down: "redis unreachable: limits fall back to this replica's local limiters (each replica grants the full quota) until redis answers again",
		Up:   "redis answers again: limits are shared again",
	}, l.slots.kick)
	l.bw = newBandwidth(l)
	l.slots.start()
	return l
}

// Close stops the lease refresher, the prober and the pipeline workers and
// waits for them. Slots still held are not released: like those of a
// replica that died, they expire within LeaseTTL.
func (l *Limits) Close() {
	l.br.Close()
	l.slots.close()
	l.pipe.close()
}

// Ping asks Redis whether it answers, within ctx, and loads the scripts
// the limits run. If Redis does not answer, the limits fall back to local
// at once (the outage is logged once, and shared limiting resumes when a
// probe is answered), so a replica started while Redis is down serves from
// the start. Call it before serving: otherwise the first burst of calls
// finds no script loaded and pays a second round trip each.
func (l *Limits) Ping(ctx context.Context) error {
	err := l.warm(ctx)
	if err != nil {
		l.br.Fail(err)
	}
	return err
}

// warm checks that Redis answers and loads every script into its cache.
func (l *Limits) warm(ctx context.Context) error {
	for _, s := range []*redis.Script{acquireScript, refreshScript, reserveScript} {
		if err := s.Load(ctx, l.rdb).Err(); err != nil {
			return err
		}
	}
	// Taking nothing runs (and so loads) redis_rate's script, and writes
	// nothing.
	_, err := l.rates.AllowAtMost(ctx, l.key("", "warm"), redis_rate.PerSecond(1), 0)
	return err
}

// probe is the breaker's check: the scripts loaded again (a Redis that
// restarted has none), then a PING answered within Options.Timeout, since
// a Redis slower than that would only open the breaker again.
func (l *Limits) probe(ctx context.Context) error {
	if err := l.warm(ctx); err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, l.o.Timeout)
	defer cancel()
	return l.rdb.Ping(pctx).Err()
}

// Allow implements coordination.RateLimiter with redis_rate's GCRA. The
// concurrent calls of one key share one round trip, and fast ones spend
// leased tokens (see coalescer).
func (l *Limits) Allow(ctx context.Context, key string, limit coordination.Limit) (bool, time.Duration) {
	if limit.PerSecond < 0 {
		return true, 0
	}
	if !l.br.Usable() {
		return l.fallbackAllow(ctx, key, limit)
	}
	ok, retryAfter, err := l.merge.allow(ctx, l.key("", key), gcra(limit))
	if err != nil {
		l.br.Fail(err)
		return l.fallbackAllow(ctx, key, limit)
	}
	return ok, retryAfter
}

func (l *Limits) fallbackAllow(ctx context.Context, key string, limit coordination.Limit) (bool, time.Duration) {
	l.fellBack(ctx)
	return l.local.Allow(ctx, key, limit)
}

// Acquire implements coordination.Counter with leases.
func (l *Limits) Acquire(ctx context.Context, key string, max int) (func(), bool) {
	return l.slots.acquire(ctx, key, max)
}

// Wait implements coordination.Bandwidth with leased blocks.
func (l *Limits) Wait(ctx context.Context, key string, limit coordination.Limit, n int) error {
	return l.bw.wait(ctx, key, limit, n)
}

// callContext returns the context of one Redis call: ctx's values without
// its cancellation (a caller that gives up must not count as a Redis
// failure), ended after Options.Timeout.
func (l *Limits) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), l.o.Timeout)
}

func (l *Limits) fellBack(ctx context.Context) {
	if l.o.OnFallback != nil {
		l.o.OnFallback(ctx)
	}
}

// key returns the Redis key of a caller's key: the prefix, kind, and a hash.
func (l *Limits) key(kind, key string) string {
	sum := sha256.Sum256([]byte(key))
	return l.o.Prefix + kind + base64.RawURLEncoding.EncodeToString(sum[:16])
}

// gcra expresses limit as redis_rate's integer events per period: whole
// rates per second, others per 1000 s (a rate below 1/1000 per second is
// rounded up to it).
func gcra(limit coordination.Limit) redis_rate.Limit {
	burst := max(limit.Burst, 1)
	r := limit.PerSecond
	if r >= 1 && r == math.Trunc(r) && r <= math.MaxInt32 {
		return redis_rate.Limit{Rate: int(r), Burst: burst, Period: time.Second}
	}
	return redis_rate.Limit{Rate: max(1, int(math.Round(min(r, math.MaxInt32)*1000))), Burst: burst, Period: 1000 * time.Second}
}
