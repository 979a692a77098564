package diskstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"

	"github.com/greeter/greeter/service"
)

// placeAttempts bounds how often a commit recreates the target folder when
// a concurrent Delete removes it (as empty) between MkdirAll and Rename.
const placeAttempts = 4

// guard is what a commit checks atomically with its rename: the
// preconditions the uploader declared and, against the owner's quota, the
// upload's share of the owner's usage.
type guard struct {
	want service.Expect
	res  *reservation
}

// commitFile is the commit tail every upload shares. It publishes the
// verified file w wrote, found at the root-relative path src, as final: it
// seals w (mode, digest attribute, sync, close), checks ctx one last time,
// then, under the owner's usage lock, checks g and renames src over final,
// and syncs every folder whose entries changed. info must hold the name,
// size and SHA-256; commitFile sets info.Modified.
//
// renamed reports whether the rename happened. Before it, nothing is
// visible and src is still there. After it, src is gone and only a folder
// sync can still fail: the new version is visible but may not survive a
// crash, and the error says so.
func (s *Store) commitFile(ctx context.Context, w *hashedFile, src, final string, info *service.FileInfo, g guard) (renamed bool, err error) {
	modified, err := w.seal(info.SHA256)
	if err != nil {
		return false, classify("commit", info.Name, err)
	}
	info.Modified = modified
	if err := ctx.Err(); err != nil {
		return false, err
	}
	return s.place(ctx, info, src, final, g)
}

// place publishes the synced file at the root-relative path src as final
// if g allows it, and syncs every folder whose entries changed. It reports
// whether the rename happened.
func (s *Store) place(ctx context.Context, info *service.FileInfo, src, final string, g guard) (renamed bool, err error) {
	name := info.Name
	var seen *digested
	if g.want.HasIfMatch {
		// Hashing a file without a digest attribute takes a while: do it
		// before taking the lock, and only again if the file changed.
		if seen, err = s.digestAt(ctx, final); err != nil {
			return false, fmt.Errorf("diskstore: commit %q: reading the file it replaces: %w", name, err)
		}
	}
	ou := g.res.ou
	ou.mu.Lock()
	existing, err := s.publish(ctx, info, src, final, g, seen)
	ou.mu.Unlock()
	if err != nil {
		return false, err
	}
	// The rename added an entry to final's folder; MkdirAll may have added
	// folders up to existing. Sync them all, deepest first.
	for d := path.Dir(final); ; d = path.Dir(d) {
		if err := s.syncDir(d); err != nil {
			s.opts.logger.ErrorContext(ctx, "folder sync failed after commit",
				slog.String("object", name), slog.Any("error", err))
			return true, classify("commit: sync folder", name, err)
		}
		if d == existing {
			return true, nil
		}
	}
}

// publish checks g against the file now at final and renames src over it,
// then moves the upload's share of the owner's usage from its hold to the
// committed files. The caller holds the owner's usage lock, which every
// commit and delete of the owner takes, so nothing changes final between
// the checks and the rename. It returns the deepest folder of final that
// existed before.
func (s *Store) publish(ctx context.Context, info *service.FileInfo, src, final string, g guard, seen *digested) (existing string, err error) {
	name := info.Name
	var replaced amount
	fi, err := s.root.Lstat(final)
	switch {
	case err == nil && fi.Mode().IsRegular():
		replaced = amount{fi.Size(), 1}
	case err != nil && !isMissing(err):
		return "", classify("commit", name, err)
	default:
		fi = nil // nothing there, or a folder the rename refuses to replace
	}
	if err := s.checkPreconditions(ctx, name, final, g.want, fi, seen); err != nil {
		return "", err
	}
	share := amount{info.Size, 1}.minus(replaced)
	holding := g.res.h != nil && g.res.ou.holds[g.res.key] == g.res.h
	var held amount
	if holding {
		held = g.res.h.amount
	}
	if err := g.res.ou.fits(g.res.quota, held, share); err != nil {
		return "", fmt.Errorf("diskstore: commit %q: %w", name, err)
	}
	if existing, err = s.rename(name, src, final); err != nil {
		return "", err
	}
	if holding {
		s.dropHold(g.res.ou, g.res.key)
	}
	s.addUsed(g.res.ou, share)
	return existing, nil
}

// rename renames src over final, creating final's folders as needed, and
// returns the deepest of them that existed before.
func (s *Store) rename(name, src, final string) (existing string, err error) {
	parent := path.Dir(final)
	for attempt := 1; ; attempt++ {
		existing, err = s.existingAncestor("commit", name, parent)
		if err != nil {
			return "", err
		}
		if err := s.root.MkdirAll(parent, dirMode); err != nil {
			if isConflict(err) {
				return "", conflict("commit", name, err)
			}
			return "", classify("commit", name, err)
		}
		if s.opts.beforeRename != nil {
			s.opts.beforeRename()
		}
		err = s.root.Rename(src, final)
		if err == nil {
			return existing, nil
		}
		if errors.Is(err, fs.ErrNotExist) && attempt < placeAttempts {
			continue // a concurrent Delete removed the empty parent folder.
		}
		if isConflict(err) {
			return "", conflict("commit", name, err)
		}
		return "", classify("commit", name, err)
	}
}
