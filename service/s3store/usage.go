package s3store

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/greeter/greeter/service"
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
type amount struct{ bytes, objects int64 }

func (a amount) plus(b amount) amount  { return amount{a.bytes + b.bytes, a.objects + b.objects} }
func (a amount) minus(b amount) amount { return amount{a.bytes - b.bytes, a.objects - b.objects} }

// usageCounter keeps the usage of every owner, named by its key segment,
// and enforces quotas on it. Holds are named by their upload: a resumable
// upload by its state key, a plain upload by a key starting with
// localHoldPrefix, which only the process that made it knows. memCounter
// keeps the figures in this process; a counter that replicas share (issue
// 14: Redis) can take its place behind these four methods.
// Implementations must be safe for concurrent use.
type usageCounter interface {
	// usage returns what owner's committed files and holds take.
	usage(ctx context.Context, owner string) (amount, error)
	// reserve makes a the hold of key, replacing the one key had, if
	// owner's usage stays within q with it, or if a takes no more than
	// that hold did; otherwise it fails with a *service.QuotaError and
	// changes nothing.
	reserve(ctx context.Context, owner, key string, a amount, q service.Quota) error
	// settle drops the hold of key, if any (key may be ""), and counts d
	// more committed storage: a commit's share, or a deleted file's size
	// taken off.
	settle(ctx context.Context, owner, key string, d amount)
	// release drops the hold of key, if any.
	release(ctx context.Context, owner, key string)
}

// localHoldPrefix starts the hold keys of plain uploads, which no listing
// of the bucket finds: a recount keeps them.
const localHoldPrefix = "local/"

// tallyFunc computes an owner's usage from the bucket: its committed
// storage and the holds of its resumable uploads by state key.
type tallyFunc func(ctx context.Context, owner string) (used amount, holds map[string]amount, err error)

// memCounter is the usageCounter of one process. It computes an owner's
// usage with tally at the owner's first use, and again when the figure is
// older than maxAge (never, if maxAge is negative) or when it refuses an
// upload and is older than refusalRecount, so that what other replicas
// changed meanwhile is caught up with. Owners without a quota are not
// counted until their usage is asked for or they get one.
type memCounter struct {
	tally  tallyFunc
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

func newMemCounter(tally tallyFunc, now func() time.Time, maxAge time.Duration) *memCounter {
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

func (c *memCounter) usage(ctx context.Context, owner string) (amount, error) {
	oc, err := c.lock(ctx, owner, false)
	if err != nil {
		return amount{}, err
	}
	defer oc.mu.Unlock()
	return oc.total(), nil
}

func (c *memCounter) reserve(ctx context.Context, owner, key string, a amount, q service.Quota) error {
	if q == (service.Quota{}) && !c.isLoaded(owner) {
		return nil // nothing to enforce, and nobody asked yet
	}
	for force := false; ; force = true {
		oc, err := c.lock(ctx, owner, force)
		if err != nil {
			return err
		}
		err = oc.fits(q, oc.holds[key], a)
		if err == nil {
			oc.holds[key] = a
		}
		oc.mu.Unlock()
		if err == nil || force {
			return err
		}
	}
}

func (c *memCounter) settle(_ context.Context, owner, key string, d amount) {
	c.change(owner, func(oc *ownerCount) {
		delete(oc.holds, key)
		oc.used = oc.used.plus(d)
	})
}

func (c *memCounter) release(_ context.Context, owner, key string) {
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
		t = t.plus(h)
	}
	return t
}

// fits checks that replacing the hold cur by next keeps the owner within
// q. What does not grow always fits, so an owner above a lowered quota can
// still shrink. The caller holds oc.mu.
func (oc *ownerCount) fits(q service.Quota, cur, next amount) error {
	total := oc.total()
	if q.Bytes > 0 && next.bytes > cur.bytes && total.bytes-cur.bytes+next.bytes > q.Bytes {
		return &service.QuotaError{Subject: service.QuotaBytes, Limit: q.Bytes, Used: total.bytes - cur.bytes, Need: next.bytes}
	}
	if q.Objects > 0 && next.objects > cur.objects && total.objects-cur.objects+next.objects > q.Objects {
		return &service.QuotaError{Subject: service.QuotaObjects, Limit: q.Objects, Used: total.objects - cur.objects, Need: next.objects}
	}
	return nil
}
