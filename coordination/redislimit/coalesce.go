package redislimit

import (
	"context"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
)

// Token leasing: when the calls of one bucket arrive fast on a replica, a
// decision asks Redis for a few tokens more than its calls need and the
// replica spends them locally for a short while, as bandwidth is leased in
// blocks. Redis stays the only authority (a leased token was taken from the
// shared bucket), so leasing never admits more than the limit; a token not
// spent within leaseValidity is lost, which errs on admitting at most
// lease-block tokens fewer. A slow caller never leases: its decisions ask
// for exactly its calls, as without leasing.
const (
	// leaseValidity is how long leased tokens may be spent.
	leaseValidity = 50 * time.Millisecond
	// leaseWindow is the longest gap between two decisions of a bucket
	// for which the calls between them count as fast enough to lease.
	leaseWindow = 10 * time.Millisecond
	// leaseBurstShare bounds a lease to 1/leaseBurstShare of the burst,
	// so that several replicas leasing at once cannot hoard the burst (a
	// burst under leaseBurstShare leases nothing).
	leaseBurstShare = 8
	// sweepInterval is how often buckets idle for longer than
	// leaseValidity are forgotten.
	sweepInterval = time.Second
)

// coalescer merges the concurrent rate decisions of one bucket into one
// Redis round trip: while a decision of a bucket is in flight, the calls
// that arrive for it wait together, and when it is answered they leave as
// one AllowAtMost(n) (GCRA admits up to n events at once, as it would
// admit them one by one) and share its answer: the first Allowed of them
// are admitted, the others refused. A lone call leaves at once, on its own
// goroutine, so an idle identity pays nothing for it. A decision of a
// bucket whose calls arrive fast also leases tokens (see leaseValidity).
// Written here because neither redis_rate nor go-redis merges calls of one
// key.
type coalescer struct {
	l         *Limits
	now       func() time.Time
	mu        sync.Mutex
	m         map[bucket]*state
	lastSweep time.Time
}

// bucket is a Redis key under one limit; calls merge only within one.
type bucket struct {
	key   string
	limit redis_rate.Limit
}

// state is what a replica knows of one bucket: whether a decision is in
// flight (busy) and the calls that arrived meanwhile (next, nil if none),
// the tokens it leased (leased, spendable until until), and the calls that
// arrived since its last decision was sent (arrivals, at lastSend).
type state struct {
	busy     bool
	next     *decision
	leased   int
	until    time.Time
	arrivals int
	lastSend time.Time
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
	return &coalescer{l: l, now: time.Now, m: make(map[bucket]*state)}
}

// allow takes one event of key under limit. It reports an error when Redis
// did not answer; the caller then falls back.
func (c *coalescer) allow(ctx context.Context, key string, limit redis_rate.Limit) (bool, time.Duration, error) {
	b := bucket{key, limit}
	c.mu.Lock()
	now := c.now()
	c.sweep(now)
	s := c.m[b]
	if s == nil {
		s = &state{}
		c.m[b] = s
	}
	s.arrivals++
	if s.leased > 0 && now.Before(s.until) {
		s.leased--
		c.mu.Unlock()
		return true, 0, nil
	}
	s.leased = 0
	busy := s.busy
	var d *decision
	if !busy {
		s.busy = true
		d = &decision{n: 1, done: make(chan struct{})}
	} else {
		if s.next == nil {
			s.next = &decision{done: make(chan struct{})}
		}
		d = s.next
		d.n++
	}
	i := d.n - 1 // this call's place in d
	c.mu.Unlock()
	if !busy {
		c.send(ctx, b, s, d)
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

// send asks Redis for d's calls and the tokens to lease, then serves the
// calls that arrived meanwhile from the lease if it covers them, or hands
// them to a goroutine of their own (the caller of send need not wait for
// them), or ends the bucket's flight if none did.
func (c *coalescer) send(ctx context.Context, b bucket, s *state, d *decision) {
	c.mu.Lock()
	extra := c.leaseSize(b, s, c.now())
	c.mu.Unlock()
	cctx, cancel := c.l.callContext(ctx)
	res, err := c.l.rates.AllowAtMost(cctx, b.key, b.limit, d.n+extra)
	cancel()
	surplus := 0
	if err != nil {
		d.err = err
	} else {
		d.allowed = min(res.Allowed, d.n)
		surplus = res.Allowed - d.allowed
		d.retryAfter = res.RetryAfter
		if d.retryAfter <= 0 { // some were admitted: the next token comes in one interval
			d.retryAfter = b.limit.Period / time.Duration(b.limit.Rate)
		}
		d.retryAfter = max(d.retryAfter, time.Millisecond)
	}
	c.mu.Lock()
	if surplus > 0 {
		s.leased, s.until = surplus, c.now().Add(leaseValidity)
	}
	next := s.next
	s.next = nil
	if next != nil && s.leased >= next.n {
		s.leased -= next.n
		next.allowed = next.n
		close(next.done)
		next = nil
	}
	if next == nil {
		s.busy = false
	}
	c.mu.Unlock()
	close(d.done)
	if next != nil {
		go c.send(context.WithoutCancel(ctx), b, s, next)
	}
}

// leaseSize returns how many tokens a decision of b sent at now leases, and
// starts the count of arrivals anew: as many as the calls that arrived
// since the bucket's last decision if that was under leaseWindow ago and
// they were several, else none; at most the burst over leaseBurstShare.
// Called with c.mu held.
func (c *coalescer) leaseSize(b bucket, s *state, now time.Time) int {
	n := 0
	if !s.lastSend.IsZero() && now.Sub(s.lastSend) <= leaseWindow && s.arrivals > 1 {
		n = min(s.arrivals, b.limit.Burst/leaseBurstShare)
	}
	s.arrivals, s.lastSend = 0, now
	return n
}

// sweep forgets, at most once per sweepInterval, the buckets with nothing
// in flight, no lease to spend and no decision within leaseValidity, so
// the table holds only the identities active right now. Called with c.mu
// held.
func (c *coalescer) sweep(now time.Time) {
	if now.Sub(c.lastSweep) < sweepInterval {
		return
	}
	c.lastSweep = now
	for b, s := range c.m {
		if !s.busy && !now.Before(s.until) && now.Sub(s.lastSend) > leaseValidity {
			delete(c.m, b)
		}
	}
}
