package redislimit

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// breaker knows whether Redis answers. The first failed call opens it: the
// limits then go straight to their local fallback without waiting on Redis,
// and a prober PINGs Redis every probeInterval until it answers, which
// closes the breaker again. Each opening and each closing is logged once.
type breaker struct {
	rdb       *redis.Client
	timeout   time.Duration
	interval  time.Duration
	log       *slog.Logger
	onRecover func() // called after Redis answers again

	down atomic.Bool

	mu      sync.Mutex
	stopped bool
	stop    chan struct{}
	wg      sync.WaitGroup
}

func newBreaker(rdb *redis.Client, timeout, interval time.Duration, log *slog.Logger, onRecover func()) *breaker {
	return &breaker{rdb: rdb, timeout: timeout, interval: interval, log: log, onRecover: onRecover, stop: make(chan struct{})}
}

// usable reports whether calls should go to Redis.
func (b *breaker) usable() bool { return !b.down.Load() }

// fail records that a call to Redis failed with err. The first failure of
// an outage logs it and starts the prober.
func (b *breaker) fail(err error) {
	if !b.down.CompareAndSwap(false, true) {
		return
	}
	b.log.Warn("redis unreachable: limits fall back to this replica's local limiters (each replica grants the full quota) until redis answers again",
		slog.Any("error", err))
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped {
		return
	}
	b.wg.Add(1)
	go b.probe()
}

// probe PINGs Redis until it answers or the breaker is closed.
func (b *breaker) probe() {
	defer b.wg.Done()
	t := time.NewTicker(b.interval)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
		err := b.rdb.Ping(ctx).Err()
		cancel()
		if err == nil {
			b.down.Store(false)
			b.log.Info("redis answers again: limits are shared again")
			b.onRecover()
			return
		}
	}
}

// close stops the prober and waits for it.
func (b *breaker) close() {
	b.mu.Lock()
	if !b.stopped {
		b.stopped = true
		close(b.stop)
	}
	b.mu.Unlock()
	b.wg.Wait()
}
