package redislimit

import (
	"context"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
)

// coalescer merges the concurrent rate decisions of one bucket into one
// Redis round trip: while a decision of a bucket is in flight, the calls
// that arrive for it wait together, and when it is answered they leave as
// one AllowAtMost(n) (GCRA admits up to n events at once, as it would
// admit them one by one) and share its answer: the first Allowed of them
// are admitted, the others refused. A lone call leaves at once, on its own
// goroutine, so an idle identity pays nothing for it. Written here because
// neither redis_rate nor go-redis merges calls of one key.
type coalescer struct {
	l  *Limits
	mu sync.Mutex
	m  map[bucket]*inFlight
}

// bucket is a Redis key under one limit; calls merge only within one.
type bucket struct {
	key   string
	limit redis_rate.Limit
}

// inFlight is a bucket with a decision in flight, and the calls that
// arrived meanwhile (next, nil if none).
type inFlight struct {
	next *decision
}

// decision is the answer shared by n calls. done is closed once it is set.
type decision struct {
	n          int
	done       chan struct{}
	allowed    int
	retryAfter time.Duration
	err        error
}

func newCoalescer(l *Limits) *coalescer {
	return &coalescer{l: l, m: make(map[bucket]*inFlight)}
}

// allow takes one event of key under limit. It reports an error when Redis
// did not answer; the caller then falls back.
func (c *coalescer) allow(ctx context.Context, key string, limit redis_rate.Limit) (bool, time.Duration, error) {
	b := bucket{key, limit}
	c.mu.Lock()
	f, busy := c.m[b]
	var d *decision
	if !busy {
		f = &inFlight{}
		c.m[b] = f
		d = &decision{n: 1, done: make(chan struct{})}
	} else {
		if f.next == nil {
			f.next = &decision{done: make(chan struct{})}
		}
		d = f.next
		d.n++
	}
	i := d.n - 1 // this call's place in d
	c.mu.Unlock()
	if !busy {
		c.send(ctx, b, f, d)
	} else {
		select {
		case <-d.done:
		case <-ctx.Done():
			// Its share is taken whatever Redis says, as an event that
			// did not happen: the bucket errs on the strict side.
			return false, 0, nil
		}
	}
	if d.err != nil {
		return false, 0, d.err
	}
	if i < d.allowed {
		return true, 0, nil
	}
	return false, d.retryAfter, nil
}

// send asks Redis for d, then hands the calls that arrived meanwhile to a
// goroutine of their own (the caller of send need not wait for them), or
// ends the bucket's flight if none did.
func (c *coalescer) send(ctx context.Context, b bucket, f *inFlight, d *decision) {
	cctx, cancel := c.l.callContext(ctx)
	res, err := c.l.rates.AllowAtMost(cctx, b.key, b.limit, d.n)
	cancel()
	if err != nil {
		d.err = err
	} else {
		d.allowed = res.Allowed
		d.retryAfter = res.RetryAfter
		if d.retryAfter <= 0 { // some were admitted: the next token comes in one interval
			d.retryAfter = b.limit.Period / time.Duration(b.limit.Rate)
		}
		d.retryAfter = max(d.retryAfter, time.Millisecond)
	}
	c.mu.Lock()
	next := f.next
	f.next = nil
	if next == nil {
		delete(c.m, b)
	}
	c.mu.Unlock()
	close(d.done)
	if next != nil {
		go c.send(context.WithoutCancel(ctx), b, f, next)
	}
}
