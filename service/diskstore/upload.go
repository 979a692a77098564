package diskstore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sync"

	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/storekit"
)

// errClosed is returned by an upload used after Commit or Abort.
var errClosed = errors.New("diskstore: upload already committed or aborted")

// Create starts an upload of name for owner. It fails early with a
// service.ErrConflict error if name needs a folder where a file is, or names
// a folder, and with a *service.QuotaError if one more file would exceed
// owner's objects quota; Commit checks both again.
func (s *Store) Create(ctx context.Context, owner, name string) (service.Upload, error) {
	return s.createPlain(ctx, owner, name, 0)
}

// CreateSized is Create for a file of size bytes, declared in advance: the
// upload's share of the bytes quota is set aside whole when it starts, so
// two uploads that do not fit together cannot both get most of the way and
// both fail (RELIABILITY.md R11).
func (s *Store) CreateSized(ctx context.Context, owner, name string, size int64) (service.Upload, error) {
	return s.createPlain(ctx, owner, name, max(0, size))
}

// createPlain starts an upload whose hold begins at size bytes.
func (s *Store) createPlain(ctx context.Context, owner, name string, size int64) (_ service.Upload, err error) {
	defer s.unavailable(&err)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	final, err := objectPath(owner, name)
	if err != nil {
		return nil, err
	}
	if err := s.checkTarget("create", name, final); err != nil {
		return nil, err
	}
	f, tmp, err := s.createTemp()
	if err != nil {
		return nil, classify("create", name, err)
	}
	res, err := s.reserve(ctx, owner, tmp, final, size)
	if err != nil {
		f.Close()
		s.root.Remove(tmp)
		return nil, fmt.Errorf("diskstore: create %q: %w", name, err)
	}
	u := &upload{s: s, logCtx: context.WithoutCancel(ctx), name: name, final: final, tmp: tmp, res: res}
	if err := u.init(f, sha256.New(), 0, &s.opts); err != nil {
		res.release()
		f.Close()
		s.root.Remove(tmp)
		return nil, classify("create", name, err)
	}
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
	s *Store
	// logCtx is the context of the request that created the upload,
	// without its cancellation, so that log lines from Write carry its
	// trace ids.
	logCtx context.Context
	name   string // object name, for errors
	final  string // root-relative path of the committed file
	tmp    string // root-relative path of the temporary file; "" once renamed
	res    *reservation

	mu sync.Mutex
	hashedFile
	err  error // the error that ended the upload, returned again
	done bool  // committed, aborted or failed
}

// Write appends p to the temporary file and feeds the same bytes to the
// SHA-256 hash. A write error, or bytes beyond the owner's bytes quota,
// end the upload: the temporary file is removed at once.
func (u *upload) Write(p []byte) (int, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.done {
		return 0, closedErr(u.err)
	}
	if err := u.res.grow(u.written + int64(len(p))); err != nil {
		u.fail(u.logCtx, fmt.Errorf("diskstore: write %q: %w", u.name, err))
		return 0, u.err
	}
	n, err := u.write(p)
	if err != nil {
		u.fail(u.logCtx, classify("write", u.name, err))
		return n, u.err
	}
	return n, nil
}

// Written returns the number of bytes written so far.
func (u *upload) Written() int64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.written
}

// Commit checks the bytes against want and commits them as every upload
// is: the temporary file gets its mode and digest attribute, is synced,
// renamed over the final name, and the folders are synced. On any error
// before the rename nothing becomes visible and the upload is aborted. If
// only a folder sync after the rename fails, the new version is already
// visible but may not survive a crash; Commit then still returns the
// error, so no caller reports durability it lacks.
func (u *upload) Commit(ctx context.Context, want service.Expect) (_ service.FileInfo, err error) {
	defer u.s.unavailable(&err)
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.done {
		return service.FileInfo{}, closedErr(u.err)
	}
	info, err := u.commit(ctx, want)
	if err != nil {
		u.fail(ctx, err)
		return service.FileInfo{}, err
	}
	u.done = true
	return info, nil
}

func (u *upload) commit(ctx context.Context, want service.Expect) (service.FileInfo, error) {
	if err := ctx.Err(); err != nil {
		return service.FileInfo{}, err
	}
	info := service.FileInfo{Name: u.name, Size: u.written, SHA256: u.sum()}
	if err := storekit.Verify("diskstore", u.name, info.Size, info.SHA256, want); err != nil {
		return service.FileInfo{}, err
	}
	renamed, err := u.s.commitFile(ctx, &u.hashedFile, u.tmp, u.final, &info, guard{want: want, res: u.res})
	if renamed {
		u.tmp = ""
	}
	return info, err
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
func (u *upload) fail(ctx context.Context, err error) {
	u.err = err
	u.done = true
	if derr := u.discard(); derr != nil {
		u.s.opts.logger.WarnContext(ctx, "removing a failed upload's temporary file failed",
			slog.String("object", u.name), slog.Any("error", derr))
	}
}

// discard closes and removes the temporary file, if any, and gives back
// what the upload set aside.
func (u *upload) discard() error {
	u.res.release()
	var errs []error
	if err := u.close(); err != nil {
		errs = append(errs, err)
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

// closedErr returns the error an upload that ended with err (nil when it
// was committed or aborted) gives when it is used again.
func closedErr(err error) error {
	if err != nil {
		return err
	}
	return errClosed
}
