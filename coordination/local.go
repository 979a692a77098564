package coordination

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/greeter/greeter/internal/lru"
)

// Defaults applied to zero fields of LocalOptions.
const (
	DefaultMaxKeys = 100_000
	DefaultIdleTTL = 10 * time.Minute
)

// LocalOptions configure a Local. Zero fields take the defaults.
type LocalOptions struct {
	// MaxKeys caps the keys held (least recently used go first).
	// Default 100 000.
	MaxKeys int
	// IdleTTL is how long an unused key is kept. Default 10 minutes.
	IdleTTL time.Duration
}

// Local keeps limits in this process: N processes allow N times the rate.
// Its table holds at most MaxKeys keys and forgets keys idle for IdleTTL, so
// a flood of distinct keys cannot grow memory without bound; a key with a
// slot held is never forgotten, so a cap cannot be reset by eviction.
type Local struct {
	table *lru.Cache[string, *localEntry]
}

var _ Limits = (*Local)(nil)

// localEntry is one key's state: a token bucket (rates and bandwidth) or a
// count of held slots (Acquire); a key is used as one or the other.
type localEntry struct {
	mu    sync.Mutex
	lim   *rate.Limiter // nil until the key is used as a bucket
	limit Limit

	held atomic.Int64
}

// NewLocal returns an empty Local.
func NewLocal(o LocalOptions) *Local {
	if o.MaxKeys <= 0 {
		o.MaxKeys = DefaultMaxKeys
	}
	if o.IdleTTL <= 0 {
		o.IdleTTL = DefaultIdleTTL
	}
	return &Local{table: lru.New[string](o.MaxKeys, o.IdleTTL, func(e *localEntry) bool {
		return e.held.Load() > 0
	})}
}

// Len returns the number of keys held, for a gauge.
func (l *Local) Len() int { return l.table.Len() }

// Evictions returns how many keys were forgotten for size or idleness.
func (l *Local) Evictions() uint64 { return l.table.Evictions() }

// Allow implements RateLimiter with golang.org/x/time/rate.
func (l *Local) Allow(_ context.Context, key string, limit Limit) (bool, time.Duration) {
	now := time.Now()
	r := l.bucket(key, limit, now).ReserveN(now, 1)
	if !r.OK() {
		return false, time.Second
	}
	d := r.DelayFrom(now)
	if d <= 0 {
		return true, 0
	}
	r.CancelAt(now)
	return false, d
}

// Acquire implements Counter.
func (l *Local) Acquire(_ context.Context, key string, max int) (func(), bool) {
	e := l.table.GetOrAdd(key, time.Now(), newLocalEntry)
	if e.held.Add(1) > int64(max) {
		e.held.Add(-1)
		return nil, false
	}
	return sync.OnceFunc(func() { e.held.Add(-1) }), true
}

// Wait implements Bandwidth. Bytes beyond the burst are waited for in
// burst-sized parts.
func (l *Local) Wait(ctx context.Context, key string, limit Limit, n int) error {
	lim := l.bucket(key, limit, time.Now())
	burst := lim.Burst()
	for n > 0 {
		k := min(n, burst)
		if err := lim.WaitN(ctx, k); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return ErrWouldExceedDeadline
		}
		n -= k
	}
	return nil
}

func newLocalEntry() *localEntry { return &localEntry{} }

// bucket returns key's token bucket under limit, creating it full on first
// use and adjusting it if the limit changed. A negative PerSecond never
// refuses.
func (l *Local) bucket(key string, limit Limit, now time.Time) *rate.Limiter {
	e := l.table.GetOrAdd(key, now, newLocalEntry)
	burst := max(limit.Burst, 1)
	every := rate.Limit(limit.PerSecond)
	if limit.PerSecond < 0 {
		every = rate.Inf
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.lim == nil:
		e.lim = rate.NewLimiter(every, burst)
	case e.limit != limit:
		e.lim.SetLimitAt(now, every)
		e.lim.SetBurstAt(now, burst)
	}
	e.limit = limit
	return e.lim
}
