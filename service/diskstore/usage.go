package diskstore

import (
	"context"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/objname"
)

// Per-owner usage and quotas (RELIABILITY.md R11). An owner's usage is
// computed from disk at its first use, by a walk of its folders in
// objects/ and uploads/, and then kept in memory: every change of the
// owner's files on disk and the matching change of its usage happen under
// the owner's lock, so a restart that walks again finds the same numbers.
// Committed files count at their size, one object each; an incomplete
// upload sets aside a hold: a resumable one its declared size less the
// size of the file it replaces, a plain one the bytes it has written
// beyond that size (while its owner has a bytes quota), and either one
// object unless it replaces a file.

// amount is a quantity of storage.
type amount struct{ bytes, objects int64 }

func (a amount) plus(b amount) amount  { return amount{a.bytes + b.bytes, a.objects + b.objects} }
func (a amount) minus(b amount) amount { return amount{a.bytes - b.bytes, a.objects - b.objects} }

// hold is what one incomplete upload sets aside.
type hold struct {
	amount
	// credit is the size of the file the upload replaces, as it was when
	// the upload began.
	credit int64
}

// ownerUsage is one owner's usage. mu is held across every change of the
// owner's files and the matching change here.
type ownerUsage struct {
	mu       sync.Mutex
	loaded   bool
	used     amount           // committed files
	reserved amount           // the sum of holds
	holds    map[string]*hold // by the upload's key: its temporary or its uploads/ path
}

// usageLedger holds the usage of every owner used since the store opened.
// Entries are never removed, so a pointer to one stays valid; there is one
// per owner that wrote or asked, about a hundred bytes.
type usageLedger struct {
	mu     sync.Mutex
	owners map[string]*ownerUsage // by owner folder name
	// bytes and objects total the usage of the loaded owners.
	bytes, objects atomic.Int64
}

// get returns the usage entry of the owner whose folders are named key,
// creating it unloaded.
func (l *usageLedger) get(key string) *ownerUsage {
	l.mu.Lock()
	defer l.mu.Unlock()
	ou := l.owners[key]
	if ou == nil {
		if l.owners == nil {
			l.owners = make(map[string]*ownerUsage)
		}
		ou = &ownerUsage{holds: make(map[string]*hold)}
		l.owners[key] = ou
	}
	return ou
}

// lookup returns the entry of key, or nil if there is none.
func (l *usageLedger) lookup(key string) *ownerUsage {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.owners[key]
}

// total moves the totals by d.
func (l *usageLedger) total(d amount) {
	l.bytes.Add(d.bytes)
	l.objects.Add(d.objects)
}

// quotaFor returns owner's quota.
func (s *Store) quotaFor(owner string) service.Quota {
	if s.opts.quotas == nil {
		return service.Quota{}
	}
	return s.opts.quotas(owner)
}

// lockUsage locks the usage of the owner whose folders are named key,
// computing it from disk first if this is its first use. The caller
// unlocks ou.mu.
func (s *Store) lockUsage(ctx context.Context, key string) (*ownerUsage, error) {
	ou := s.usage.get(key)
	ou.mu.Lock()
	if !ou.loaded {
		if err := s.loadUsage(ctx, key, ou); err != nil {
			ou.mu.Unlock()
			return nil, fmt.Errorf("diskstore: computing usage: %w", err)
		}
	}
	return ou, nil
}

// loadUsage computes the usage of the owner whose folders are named key
// from disk. The caller holds ou.mu. Files whose names objname.Validate
// rejects are not counted (no client sees or deletes them), nor are
// uploads whose state cannot be used (the janitor removes them).
func (s *Store) loadUsage(ctx context.Context, key string, ou *ownerUsage) error {
	if err := s.sameRoot(); err != nil {
		return err // a data directory that is gone would count nothing
	}
	var used amount
	base := objectsDir + "/" + key
	err := fs.WalkDir(s.root.FS(), base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if isMissing(err) {
				return nil // the owner has no files, or a folder went meanwhile
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !d.Type().IsRegular() || objname.Validate(strings.TrimPrefix(p, base+"/")) != nil {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		used.bytes += fi.Size()
		used.objects++
		return nil
	})
	if err != nil {
		return err
	}
	holds := make(map[string]*hold)
	var reserved amount
	dir := uploadsDir + "/" + key
	entries, err := fs.ReadDir(s.root.FS(), dir)
	if err != nil && !isMissing(err) {
		return err
	}
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), stateSuffix)
		if !ok || !e.Type().IsRegular() || service.ValidateUploadID(id) != nil {
			continue
		}
		st, err := s.loadState(dir + "/" + id)
		if err != nil {
			continue
		}
		h := s.newHold(base+"/"+st.Name, st.Size)
		holds[dir+"/"+id] = h
		reserved = reserved.plus(h.amount)
	}
	ou.used, ou.reserved, ou.holds, ou.loaded = used, reserved, holds, true
	s.usage.total(used.plus(reserved))
	return nil
}

// newHold returns the hold of an upload to the committed path final that
// declared size bytes (0 for a plain upload, whose hold grows as it
// writes).
func (s *Store) newHold(final string, size int64) *hold {
	h := &hold{amount: amount{objects: 1}}
	if fi, err := s.root.Lstat(final); err == nil && fi.Mode().IsRegular() {
		h.credit, h.objects = fi.Size(), 0
	}
	h.bytes = max(0, size-h.credit)
	return h
}

// fits checks that an upload whose share of the owner's usage changes from
// cur to next keeps the owner within q. A share that does not grow always
// fits, so an owner above a lowered quota can still shrink. The caller
// holds ou.mu.
func (ou *ownerUsage) fits(q service.Quota, cur, next amount) error {
	total := ou.used.plus(ou.reserved)
	if q.Bytes > 0 && next.bytes > cur.bytes && total.bytes-cur.bytes+next.bytes > q.Bytes {
		return &service.QuotaError{Subject: service.QuotaBytes, Limit: q.Bytes, Used: total.bytes - cur.bytes, Need: next.bytes}
	}
	if q.Objects > 0 && next.objects > cur.objects && total.objects-cur.objects+next.objects > q.Objects {
		return &service.QuotaError{Subject: service.QuotaObjects, Limit: q.Objects, Used: total.objects - cur.objects, Need: next.objects}
	}
	return nil
}

// setHold makes h the hold of key, replacing any other, with amount a. The
// caller holds ou.mu.
func (s *Store) setHold(ou *ownerUsage, key string, h *hold, a amount) {
	var old amount
	if prev := ou.holds[key]; prev != nil {
		old = prev.amount
	}
	h.amount = a
	ou.holds[key] = h
	ou.reserved = ou.reserved.minus(old).plus(a)
	s.usage.total(a.minus(old))
}

// dropHold forgets the hold of key, if any. The caller holds ou.mu.
func (s *Store) dropHold(ou *ownerUsage, key string) {
	h := ou.holds[key]
	if h == nil {
		return
	}
	delete(ou.holds, key)
	ou.reserved = ou.reserved.minus(h.amount)
	s.usage.total(amount{}.minus(h.amount))
}

// addUsed counts d more committed storage. The caller holds ou.mu.
func (s *Store) addUsed(ou *ownerUsage, d amount) {
	ou.used = ou.used.plus(d)
	s.usage.total(d)
}

// releaseHold forgets the hold of the upload at key of the owner whose
// folders are named owner, after the upload was removed. An owner not yet
// used has no hold to forget: its walk will not find the upload.
func (s *Store) releaseHold(owner, key string) {
	ou := s.usage.lookup(owner)
	if ou == nil {
		return
	}
	ou.mu.Lock()
	defer ou.mu.Unlock()
	if ou.loaded {
		s.dropHold(ou, key)
	}
}

// Usage reports what owner stores (committed files, plus what its
// incomplete uploads set aside) and its quota. The first call for an owner
// after Open walks its folders.
func (s *Store) Usage(ctx context.Context, owner string) (_ service.Usage, err error) {
	defer s.unavailable(&err)
	if err := ctx.Err(); err != nil {
		return service.Usage{}, err
	}
	key, err := ownerFolderName(owner)
	if err != nil {
		return service.Usage{}, err
	}
	ou, err := s.lockUsage(ctx, key)
	if err != nil {
		return service.Usage{}, err
	}
	total := ou.used.plus(ou.reserved)
	ou.mu.Unlock()
	return service.Usage{Bytes: total.bytes, Objects: total.objects, Quota: s.quotaFor(owner)}, nil
}

// UsageTotals returns the bytes and objects of every owner whose usage is
// known: every owner used since Open, and every owner once ScanUsage has
// run.
func (s *Store) UsageTotals() (bytes, objects int64) {
	return s.usage.bytes.Load(), s.usage.objects.Load()
}

// ScanUsage computes the usage of every owner with files or uploads that
// is not known yet, so that UsageTotals covers the whole store. It reads
// every owner's folders once and stops early when ctx ends.
func (s *Store) ScanUsage(ctx context.Context) error {
	seen := make(map[string]bool)
	for _, top := range []string{objectsDir, uploadsDir} {
		entries, err := fs.ReadDir(s.root.FS(), top)
		if err != nil {
			return fmt.Errorf("diskstore: scan usage: %w", err)
		}
		for _, e := range entries {
			if !e.IsDir() || seen[e.Name()] {
				continue
			}
			seen[e.Name()] = true
			ou, err := s.lockUsage(ctx, e.Name())
			if err != nil {
				return err
			}
			ou.mu.Unlock()
		}
	}
	return nil
}

// reservation is an incomplete upload's share of its owner's usage: the
// hold it keeps under key.
type reservation struct {
	s     *Store
	ou    *ownerUsage
	key   string
	h     *hold // the hold set at the start; only its upload changes it
	quota service.Quota
}

// reserve sets aside a hold for an upload, keyed key, to the committed path
// final that declared size bytes (0 for a plain upload), or fails with a
// *service.QuotaError. A hold key had before (an expired upload being
// replaced) is replaced.
func (s *Store) reserve(ctx context.Context, owner, key, final string, size int64) (*reservation, error) {
	okey, err := ownerFolderName(owner)
	if err != nil {
		return nil, err
	}
	ou, err := s.lockUsage(ctx, okey)
	if err != nil {
		return nil, err
	}
	defer ou.mu.Unlock()
	r := &reservation{s: s, ou: ou, key: key, quota: s.quotaFor(owner)}
	h := s.newHold(final, size)
	var cur amount
	if prev := ou.holds[key]; prev != nil {
		cur = prev.amount
	}
	if err := ou.fits(r.quota, cur, h.amount); err != nil {
		return nil, err
	}
	r.h = h
	s.setHold(ou, key, h, h.amount)
	return r, nil
}

// resumed returns the reservation of owner's resumable upload at key: the
// hold its owner's walk found, or the one it set when it began.
func (s *Store) resumed(ctx context.Context, owner, key string) (*reservation, error) {
	okey, err := ownerFolderName(owner)
	if err != nil {
		return nil, err
	}
	ou, err := s.lockUsage(ctx, okey)
	if err != nil {
		return nil, err
	}
	defer ou.mu.Unlock()
	return &reservation{s: s, ou: ou, key: key, h: ou.holds[key], quota: s.quotaFor(owner)}, nil
}

// grow makes a plain upload's hold cover written bytes, when its owner has
// a bytes quota, or fails with a *service.QuotaError. It does not allocate
// unless it fails.
func (r *reservation) grow(written int64) error {
	if r == nil || r.h == nil || r.quota.Bytes <= 0 {
		return nil
	}
	next := max(0, written-r.h.credit)
	if next <= r.h.bytes {
		return nil
	}
	r.ou.mu.Lock()
	defer r.ou.mu.Unlock()
	if r.ou.holds[r.key] != r.h {
		return nil // released
	}
	a := amount{next, r.h.objects}
	if err := r.ou.fits(r.quota, r.h.amount, a); err != nil {
		return err
	}
	r.s.setHold(r.ou, r.key, r.h, a)
	return nil
}

// release forgets the hold. It is safe to call more than once.
func (r *reservation) release() {
	if r == nil {
		return
	}
	r.ou.mu.Lock()
	defer r.ou.mu.Unlock()
	if r.h != nil && r.ou.holds[r.key] == r.h {
		r.s.dropHold(r.ou, r.key)
	}
}
