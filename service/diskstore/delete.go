package diskstore

import (
	"context"
	"fmt"
	"log/slog"
	"path"
)

// Delete removes owner's committed file name, then every folder above it
// that became empty, up to but excluding owner's folder. A missing name, or
// one that is a folder, gives a service.ErrNotFound error.
func (s *Store) Delete(ctx context.Context, owner, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := objectPath(owner, name)
	if err != nil {
		return err
	}
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
