package diskstore

import (
	"context"
	"fmt"
	"log/slog"
	"path"
)

// Delete removes owner's committed file name, then every folder above it
// that became empty, up to but excluding owner's folder, and gives its
// size back to owner's usage. A missing name, or one that is a folder,
// gives a service.ErrNotFound error.
func (s *Store) Delete(ctx context.Context, owner, name string) (err error) {
	defer s.unavailable(&err)
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := objectPath(owner, name)
	if err != nil {
		return err
	}
	key, err := ownerFolderName(owner)
	if err != nil {
		return err
	}
	ou, err := s.lockUsage(ctx, key)
	if err != nil {
		return fmt.Errorf("diskstore: delete %q: %w", name, err)
	}
	err = s.remove(ou, name, p)
	ou.mu.Unlock()
	if err != nil {
		return err
	}
	base, _ := ownerPath(owner)
	d := path.Dir(p)
	for ; d != base; d = path.Dir(d) {
		fi, err := s.root.Lstat(d)
		if err != nil || !fi.IsDir() || s.root.Remove(d) != nil {
			break // not empty (or not ours to remove): keep it and above
		}
	}
	if err := s.syncDir(d); err != nil {
		s.opts.logger.WarnContext(ctx, "folder sync failed after delete",
			slog.String("object", name), slog.Any("error", err))
	}
	return nil
}

// remove removes the committed file name at the root-relative path p and
// takes it off the usage ou, whose lock the caller holds.
func (s *Store) remove(ou *ownerUsage, name, p string) error {
	fi, err := s.root.Lstat(p)
	if isMissing(err) || (err == nil && !fi.Mode().IsRegular()) {
		return notFound("delete", name)
	}
	if err != nil {
		return fmt.Errorf("diskstore: delete %q: %w", name, err)
	}
	if err := s.root.Remove(p); err != nil {
		if isMissing(err) {
			return notFound("delete", name)
		}
		return fmt.Errorf("diskstore: delete %q: %w", name, err)
	}
	s.addUsed(ou, amount{-fi.Size(), -1})
	return nil
}
