// Package redisusage keeps what each owner stores in one Redis, as a
// coordination.Usage that every greeterd replica shares, so that replicas
// enforce one quota between them instead of each its own.
//
// # What Redis holds
//
// An owner's entry is a hash: its committed bytes and objects plus every
// hold, one field per hold (an incomplete upload's reservation, named by
// the store), and reconciled_at, when the entry was last set from the
// storage. Reserving is one Lua script that checks the quota and sets the
// hold (HINCRBY on the totals) atomically, so two replicas admitting
// uploads at the same moment cannot both take the last bytes. A hold is
// reserved when an upload is created, released when it is aborted or
// expires, and settled into the committed figure when it is published; a
// delete takes the file off. Each of these is one round trip.
//
// # Reconciliation: how drift stays bounded
//
// The figure is set from the storage itself (coordination.Tally: a listing
// of the owner's objects and upload states) when the entry is missing
// (first use, a Redis restarted empty, an entry idle for Options.IdleTTL)
// and when it is older than Options.MaxAge (5 minutes by default) at its
// next use; and when it refuses an upload and is older than
// Options.RefusalRecount. So whatever drift there is lasts at most MaxAge:
// a replica that died between publishing a file and counting it, or while
// a plain upload held bytes, a commit or delete that raced a listing (it
// may be counted twice or not at all until the next one), or changes made
// by the local fallback while Redis was down (see below). A
// reconciliation is a compare-and-set on reconciled_at, so of two replicas
// reconciling at once only the first writes; holds set while the listing
// ran are kept, since it may have missed them. Holds that no listing sees
// (the S3 store's plain uploads, which hold what they wrote so far) are
// dropped by a reconciliation and held again as their upload writes on.
//
// Operations on a missing entry do not create it: settling or releasing
// changes nothing (the next tally finds the storage as it is), and
// reserving without a quota needs no figure at all, so owners without a
// quota are counted only when their usage is asked for.
//
// # Redis down
//
// Every Redis call is bounded by Options.Timeout. When one fails, the
// counter falls back to the local counter given to New (this replica's
// own, as before: each replica enforces the quota on what it counts),
// logged once per outage at WARN and counted through Options.OnFallback,
// and a circuit breaker sends later calls straight to it until a prober
// finds Redis answering (logged once). An owner whose usage changed on the
// fallback is reconciled at its next use once Redis answers, so the
// outage leaves no drift behind. The storage is never blocked by Redis.
//
// Keys and hold names are hashed (SHA-256, 128 bits kept). One Redis serves
// one deployment per Options.Prefix.
package redisusage

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/greeter/greeter/coordination"
	"github.com/greeter/greeter/coordination/internal/breaker"
)

// Defaults applied to zero fields of Options.
const (
	DefaultPrefix         = "greeter:"
	DefaultTimeout        = 100 * time.Millisecond
	DefaultProbeInterval  = time.Second
	DefaultMaxAge         = 5 * time.Minute
	DefaultRefusalRecount = 10 * time.Second
	DefaultIdleTTL        = 24 * time.Hour
)

// Options configure Usage. Zero fields take the defaults.
type Options struct {
	// Prefix starts every key this package writes. Default "greeter:".
	Prefix string
	// Timeout bounds each Redis call (not the tally). Default 100 ms.
	Timeout time.Duration
	// ProbeInterval is how often an unreachable Redis is PINGed.
	// Default 1 s.
	ProbeInterval time.Duration
	// MaxAge is how old an entry may grow before its next use reconciles
	// it from the storage. Default 5 minutes.
	MaxAge time.Duration
	// RefusalRecount is how old an entry must be for a refusal to
	// reconcile it before it answers. Default 10 s.
	RefusalRecount time.Duration
	// IdleTTL is how long an entry nobody changes is kept. Default 24 h.
	IdleTTL time.Duration
	// Logger receives the outage and recovery records. Nil discards them.
	Logger *slog.Logger
	// OnFallback, if set, is called with the caller's context for every
	// call the local counter answered because Redis did not.
	OnFallback func(ctx context.Context)
}

// Usage implements coordination.Usage in Redis, with a local fallback.
type Usage struct {
	rdb   *redis.Client
	tally coordination.Tally
	local coordination.Usage
	o     Options
	br    *breaker.Breaker

	mu      sync.Mutex
	flights map[string]*flight  // reconciliations in progress, by owner
	dirty   map[string]struct{} // owners changed on the fallback
}

var _ coordination.Usage = (*Usage)(nil)

// New returns a Usage on rdb (options passed through redislimit.Tune) that
// counts owners with tally and falls back to local while Redis does not
// answer. Close stops its prober.
func New(rdb *redis.Client, tally coordination.Tally, local coordination.Usage, o Options) *Usage {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.ProbeInterval <= 0 {
		o.ProbeInterval = DefaultProbeInterval
	}
	if o.MaxAge <= 0 {
		o.MaxAge = DefaultMaxAge
	}
	if o.RefusalRecount <= 0 {
		o.RefusalRecount = DefaultRefusalRecount
	}
	if o.IdleTTL <= 0 {
		o.IdleTTL = DefaultIdleTTL
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	u := &Usage{rdb: rdb, tally: tally, local: local, o: o, flights: map[string]*flight{}, dirty: map[string]struct{}{}}
	u.br = breaker.New(u.probe, o.ProbeInterval, o.Logger, breaker.Messages{
		Down: "redis unreachable: usage and quotas fall back to this replica's own count (each replica enforces the quota on what it sees) until redis answers again",
		Up:   "redis answers again: usage and quotas are shared again",
	}, nil)
	return u
}

// Close stops the prober.
func (u *Usage) Close() { u.br.Close() }

// Ping loads the scripts into Redis within ctx. If Redis does not answer,
// the counter falls back at once (logged once).
func (u *Usage) Ping(ctx context.Context) error {
	err := u.warm(ctx)
	if err != nil {
		u.br.Fail(err)
	}
	return err
}

func (u *Usage) warm(ctx context.Context) error {
	for _, s := range scripts {
		if err := s.Load(ctx, u.rdb).Err(); err != nil {
			return err
		}
	}
	return nil
}

func (u *Usage) probe(ctx context.Context) error {
	if err := u.warm(ctx); err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, u.o.Timeout)
	defer cancel()
	return u.rdb.Ping(pctx).Err()
}

// Get implements coordination.Usage. A missing or stale entry is
// reconciled first; if that fails, a stale figure is returned as it is,
// and a missing one gives the tally's error.
func (u *Usage) Get(ctx context.Context, owner string) (coordination.Amount, error) {
	if !u.br.Usable() {
		return u.fallbackGet(ctx, owner)
	}
	key := u.key(owner)
	for attempt := range maxAttempts {
		v, err := u.run(ctx, getScript, []string{key}).Int64Slice()
		if err != nil {
			return u.fallbackGet(ctx, owner)
		}
		present := v[0] == 1 && len(v) == 4
		var figure coordination.Amount
		if present {
			figure = coordination.Amount{Bytes: v[1], Objects: v[2]}
			if attempt > 0 || (time.Duration(v[3])*time.Millisecond <= u.o.MaxAge && !u.isDirty(owner)) {
				return figure, nil
			}
		}
		fresh := time.Duration(anyAge)
		if present {
			fresh = u.o.MaxAge
			if u.isDirty(owner) {
				fresh = noAge
			}
		}
		if err := u.reconcile(ctx, owner, fresh); err != nil {
			switch {
			case errRedis(err):
				return u.fallbackGet(ctx, owner)
			case present:
				return figure, nil
			}
			return coordination.Amount{}, err
		}
	}
	return u.fallbackGet(ctx, owner) // the entry vanishes as fast as it is set
}

// Reserve implements coordination.Usage in one round trip, unless the
// entry must be reconciled first.
func (u *Usage) Reserve(ctx context.Context, owner, hold string, a, quota coordination.Amount) error {
	if !u.br.Usable() {
		return u.fallbackReserve(ctx, owner, hold, a, quota)
	}
	key := u.key(owner)
	field := u.field(hold)
	stale, recounted := false, false
	if u.isDirty(owner) {
		if err := u.reconcile(ctx, owner, noAge); errRedis(err) {
			return u.fallbackReserve(ctx, owner, hold, a, quota)
		}
	}
	for attempt := range maxAttempts {
		v, err := u.run(ctx, reserveScript, []string{key}, field, a.Bytes, a.Objects, quota.Bytes, quota.Objects,
			u.o.MaxAge.Milliseconds(), u.o.IdleTTL.Milliseconds(), flag(stale || attempt > 1)).Int64Slice()
		if err != nil {
			return u.fallbackReserve(ctx, owner, hold, a, quota)
		}
		switch v[0] {
		case 0:
			return nil
		case -1, -2:
			fresh := time.Duration(anyAge)
			if v[0] == -2 {
				fresh = u.o.MaxAge
			}
			if err := u.reconcile(ctx, owner, fresh); err != nil {
				if errRedis(err) {
					return u.fallbackReserve(ctx, owner, hold, a, quota)
				}
				if v[0] == -1 {
					return err // never counted: nothing to decide on
				}
				stale = true // keep the figure it was to replace
			}
			continue
		}
		age := time.Duration(v[5]) * time.Millisecond
		if !recounted && age > u.o.RefusalRecount {
			// Perhaps another replica freed storage that the figure
			// missed: count again before refusing.
			recounted = true
			if err := u.reconcile(ctx, owner, u.o.RefusalRecount); err == nil {
				continue
			}
		}
		return &coordination.QuotaError{Objects: v[1] == 1, Limit: v[2], Used: v[3], Need: v[4]}
	}
	return u.fallbackReserve(ctx, owner, hold, a, quota) // the entry vanishes as fast as it is set
}

// Settle implements coordination.Usage.
func (u *Usage) Settle(ctx context.Context, owner, hold string, d coordination.Amount) {
	u.change(ctx, owner, hold, d, func() { u.local.Settle(ctx, owner, hold, d) })
}

// Release implements coordination.Usage.
func (u *Usage) Release(ctx context.Context, owner, hold string) {
	u.change(ctx, owner, hold, coordination.Amount{}, func() { u.local.Release(ctx, owner, hold) })
}

// change drops hold (if not "") and adds d, or runs fallback.
func (u *Usage) change(ctx context.Context, owner, hold string, d coordination.Amount, fallback func()) {
	if u.br.Usable() {
		field := ""
		if hold != "" {
			field = u.field(hold)
		}
		if err := u.run(ctx, settleScript, []string{u.key(owner)}, field, d.Bytes, d.Objects, u.o.IdleTTL.Milliseconds()).Err(); err == nil {
			return
		}
	}
	u.fellBack(ctx, owner)
	fallback()
}

func (u *Usage) fallbackGet(ctx context.Context, owner string) (coordination.Amount, error) {
	u.fellBack(ctx, "")
	return u.local.Get(ctx, owner)
}

func (u *Usage) fallbackReserve(ctx context.Context, owner, hold string, a, quota coordination.Amount) error {
	u.fellBack(ctx, owner)
	return u.local.Reserve(ctx, owner, hold, a, quota)
}

// fellBack counts a call the local counter answers and, for a change,
// marks owner for reconciliation once Redis answers.
func (u *Usage) fellBack(ctx context.Context, owner string) {
	if u.o.OnFallback != nil {
		u.o.OnFallback(ctx)
	}
	if owner != "" {
		u.mu.Lock()
		u.dirty[owner] = struct{}{}
		u.mu.Unlock()
	}
}

func (u *Usage) isDirty(owner string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	_, ok := u.dirty[owner]
	return ok
}

// run runs script within Options.Timeout, without ctx's cancellation (a
// caller that gives up must not count as a Redis failure). A failure opens
// the breaker.
func (u *Usage) run(ctx context.Context, s *redis.Script, keys []string, args ...any) *redis.Cmd {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), u.o.Timeout)
	defer cancel()
	cmd := s.Run(cctx, u.rdb, keys, args...)
	if err := cmd.Err(); err != nil {
		u.br.Fail(err)
	}
	return cmd
}

// key returns the Redis key of owner's entry.
func (u *Usage) key(owner string) string { return u.o.Prefix + "usage:" + hash(owner) }

// field returns the field of hold in an entry.
func (u *Usage) field(hold string) string { return "hold:" + hash(hold) }

func hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// flag is a boolean as a script argument.
func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
