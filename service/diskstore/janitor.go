package diskstore

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"time"

	"github.com/greeter/greeter/service"
)

// MinTemporaryAge is the least time since its last write for a temporary
// file to be removed by CleanTemporaries. An upload in flight writes at
// least once per idle timeout or is ended (service.DefaultIdleTimeout is
// 30s), so a temporary file this old belongs to no running upload. It is a
// second line of defence behind the data directory's lock: a process that
// shares the directory without honouring the lock (another host over a
// network filesystem without flock, an old version) keeps its uploads.
const MinTemporaryAge = time.Hour

// CleanTemporaries removes the temporary files of uploads in tmp/ that were
// last written more than olderThan ago, but never less than
// MinTemporaryAge ago, and returns how many it removed. It keeps going
// after an error and returns all of them joined.
//
// An upload whose temporary file is removed fails at Commit and nothing of
// it becomes visible. The server calls CleanTemporaries(0) at start-up, to
// remove what a process that died left behind; a temporary file younger
// than MinTemporaryAge stays until a later call. Open never calls it.
func (s *Store) CleanTemporaries(olderThan time.Duration) (removed int, err error) {
	olderThan = max(olderThan, MinTemporaryAge)
	entries, err := fs.ReadDir(s.root.FS(), tmpDir)
	if err != nil {
		return 0, fmt.Errorf("diskstore: clean temporaries: %w", err)
	}
	cutoff := time.Now().Add(-olderThan)
	var errs []error
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), tmpSuffix) {
			continue
		}
		fi, err := e.Info()
		if err != nil || fi.ModTime().After(cutoff) {
			continue // gone meanwhile, or still fresh
		}
		if err := s.root.Remove(tmpDir + "/" + e.Name()); err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
			continue
		}
		removed++
	}
	if removed > 0 {
		if err := s.syncDir(tmpDir); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("diskstore: clean temporaries: %w", err)
	}
	return removed, nil
}

// CleanExpiredUploads removes the incomplete resumable uploads that were
// last written more than olderThan ago, and leftovers of uploads that died
// between creating their files, and returns how many uploads it removed. It
// skips uploads a stream holds and keeps going after an error, returning
// all of them joined. olderThan must be positive: incomplete uploads are
// meant to survive restarts, so there is no "remove everything".
func (s *Store) CleanExpiredUploads(olderThan time.Duration) (removed int, err error) {
	if olderThan <= 0 {
		return 0, fmt.Errorf("diskstore: clean expired uploads: olderThan must be positive, got %v", olderThan)
	}
	owners, err := fs.ReadDir(s.root.FS(), uploadsDir)
	if err != nil {
		return 0, fmt.Errorf("diskstore: clean expired uploads: %w", err)
	}
	now := s.opts.now()
	cutoff := now.Add(-olderThan)
	var errs []error
	for _, o := range owners {
		if !o.IsDir() {
			continue
		}
		dir := uploadsDir + "/" + o.Name()
		n, err := s.cleanOwner(dir, now, cutoff, olderThan)
		removed += n
		if err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("diskstore: clean expired uploads: %w", err)
	}
	return removed, nil
}

// cleanOwner removes the expired uploads in the owner folder dir, then the
// folder if it is empty.
func (s *Store) cleanOwner(dir string, now, cutoff time.Time, ttl time.Duration) (removed int, err error) {
	entries, err := fs.ReadDir(s.root.FS(), dir)
	if err != nil {
		return 0, err
	}
	// Group the entries by upload ID.
	ids := make(map[string]fs.DirEntry)
	for _, e := range entries {
		name := e.Name()
		for _, suffix := range []string{stateTmpSuffix, stateSuffix, partSuffix} {
			if id, ok := strings.CutSuffix(name, suffix); ok {
				if e.Type().IsRegular() && service.ValidateUploadID(id) == nil {
					if _, seen := ids[id]; !seen || suffix == stateSuffix {
						ids[id] = e
					}
				}
				break
			}
		}
	}
	var errs []error
	for id, e := range ids {
		key := dir + "/" + id
		if !s.held.TryLock(key) {
			continue // a stream is writing it
		}
		if s.expiredLocked(key, e, now, cutoff, ttl) {
			if err := s.removeUpload(key); err != nil {
				errs = append(errs, err)
			} else {
				removed++
				s.releaseHold(path.Base(dir), key) // R11: expiry gives the space back
			}
		}
		s.held.Unlock(key)
	}
	s.createMu.Lock()
	// Remove fails unless the folder is empty; a new upload cannot appear
	// in it meanwhile because creating one takes createMu.
	if err := s.root.Remove(dir); err == nil {
		if err := s.syncDir(uploadsDir); err != nil {
			errs = append(errs, err)
		}
	}
	s.createMu.Unlock()
	return removed, errors.Join(errs...)
}

// expiredLocked reports whether the upload at key, represented by the
// directory entry e (its state file if it has one), should be removed. The
// caller holds the upload's lock.
func (s *Store) expiredLocked(key string, e fs.DirEntry, now, cutoff time.Time, ttl time.Duration) bool {
	if strings.HasSuffix(e.Name(), stateSuffix) {
		st, err := s.loadState(key)
		if err == nil {
			return st.expired(now, ttl)
		}
	}
	// No usable state: a leftover. Judge it by its file's age.
	fi, err := e.Info()
	return err == nil && fi.ModTime().Before(cutoff)
}
