// Package breaker knows whether a shared backend (Redis) answers, so that
// the coordination packages built on it fall back to their local
// implementation at once during an outage instead of waiting on every
// call, and logs each outage and each recovery once.
package breaker

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Messages are the log records of an outage (at WARN) and of the
// recovery (at INFO). Each says what the caller falls back to.
type Messages struct {
	Down, Up string
}

// Breaker knows whether the backend answers. The first failed call opens
// it: callers then go straight to their fallback, and a prober calls check
// every interval, giving it up to the interval or a second, whichever is
// longer, until it succeeds, which closes the breaker again. Each opening
// and each closing is logged once.
type Breaker struct {
	check     func(ctx context.Context) error
	interval  time.Duration
	log       *slog.Logger
	msgs      Messages
	onRecover func() // called after the backend answers again

	down atomic.Bool

	mu      sync.Mutex
	stopped bool
	stop    chan struct{}
	wg      sync.WaitGroup
}

// New returns a closed (usable) Breaker. onRecover, if not nil, runs on
// the prober's goroutine after each recovery.
func New(check func(context.Context) error, interval time.Duration, log *slog.Logger, msgs Messages, onRecover func()) *Breaker {
	if onRecover == nil {
		onRecover = func() {}
	}
	return &Breaker{check: check, interval: interval, log: log, msgs: msgs, onRecover: onRecover, stop: make(chan struct{})}
}

// Usable reports whether calls should go to the backend.
func (b *Breaker) Usable() bool { return !b.down.Load() }

// Fail records that a call to the backend failed with err. The first
// failure of an outage logs it and starts the prober.
func (b *Breaker) Fail(err error) {
	if !b.down.CompareAndSwap(false, true) {
		return
	}
	b.log.Warn(b.msgs.Down, slog.Any("error", err))
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped {
		return
	}
	b.wg.Add(1)
	go b.probe()
}

// probe checks the backend until it answers or the breaker is closed.
func (b *Breaker) probe() {
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
			b.log.Info(b.msgs.Up)
			b.onRecover()
			return
		}
	}
}

// Close stops the prober and waits for it.
func (b *Breaker) Close() {
	b.mu.Lock()
	if !b.stopped {
		b.stopped = true
		close(b.stop)
	}
	b.mu.Unlock()
	b.wg.Wait()
}
