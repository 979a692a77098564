package diskstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"

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
