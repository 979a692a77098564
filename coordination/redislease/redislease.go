// Package redislease shares the leases of package coordination between
// greeterd replicas through one Redis, so that a key (a resumable upload)
// has one holder across all of them, and a new acquirer takes a key over
// from a holder that died or stalled within a short bound instead of
// waiting out a long lock.
//
// A lease is a Redis string, SET with NX and a TTL (Options.TTL), whose
// value is the holder; every Options.TTL/3 a replica extends the leases it
// holds, a batch per round trip, with a script that compares the holder
// first. Release is a compare-and-delete. So a lease outlives the last
// keep-alive of a replica that died by at most the TTL.
//
// # Takeover
//
// An acquirer that finds the key held does what tusd's lockers do: it asks
// the holder to let go, by a request key that the holder's keep-alive
// reads and a PUBLISH on a channel that every replica watches, and waits.
// A live holder's Lease.Lost channel closes at once; it stops writing and
// releases, and the acquirer, woken by the release's PUBLISH (or its own
// polling), takes the key. If the holder has neither released within
// Options.Takeover (3 s by default: it died, or cannot reach Redis), the
// acquirer takes the key anyway, with a compare-and-set on the holder it
// asked; the old holder learns it at its next keep-alive (Lost closes).
// Several acquirers of one key end with the last one holding it.
//
// A holder that missed the loss, because it could not reach Redis, may
// still write for a moment: what a lease guards must be fenced where it
// is stored (the S3 store writes its upload state with If-Match).
//
// # Redis down
//
// Every Redis call is bounded by Options.Timeout. When one fails, a
// circuit breaker (logged once per outage, at WARN) sends later calls
// straight to the fallback until a prober finds Redis answering again
// (logged once): Acquire then grants an unbacked lease at once, without
// asking anyone, and Lost never closes for lack of news. This is safe only
// because of the fence: with the S3 store, the writers of one upload race
// on the conditional writes of its state object, which admit one winner
// whatever Redis says; the lease only makes takeover prompt and saves the
// loser's wasted parts. So a Redis outage or restart loses and corrupts no
// upload. When Redis answers again, the keep-alive writes every lease still
// held back (a Redis restarted empty relearns them), and a lease that
// another holder took meanwhile is lost.
//
// Keys are hashed (SHA-256, 128 bits kept). One Redis serves one
// deployment per Options.Prefix. Redis Cluster is not supported.
package redislease

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/greeter/greeter/coordination"
	"github.com/greeter/greeter/coordination/internal/breaker"
)

// Defaults applied to zero fields of Options.
const (
	DefaultPrefix        = "greeter:"
	DefaultTimeout       = 100 * time.Millisecond
	DefaultProbeInterval = time.Second
	DefaultTTL           = 10 * time.Second
	DefaultTakeover      = 3 * time.Second
)

// Options configure Leases. Zero fields take the defaults.
type Options struct {
	// Prefix starts every key and the channel this package uses.
	// Default "greeter:".
	Prefix string
	// Timeout bounds each Redis call. Default 100 ms.
	Timeout time.Duration
	// ProbeInterval is how often an unreachable Redis is PINGed.
	// Default 1 s.
	ProbeInterval time.Duration
	// TTL is how long a lease outlives the last keep-alive of its holder;
	// holders refresh every TTL/3. Default 10 s.
	TTL time.Duration
	// Takeover is how long an acquirer waits for a holder it asked to let
	// go before it takes the key anyway. Default 3 s.
	Takeover time.Duration
	// Logger receives the outage and recovery records. Nil discards them.
	Logger *slog.Logger
	// OnFallback, if set, is called with the acquirer's context for each
	// lease granted unbacked because Redis did not answer.
	OnFallback func(ctx context.Context)
}

// Leases implements coordination.Leases on Redis.
type Leases struct {
	rdb     *redis.Client
	o       Options
	br      *breaker.Breaker
	channel string
	ps      *redis.PubSub

	// writes orders lease writes: releases share it, a refresh takes it
	// alone, so that a refresh never writes back a lease released during
	// it.
	writes  sync.RWMutex
	mu      sync.Mutex
	held    map[string][]*lease        // by Redis key
	waiters map[string][]chan struct{} // acquirers waiting for a release, by Redis key

	refreshes atomic.Int64 // keep-alive passes, for tests

	kickc    chan struct{}
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

var (
	_ coordination.Leases     = (*Leases)(nil)
	_ coordination.LeaseTrier = (*Leases)(nil)
)

// New returns Leases on rdb, whose options should have passed through
// redislimit.Tune. It subscribes to the release channel and starts the
// keep-alive; Close stops them.
func New(rdb *redis.Client, o Options) *Leases {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.ProbeInterval <= 0 {
		o.ProbeInterval = DefaultProbeInterval
	}
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	if o.Takeover <= 0 {
		o.Takeover = DefaultTakeover
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Leases{
		rdb: rdb, o: o, channel: o.Prefix + "leases",
		held: map[string][]*lease{}, waiters: map[string][]chan struct{}{},
		kickc: make(chan struct{}, 1), stop: make(chan struct{}),
	}
	l.br = breaker.New(l.probe, o.ProbeInterval, o.Logger, breaker.Messages{
		Down: "redis unreachable: upload leases fall back to the conditional writes of the upload state alone (a resumed upload is taken over at once, its old writer stops at its next part) until redis answers again",
		Up:   "redis answers again: upload leases are shared again",
	}, l.kick)
	// go-redis re-subscribes by itself after a lost connection.
	l.ps = rdb.Subscribe(context.Background(), l.channel)
	msgs := l.ps.Channel()
	l.wg.Add(2)
	go l.listen(msgs)
	go l.keepAlive()
	return l
}

// Close stops the keep-alive, the listener and the prober, and waits for
// them. Leases still held are neither released nor lost: like those of a
// replica that died, they are taken over within Options.Takeover, or
// expire within Options.TTL.
func (l *Leases) Close() {
	l.stopOnce.Do(func() { close(l.stop) })
	l.ps.Close()
	l.wg.Wait()
	l.br.Close()
}

// Ping loads the scripts into Redis within ctx. If Redis does not answer,
// leases fall back at once (logged once) and are shared again when a
// probe is answered.
func (l *Leases) Ping(ctx context.Context) error {
	err := l.warm(ctx)
	if err != nil {
		l.br.Fail(err)
	}
	return err
}

func (l *Leases) warm(ctx context.Context) error {
	for _, s := range []*redis.Script{acquireScript, refreshScript, releaseScript} {
		if err := s.Load(ctx, l.rdb).Err(); err != nil {
			return err
		}
	}
	return nil
}

// probe is the breaker's check: the scripts loaded again, then a PING
// answered within Options.Timeout.
func (l *Leases) probe(ctx context.Context) error {
	if err := l.warm(ctx); err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, l.o.Timeout)
	defer cancel()
	return l.rdb.Ping(pctx).Err()
}

// Acquire implements coordination.Leases with takeover (see the package
// documentation). It never returns coordination.ErrLeaseHeld; only ctx
// ending makes it fail. holder must not contain spaces.
func (l *Leases) Acquire(ctx context.Context, key, holder string) (coordination.Lease, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ls := l.newLease(key, holder)
	if !l.br.Usable() {
		return l.grantUnbacked(ctx, ls), nil
	}
	wake := l.waitRelease(ls.key)
	defer l.stopWaiting(ls.key, wake)
	cur, err := l.try(ctx, ls, "", true)
	if err != nil {
		return l.grantUnbacked(ctx, ls), nil
	}
	asked := cur
	deadline := time.NewTimer(l.o.Takeover)
	defer deadline.Stop()
	poll := time.NewTicker(min(max(l.o.Takeover/10, 10*time.Millisecond), 250*time.Millisecond))
	defer poll.Stop()
	for cur != "" {
		expected := ""
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-wake:
		case <-poll.C:
		case <-deadline.C:
			expected = asked // it had its chance: take the key from it
		}
		if cur, err = l.try(ctx, ls, expected, false); err != nil {
			return l.grantUnbacked(ctx, ls), nil
		}
		if cur != "" && cur != asked {
			// Another acquirer took the key meanwhile: ask it in turn.
			if cur, err = l.try(ctx, ls, "", true); err != nil {
				return l.grantUnbacked(ctx, ls), nil
			}
			asked = cur
			deadline.Reset(l.o.Takeover)
		}
	}
	l.register(ls)
	return ls, nil
}

// newLease returns the (not yet held) lease of key for holder.
func (l *Leases) newLease(key, holder string) *lease {
	sum := sha256.Sum256([]byte(key))
	h := base64.RawURLEncoding.EncodeToString(sum[:16])
	return &lease{l: l, key: l.o.Prefix + "lease:" + h, req: l.o.Prefix + "lease-req:" + h, holder: holder, lost: make(chan struct{})}
}

// try runs acquireScript for ls once: it takes the key if it is free, or
// held by expected, and otherwise, if ask, asks the holder to let go. It
// returns "" when ls holds the key, else the holder.
func (l *Leases) try(ctx context.Context, ls *lease, expected string, ask bool) (string, error) {
	askArg := "0"
	if ask {
		askArg = "1"
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.o.Timeout)
	defer cancel()
	cur, err := acquireScript.Run(cctx, l.rdb, []string{ls.key, ls.req},
		ls.holder, l.o.TTL.Milliseconds(), expected, askArg, l.o.Takeover.Milliseconds(), l.channel).Text()
	if err != nil {
		l.br.Fail(err)
		return "", err
	}
	return cur, nil
}

// grantUnbacked returns ls held without Redis (the fence alone guards what
// it protects); the keep-alive writes it to Redis once Redis answers.
func (l *Leases) grantUnbacked(ctx context.Context, ls *lease) *lease {
	if l.o.OnFallback != nil {
		l.o.OnFallback(ctx)
	}
	l.register(ls)
	return ls
}

func (l *Leases) register(ls *lease) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.held[ls.key] = append(l.held[ls.key], ls)
}

// forget removes ls from the leases kept alive and reports whether it was
// there.
func (l *Leases) forget(ls *lease) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	list := l.held[ls.key]
	for i, x := range list {
		if x == ls {
			list = append(list[:i], list[i+1:]...)
			if len(list) == 0 {
				delete(l.held, ls.key)
			} else {
				l.held[ls.key] = list
			}
			return true
		}
	}
	return false
}

// waitRelease returns a channel that receives when a holder of key
// releases it.
func (l *Leases) waitRelease(key string) chan struct{} {
	c := make(chan struct{}, 1)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.waiters[key] = append(l.waiters[key], c)
	return c
}

func (l *Leases) stopWaiting(key string, c chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	list := l.waiters[key]
	for i, x := range list {
		if x == c {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(l.waiters, key)
	} else {
		l.waiters[key] = list
	}
}

// listen handles the channel's messages: "req KEY REQUESTER" asks the
// holders of KEY other than REQUESTER to let go; "rel KEY" wakes the
// acquirers waiting for KEY.
func (l *Leases) listen(msgs <-chan *redis.Message) {
	defer l.wg.Done()
	for {
		select {
		case <-l.stop:
			return
		case m, ok := <-msgs:
			if !ok {
				return
			}
			l.dispatch(m.Payload)
		}
	}
}

func (l *Leases) dispatch(payload string) {
	kind, rest, _ := strings.Cut(payload, " ")
	l.mu.Lock()
	defer l.mu.Unlock()
	switch kind {
	case "req":
		i := strings.LastIndexByte(rest, ' ')
		if i < 0 {
			return
		}
		key, requester := rest[:i], rest[i+1:]
		for _, ls := range l.held[key] {
			if ls.holder != requester {
				ls.signal()
			}
		}
	case "rel":
		for _, c := range l.waiters[rest] {
			select {
			case c <- struct{}{}:
			default:
			}
		}
	}
}

// lease is a coordination.Lease in Redis.
type lease struct {
	l        *Leases
	key, req string // the lease's Redis key, and its request key
	holder   string

	lost     chan struct{}
	lostOnce sync.Once
	relOnce  sync.Once
}

func (ls *lease) Lost() <-chan struct{} { return ls.lost }

func (ls *lease) signal() { ls.lostOnce.Do(func() { close(ls.lost) }) }

// Release implements coordination.Lease: a compare-and-delete whose
// PUBLISH wakes a waiting acquirer. If Redis does not answer, the lease
// expires within the TTL, since it is no longer kept alive.
func (ls *lease) Release() {
	ls.relOnce.Do(func() {
		l := ls.l
		l.writes.RLock()
		defer l.writes.RUnlock()
		if !l.forget(ls) || !l.br.Usable() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), l.o.Timeout)
		defer cancel()
		if err := releaseScript.Run(ctx, l.rdb, []string{ls.key}, ls.holder, l.channel).Err(); err != nil {
			l.br.Fail(err)
		}
	})
}
