package diskstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/greeter/greeter/service"
)

// probeName is the file Check creates, syncs and removes in tmp/. It has a
// fixed name, so a probe left behind by a crash is reused instead of
// piling up, and no .tmp suffix, so it is never taken for an upload.
const probeName = tmpDir + "/health.probe"

// ErrRootGone means that the data directory a Store opened is no longer at
// the path it was opened on: it was removed (and maybe created again),
// replaced, or its file handle went stale. Such a Store cannot recover;
// Live opens a new one when a directory is back at the path.
var ErrRootGone = errors.New("data directory is gone from its path")

// Check reports whether the store can take uploads: the directory it
// opened is still the one at its path, and a file can be created, synced
// and removed in tmp/. A nil error means healthy. Every error wraps
// service.ErrUnavailable; one about the directory itself also wraps
// ErrRootGone.
//
// The probe writes no data, so a full disk is not unhealthy: reads still
// work, and uploads that do not fit fail with service.ErrNoSpace. A read-only
// or removed directory, EACCES, EIO or a stale handle is unhealthy. Running
// as root, file modes do not make a directory unwritable; a read-only mount
// does.
func (s *Store) Check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.sameRoot(); err != nil {
		return err
	}
	f, err := s.root.OpenFile(probeName, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, tmpMode)
	if err != nil {
		return s.unhealthy("create probe", err)
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if rerr := s.root.Remove(probeName); err == nil {
		err = rerr
	}
	if err != nil {
		return s.unhealthy("probe", err)
	}
	return nil
}

// sameRoot checks that the directory at the root's path is the one the
// root has open.
func (s *Store) sameRoot() error {
	atPath, err := os.Stat(s.root.Name())
	if err != nil {
		return s.unhealthy("stat data directory", err)
	}
	opened, err := s.root.Stat(".")
	if err != nil {
		return s.unhealthy("stat open data directory", err)
	}
	if !os.SameFile(atPath, opened) {
		return fmt.Errorf("diskstore: %s: another directory is at the path: %w: %w", s.root.Name(), service.ErrUnavailable, ErrRootGone)
	}
	return nil
}

// unhealthy wraps err from op in service.ErrUnavailable, and in ErrRootGone
// when it says that the data directory is missing or stale.
func (s *Store) unhealthy(op string, err error) error {
	if isRootGone(err) {
		return fmt.Errorf("diskstore: %s: %s: %w: %w: %w", s.root.Name(), op, service.ErrUnavailable, ErrRootGone, err)
	}
	return fmt.Errorf("diskstore: %s: %s: %w: %w", s.root.Name(), op, service.ErrUnavailable, err)
}

// isRootGone reports whether err means that the data directory, or the
// tmp/ folder in it, no longer exists or its handle is stale (NFS).
func isRootGone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.ESTALE)
}

// reopenRoot opens a new Store on the path of s with the same options. Unlike
// Open it does not create the data directory itself: a directory missing
// from its path (an unmounted volume, say) must be put back by whoever
// removed it, not papered over with an empty one on the parent filesystem.
func (s *Store) reopenRoot() (*Store, error) {
	root, err := os.OpenRoot(s.root.Name())
	if err != nil {
		return nil, fmt.Errorf("diskstore: reopen: %w", err)
	}
	for _, d := range []string{objectsDir, tmpDir, uploadsDir} {
		if err := root.MkdirAll(d, dirMode); err != nil {
			root.Close()
			return nil, fmt.Errorf("diskstore: reopen: %w", err)
		}
	}
	return &Store{root: root, opts: s.opts}, nil
}

var _ service.ResumableStore = (*Live)(nil)

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
// one and returns nil. Otherwise it returns the old Store's error.
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
	if rerr != nil {
		return err
	}
	if cerr := next.Check(ctx); cerr != nil {
		next.Close()
		return cerr
	}
	l.cur.Store(next)
	old.opts.logger.Warn("diskstore: reopened the data directory", "dir", old.root.Name(), "reason", err)
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
