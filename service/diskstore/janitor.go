package diskstore

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"
)

// CleanTemporaries removes the temporary files of uploads in tmp/ that were
// last written more than olderThan ago and returns how many it removed. It
// keeps going after an error and returns all of them joined.
//
// An upload whose temporary file is removed fails at Commit and nothing of
// it becomes visible. With olderThan zero or less every temporary file is
// removed, which is right only while no upload runs: the server calls
// CleanTemporaries(0) at start-up, before it serves, because every
// temporary file it finds then belongs to a process that is gone. Open
// never calls it.
func (s *Store) CleanTemporaries(olderThan time.Duration) (removed int, err error) {
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
		if olderThan > 0 {
			fi, err := e.Info()
			if err != nil || fi.ModTime().After(cutoff) {
				continue // gone meanwhile, or still fresh
			}
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
		s.opts.logger.Info("diskstore: removed stale temporary files", "count", removed, "older_than", olderThan)
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("diskstore: clean temporaries: %w", err)
	}
	return removed, nil
}
