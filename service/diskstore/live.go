package diskstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/greeter/greeter/service"
)

// reopenRoot opens a new Store on the path of s with the same options. Unlike
// Open it does not create the data directory itself: a directory missing
// from its path (an unmounted volume, say) must be put back by whoever
// removed it, not papered over with an empty one on the parent filesystem.
// The new Store takes the lock of the directory now at the path; when that
// is the directory s holds (only a folder in it went missing), it shares
// s's lock, so s never blocks its own successor.
func (s *Store) reopenRoot() (*Store, error) {
	root, lock, err := openRoot(s.root.Name(), s.lock)
	if err != nil {
		if errors.Is(err, ErrLocked) {
			return nil, err
		}
		return nil, fmt.Errorf("diskstore: reopen: %w", err)
	}
	next := &Store{root: root, lock: lock, opts: s.opts}
	if err := next.upgradeLayout(); err != nil {
		next.Close()
		return nil, err
	}
	return next, nil
}

var (
	_ service.ResumableStore = (*Live)(nil)
	_ service.SizedStore     = (*Live)(nil)
)

// Live is a store that follows its data directory: when the directory is
// removed and created again, or another directory takes its path, Check
// opens a Store on the directory now at the path and uses it from then on.
// Every other method goes to the Store in use when it is called; uploads
// begun and files opened before a switch stay with the old Store, which is
// closed (its files stay readable, its uploads fail). Live is safe for
// concurrent use.
type Live struct {
	cur atomic.Pointer[Store]

	mu     sync.Mutex // serializes Check and Close
	closed bool
}

// OpenLive opens a Store on dir as Open does and returns it as a Live.
func OpenLive(dir string, opts ...Option) (*Live, error) {
	s, err := Open(dir, opts...)
	if err != nil {
		return nil, err
	}
	l := &Live{}
	l.cur.Store(s)
	return l, nil
}

// Store returns the Store in use.
func (l *Live) Store() *Store { return l.cur.Load() }

// Check checks the Store in use as Store.Check does. When its directory is
// gone from its path and a directory is there again, Check opens a new
// Store on it and, if that one is healthy, switches to it, closes the old
// one and returns nil. Otherwise it returns the old Store's error, joined
// with a *LockedError when another Store holds the new directory.
func (l *Live) Check(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return fmt.Errorf("diskstore: closed: %w", service.ErrUnavailable)
	}
	old := l.cur.Load()
	err := old.Check(ctx)
	if !errors.Is(err, ErrRootGone) {
		return err
	}
	next, rerr := old.reopenRoot()
	if errors.Is(rerr, ErrLocked) {
		// Another process took the new directory first: say who.
		return fmt.Errorf("%w; %w", err, rerr)
	}
	if rerr != nil {
		return err
	}
	if cerr := next.Check(ctx); cerr != nil {
		next.Close()
		return cerr
	}
	l.cur.Store(next)
	old.opts.logger.WarnContext(ctx, "data directory reopened",
		slog.String("dir", old.root.Name()), slog.Any("error", err))
	old.Close()
	return nil
}

// Close closes the Store in use. Check fails afterwards.
func (l *Live) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	return l.cur.Load().Close()
}

// Create starts an upload; see Store.Create.
func (l *Live) Create(ctx context.Context, owner, name string) (service.Upload, error) {
	return l.cur.Load().Create(ctx, owner, name)
}

// CreateSized starts an upload of a declared size; see Store.CreateSized.
func (l *Live) CreateSized(ctx context.Context, owner, name string, size int64) (service.Upload, error) {
	return l.cur.Load().CreateSized(ctx, owner, name, size)
}

// Open opens a committed file; see Store.Open.
func (l *Live) Open(ctx context.Context, owner, name string) (service.File, error) {
	return l.cur.Load().Open(ctx, owner, name)
}

// Stat describes a committed file; see Store.Stat.
func (l *Live) Stat(ctx context.Context, owner, name string) (service.FileInfo, error) {
	return l.cur.Load().Stat(ctx, owner, name)
}

// List lists committed files; see Store.List.
func (l *Live) List(ctx context.Context, owner, prefix, after string, limit int) ([]service.FileInfo, error) {
	return l.cur.Load().List(ctx, owner, prefix, after, limit)
}

// Delete removes a committed file; see Store.Delete.
func (l *Live) Delete(ctx context.Context, owner, name string) error {
	return l.cur.Load().Delete(ctx, owner, name)
}

// Usage reports an owner's usage and quota; see Store.Usage.
func (l *Live) Usage(ctx context.Context, owner string) (service.Usage, error) {
	return l.cur.Load().Usage(ctx, owner)
}

// UsageTotals totals the usage of the owners known; see
// Store.UsageTotals. After a switch to a new Store it starts again.
func (l *Live) UsageTotals() (bytes, objects int64) {
	return l.cur.Load().UsageTotals()
}

// ScanUsage computes every owner's usage; see Store.ScanUsage.
func (l *Live) ScanUsage(ctx context.Context) error {
	return l.cur.Load().ScanUsage(ctx)
}

// BeginResumable starts or resumes a resumable upload; see
// Store.BeginResumable.
func (l *Live) BeginResumable(ctx context.Context, owner string, r service.Resume) (service.ResumableUpload, error) {
	return l.cur.Load().BeginResumable(ctx, owner, r)
}

// QueryResumable returns a resumable upload's committed size; see
// Store.QueryResumable.
func (l *Live) QueryResumable(ctx context.Context, owner, id string, ttl time.Duration) (int64, error) {
	return l.cur.Load().QueryResumable(ctx, owner, id, ttl)
}

// CleanTemporaries removes stale temporary files; see
// Store.CleanTemporaries.
func (l *Live) CleanTemporaries(olderThan time.Duration) (int, error) {
	return l.cur.Load().CleanTemporaries(olderThan)
}

// CleanExpiredUploads removes expired resumable uploads; see
// Store.CleanExpiredUploads.
func (l *Live) CleanExpiredUploads(olderThan time.Duration) (int, error) {
	return l.cur.Load().CleanExpiredUploads(olderThan)
}
