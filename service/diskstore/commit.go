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

// verify checks an upload of name that wrote size bytes hashing to sum
// against every expectation in wants: first the sizes, then the digests.
func verify(name string, size int64, sum [32]byte, wants ...service.Expect) error {
	for _, want := range wants {
		if want.HasSize && want.Size != size {
			return sizeMismatch(name, size, want.Size)
		}
	}
	for _, want := range wants {
		if want.HasSHA256 && want.SHA256 != sum {
			return fmt.Errorf("diskstore: commit %q: %w: got %x, declared %x",
				name, service.ErrDigestMismatch, sum, want.SHA256)
		}
	}
	return nil
}

// sizeMismatch wraps service.ErrSizeMismatch for an upload of name that
// wrote got bytes where declared were expected.
func sizeMismatch(name string, got, declared int64) error {
	return fmt.Errorf("diskstore: commit %q: %w: got %d bytes, declared %d",
		name, service.ErrSizeMismatch, got, declared)
}

// commitFile is the commit tail every upload shares. It publishes the
// verified file w wrote, found at the root-relative path src, as final: it
// seals w (mode, digest attribute, sync, close), checks ctx one last time,
// renames src over final and syncs every folder whose entries changed.
// info must hold the name, size and SHA-256; commitFile sets
// info.Modified.
//
// renamed reports whether the rename happened. Before it, nothing is
// visible and src is still there. After it, src is gone and only a folder
// sync can still fail: the new version is visible but may not survive a
// crash, and the error says so.
func (s *Store) commitFile(ctx context.Context, w *hashedFile, src, final string, info *service.FileInfo) (renamed bool, err error) {
	modified, err := w.seal(info.SHA256)
	if err != nil {
		return false, classify("commit", info.Name, err)
	}
	info.Modified = modified
	if err := ctx.Err(); err != nil {
		return false, err
	}
	return s.place(ctx, info.Name, src, final)
}

// place renames the synced file at the root-relative path src over final,
// creating final's folders as needed, and syncs every folder whose entries
// changed. It reports whether the rename happened. name is the object
// name, for errors and logs.
func (s *Store) place(ctx context.Context, name, src, final string) (renamed bool, err error) {
	parent := path.Dir(final)
	var existing string
	for attempt := 1; ; attempt++ {
		var err error
		existing, err = s.existingAncestor("commit", name, parent)
		if err != nil {
			return false, err
		}
		if err := s.root.MkdirAll(parent, dirMode); err != nil {
			if isConflict(err) {
				return false, conflict("commit", name, err)
			}
			return false, classify("commit", name, err)
		}
		if s.opts.beforeRename != nil {
			s.opts.beforeRename()
		}
		err = s.root.Rename(src, final)
		if err == nil {
			break
		}
		if errors.Is(err, fs.ErrNotExist) && attempt < placeAttempts {
			continue // a concurrent Delete removed the empty parent folder.
		}
		if isConflict(err) {
			return false, conflict("commit", name, err)
		}
		return false, classify("commit", name, err)
	}
	// The rename added an entry to parent; MkdirAll may have added folders
	// up to existing. Sync them all, deepest first.
	for d := parent; ; d = path.Dir(d) {
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
