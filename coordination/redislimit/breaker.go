package redislimit

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// breaker knows whether Redis answers. The first failed call opens it: the
// limits then go straight to their local fallback without waiting on Redis,
// and a prober calls check every interval, giving it up to the interval or
// a second, whichever is longer, until it succeeds, which closes the
// breaker again. Each opening and each closing is logged once.
type breaker struct {
	check     func(ctx context.Context) error
	interval  time.Duration
	log       *slog.Logger
	onRecover func() // called after Redis answers again

	down atomic.Bool

	mu      sync.Mutex
	stopped bool
	stop    chan struct{}
	wg      sync.WaitGroup
}

func newBreaker(check func(context.Context) error, interval time.Duration, log *slog.Logger, onRecover func()) *breaker {
	return &breaker{check: check, interval: interval, log: log, onRecover: onRecover, stop: make(chan struct{})}
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

// probe checks Redis until it answers or the breaker is closed.
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
		ctx, cancel := context.WithTimeout(context.Background(), max(b.interval, time.Second))
		err := b.check(ctx)
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
