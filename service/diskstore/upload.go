package diskstore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"os"
	"path"
	"sync"
	"syscall"

	"github.com/greeter/greeter/service"
)

// errClosed is returned by an upload used after Commit or Abort.
var errClosed = errors.New("diskstore: upload already committed or aborted")

// placeAttempts bounds how often Commit recreates the target folder when a
// concurrent Delete removes it (as empty) between MkdirAll and Rename.
const placeAttempts = 4

// Create starts an upload of name for owner. It fails early with a
// service.ErrConflict error if name needs a folder where a file is, or names
// a folder; Commit checks again.
func (s *Store) Create(ctx context.Context, owner, name string) (service.Upload, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	final, err := objectPath(owner, name)
	if err != nil {
		return nil, err
	}
	if _, err := s.existingAncestor("create", name, path.Dir(final)); err != nil {
		return nil, err
	}
	if fi, err := s.root.Lstat(final); err == nil && fi.IsDir() {
		return nil, conflict("create", name, errors.New("it is a folder"))
	}
	f, tmp, err := s.createTemp()
	if err != nil {
		return nil, classify("create", name, err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		s.root.Remove(tmp)
		return nil, classify("create", name, err)
	}
	u := &upload{s: s, name: name, final: final, tmp: tmp, f: f, hash: sha256.New()}
	u.wb.init(rc, s.opts.writebackInterval)
	return u, nil
}

// createTemp creates a new empty temporary file with O_EXCL.
func (s *Store) createTemp() (*os.File, string, error) {
	var b [16]byte
	for try := 0; ; try++ {
		rand.Read(b[:])
		name := tmpDir + "/" + hex.EncodeToString(b[:]) + tmpSuffix
		f, err := s.root.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, tmpMode)
		if errors.Is(err, fs.ErrExist) && try < 3 {
			continue // 128 random bits collided; try another name.
		}
		return f, name, err
	}
}

// upload is a service.Upload writing to a temporary file.
type upload struct {
	s     *Store
	name  string // object name, for errors
	final string // root-relative path of the committed file
	tmp   string // root-relative path of the temporary file; "" once renamed

	mu      sync.Mutex
	f       *os.File // nil once closed
	hash    hash.Hash
	wb      writeback
	written int64
	err     error // the error that ended the upload, returned again
	done    bool  // committed, aborted or failed
}

// Write appends p to the temporary file and feeds the same bytes to the
// SHA-256 hash. A write error ends the upload: the temporary file is
// removed at once.
func (u *upload) Write(p []byte) (int, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.done {
		return 0, u.closedErr()
	}
	n, err := u.s.opts.writeFile(u.f, p)
	u.hash.Write(p[:n])
	u.written += int64(n)
	if err != nil {
		u.fail(classify("write", u.name, err))
		return n, u.err
	}
	u.wb.wrote(u.written)
	return n, nil
}

// Written returns the number of bytes written so far.
func (u *upload) Written() int64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.written
}

// Commit checks want, syncs the temporary file, renames it over the final
// name and syncs the folder. On any error before the rename nothing becomes
// visible and the upload is aborted. If only the final folder sync fails,
// the new version is already visible but may not survive a crash; Commit
// then still returns the error, so no caller reports durability it lacks.
func (u *upload) Commit(ctx context.Context, want service.Expect) (service.FileInfo, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.done {
		return service.FileInfo{}, u.closedErr()
	}
	info, err := u.commit(ctx, want)
	if err != nil {
		u.fail(err)
		return service.FileInfo{}, err
	}
	u.done = true
	return info, nil
}

func (u *upload) commit(ctx context.Context, want service.Expect) (service.FileInfo, error) {
	if err := ctx.Err(); err != nil {
		return service.FileInfo{}, err
	}
	if want.HasSize && want.Size != u.written {
		return service.FileInfo{}, fmt.Errorf("diskstore: commit %q: %w: got %d bytes, declared %d",
			u.name, service.ErrSizeMismatch, u.written, want.Size)
	}
	info := service.FileInfo{Name: u.name, Size: u.written}
	u.hash.Sum(info.SHA256[:0])
	if want.HasSHA256 && want.SHA256 != info.SHA256 {
		return service.FileInfo{}, fmt.Errorf("diskstore: commit %q: %w: got %x, declared %x",
			u.name, service.ErrDigestMismatch, info.SHA256, want.SHA256)
	}
	if err := u.f.Chmod(fileMode); err != nil {
		return service.FileInfo{}, classify("commit", u.name, err)
	}
	if err := setDigest(u.wb.rc, info.SHA256); err != nil {
		return service.FileInfo{}, classify("commit", u.name, err)
	}
	if err := u.f.Sync(); err != nil {
		return service.FileInfo{}, classify("commit", u.name, err)
	}
	fi, err := u.f.Stat()
	if err != nil {
		return service.FileInfo{}, classify("commit", u.name, err)
	}
	info.Modified = fi.ModTime()
	err = u.f.Close()
	u.f = nil
	if err != nil {
		return service.FileInfo{}, classify("commit", u.name, err)
	}
	if err := ctx.Err(); err != nil {
		return service.FileInfo{}, err
	}
	return info, u.place()
}

// place renames the synced temporary file over the final name and syncs
// every folder whose entries changed.
func (u *upload) place() error {
	renamed, err := u.s.place(u.name, u.tmp, u.final)
	if renamed {
		u.tmp = ""
	}
	return err
}

// place renames the synced file at the root-relative path tmp over final,
// creating final's folders as needed, and syncs every folder whose entries
// changed. It reports whether the rename happened: after it, tmp is gone
// and only the folder syncs can still fail. name is the object name, for
// errors.
func (s *Store) place(name, tmp, final string) (renamed bool, err error) {
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
		err = s.root.Rename(tmp, final)
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
			s.opts.logger.Error("diskstore: folder sync failed after commit", "name", name, "err", err)
			return true, classify("commit: sync folder", name, err)
		}
		if d == existing {
			return true, nil
		}
	}
}

// Abort discards the upload. It is safe to call more than once and after
// Commit, which it leaves in place.
func (u *upload) Abort() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.done {
		return nil
	}
	u.done = true
	return u.discard()
}

// fail ends the upload with err and removes its temporary file.
func (u *upload) fail(err error) {
	u.err = err
	u.done = true
	if derr := u.discard(); derr != nil {
		u.s.opts.logger.Warn("diskstore: removing a failed upload's temporary file", "name", u.name, "err", derr)
	}
}

// discard closes and removes the temporary file, if any.
func (u *upload) discard() error {
	var errs []error
	if u.f != nil {
		if err := u.f.Close(); err != nil {
			errs = append(errs, err)
		}
		u.f = nil
	}
	if u.tmp != "" {
		if err := u.s.root.Remove(u.tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
		u.tmp = ""
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("diskstore: abort %q: %w", u.name, err)
	}
	return nil
}

func (u *upload) closedErr() error {
	if u.err != nil {
		return u.err
	}
	return errClosed
}

// writeback asks the kernel to start writing an upload's dirty pages to disk
// every interval bytes, so that they do not pile up until the sync at
// Commit. It is best effort: errors are left for that sync to report.
type writeback struct {
	rc       syscall.RawConn
	interval int64 // <= 0: off
	start    int64 // first byte not yet handed to the kernel
	end      int64 // end of the range being handed over
	run      func(fd uintptr)
}

func (w *writeback) init(rc syscall.RawConn, interval int64) {
	w.rc = rc
	w.interval = interval
	w.run = w.flush // bound once, so that flushing does not allocate
}

// wrote records that the file now holds total bytes.
func (w *writeback) wrote(total int64) {
	if w.interval <= 0 || total-w.start < w.interval {
		return
	}
	w.end = total
	if err := w.rc.Control(w.run); err != nil {
		w.interval = 0
	}
	w.start = total
}

func (w *writeback) flush(fd uintptr) {
	if !startWriteback(fd, w.start, w.end-w.start) {
		w.interval = 0
	}
}
