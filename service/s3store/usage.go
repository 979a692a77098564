package s3store

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/greeter/greeter/coordination"
)

// Per-owner usage and quotas. An owner's usage is its committed files
// (their sizes, one object each) plus what its incomplete uploads hold: a
// resumable upload its declared size less the size of the file it
// replaces, and one object unless it replaces a file; a plain upload, in
// the process that receives it, the bytes it wrote beyond that size while
// its owner has a bytes quota, and one object unless it is known to
// replace a file. The package documentation says how the figure is kept
// and reconciled.

// amount is a quantity of storage.
type amount = coordination.Amount

// The store keeps the usage of every owner, named by its key segment, in
// a coordination.Usage: memCounter in this process, or the counter that
// Options.Usage returns, such as one that replicas share in Redis
// (redisusage). Holds are named by their upload: a resumable upload by its
// state key, a plain upload by a key starting with localHoldPrefix, which
// only the process that made it knows and no tally finds.

// localHoldPrefix starts the hold keys of plain uploads, which no listing
// of the bucket finds: a recount keeps them.
const localHoldPrefix = "local/"

// memCounter is the coordination.Usage of one process. It computes an owner's
// usage with tally at the owner's first use, and again when the figure is
// older than maxAge (never, if maxAge is negative) or when it refuses an
// upload and is older than refusalRecount, so that what other replicas
// changed meanwhile is caught up with. Owners without a quota are not
// counted until their usage is asked for or they get one.
type memCounter struct {
	tally  coordination.Tally
	now    func() time.Time
	maxAge time.Duration

	mu     sync.Mutex
	owners map[string]*ownerCount // entries are never removed
}

// refusalRecount is how old an owner's figure must be for a refusal to
// count it again before it answers.
const refusalRecount = 10 * time.Second

// ownerCount is one owner's usage.
type ownerCount struct {
	mu       sync.Mutex
	loaded   bool
	counted  time.Time     // when tally last ran
	counting chan struct{} // closed when the tally in progress ends; nil if none
	used     amount
	holds    map[string]amount
}

func newMemCounter(tally coordination.Tally, now func() time.Time, maxAge time.Duration) *memCounter {
	return &memCounter{tally: tally, now: now, maxAge: maxAge, owners: make(map[string]*ownerCount)}
}

// get returns owner's entry, creating it unloaded.
func (c *memCounter) get(owner string) *ownerCount {
	c.mu.Lock()
	defer c.mu.Unlock()
	oc := c.owners[owner]
	if oc == nil {
		oc = &ownerCount{holds: make(map[string]amount)}
		c.owners[owner] = oc
	}
	return oc
}

// stale reports whether oc must be counted (again) before use. The caller
// holds oc.mu.
func (c *memCounter) stale(oc *ownerCount) bool {
	return !oc.loaded || (c.maxAge >= 0 && c.now().Sub(oc.counted) > c.maxAge)
}

// lock locks owner's entry, counting it first when it is stale (force:
// when older than refusalRecount). A failed count of an owner counted
// before keeps the old figure; of an owner never counted it is returned.
// The caller unlocks oc.mu.
func (c *memCounter) lock(ctx context.Context, owner string, force bool) (*ownerCount, error) {
	oc := c.get(owner)
	oc.mu.Lock()
	for {
		need := c.stale(oc) || (force && c.now().Sub(oc.counted) > refusalRecount)
		if !need {
			return oc, nil
		}
		if wait := oc.counting; wait != nil {
			oc.mu.Unlock()
			select {
			case <-wait:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			oc.mu.Lock()
			force = false // the count just made is fresh enough
			continue
		}
		done := make(chan struct{})
		oc.counting = done
		oc.mu.Unlock()
		used, holds, err := c.tally(ctx, owner)
		oc.mu.Lock()
		oc.counting = nil
		close(done)
		if err != nil {
			if oc.loaded {
				return oc, nil
			}
			oc.mu.Unlock()
			return nil, err
		}
		for k, h := range oc.holds {
			if strings.HasPrefix(k, localHoldPrefix) {
				holds[k] = h
			}
		}
		oc.used, oc.holds, oc.loaded, oc.counted = used, holds, true, c.now()
		return oc, nil
	}
}

// Get implements coordination.Usage.
func (c *memCounter) Get(ctx context.Context, owner string) (amount, error) {
	oc, err := c.lock(ctx, owner, false)
	if err != nil {
		return amount{}, err
	}
	defer oc.mu.Unlock()
	return oc.total(), nil
}

// Reserve implements coordination.Usage.
func (c *memCounter) Reserve(ctx context.Context, owner, key string, a, q amount) error {
	if q == (amount{}) && !c.isLoaded(owner) {
		return nil // nothing to enforce, and nobody asked yet
	}
	for force := false; ; force = true {
		oc, err := c.lock(ctx, owner, force)
		if err != nil {
			return err
		}
		err = coordination.Fits(oc.total(), oc.holds[key], a, q)
		if err == nil {
			oc.holds[key] = a
		}
		oc.mu.Unlock()
		if err == nil || force {
			return err
		}
	}
}

// Settle implements coordination.Usage.
func (c *memCounter) Settle(_ context.Context, owner, key string, d amount) {
	c.change(owner, func(oc *ownerCount) {
		delete(oc.holds, key)
		oc.used = oc.used.Plus(d)
	})
}

// Release implements coordination.Usage.
func (c *memCounter) Release(_ context.Context, owner, key string) {
	c.change(owner, func(oc *ownerCount) { delete(oc.holds, key) })
}

// change applies f to owner's entry if it is loaded. An owner not counted
// yet needs nothing: its first count will find the bucket as it is.
func (c *memCounter) change(owner string, f func(*ownerCount)) {
	oc := c.get(owner)
	oc.mu.Lock()
	defer oc.mu.Unlock()
	if oc.loaded {
		f(oc)
	}
}

// isLoaded reports whether owner has been counted.
func (c *memCounter) isLoaded(owner string) bool {
	oc := c.get(owner)
	oc.mu.Lock()
	defer oc.mu.Unlock()
	return oc.loaded
}

// total returns the committed storage plus every hold. The caller holds
// oc.mu.
func (oc *ownerCount) total() amount {
	t := oc.used
	for _, h := range oc.holds {
		t = t.Plus(h)
	}
	return t
}
