package diskstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/storekit"
)

// resumable is a service.ResumableUpload writing to a part file. The
// stream that began it holds its lock until it is released.
type resumable struct {
	s *Store
	// logCtx is the context of the request that began the upload, without
	// its cancellation, so that log lines from Write carry its trace ids.
	logCtx context.Context
	key    string // root-relative path without suffix; the lock's name
	id     string
	final  string // root-relative path of the committed file
	res    *reservation

	mu sync.Mutex
	hashedFile
	st uploadState // as last saved
	// broken is set when a write or save failed: the part file may hold
	// bytes the saved state does not count, so nothing is saved any more
	// and the saved state stands.
	broken bool
	err    error // why the upload broke or ended, returned again
	done   bool  // released: committed, aborted, suspended or failed
}

// Write appends p to the part file and feeds the same bytes to the hash.
// Every checkpoint interval it saves the progress. A failed write or save
// breaks the upload: the state saved last stands.
func (r *resumable) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return 0, closedErr(r.err)
	}
	if r.broken {
		return 0, r.err
	}
	n, err := r.write(p)
	if err != nil {
		r.breakWith(classify("write", r.st.Name, err))
		r.dropUncommitted()
		return n, r.err
	}
	if iv := r.s.opts.checkpointInterval; iv > 0 && r.written-r.st.Committed >= iv {
		if err := r.checkpoint(); err != nil {
			r.breakWith(err)
			return n, r.err
		}
	}
	return n, nil
}

// dropUncommitted gives back the space of bytes past the committed size
// after a failed write: on a full disk they would otherwise keep it full
// until the upload expires. A resume truncates to the committed size
// anyway, so nothing that counts is lost.
func (r *resumable) dropUncommitted() {
	if err := r.f.Truncate(r.st.Committed); err != nil {
		r.s.opts.logger.WarnContext(r.logCtx, "releasing the uncommitted bytes of a failed upload failed",
			slog.String("object", r.st.Name), slog.Any("error", err))
	}
}

// Written returns the size of the file so far, committed bytes included.
func (r *resumable) Written() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.written
}

// checkpoint syncs the part file and then saves a state counting every
// byte written.
func (r *resumable) checkpoint() error {
	if err := r.f.Sync(); err != nil {
		return classify("save upload", r.st.Name, err)
	}
	state, err := marshalHash(r.hash)
	if err != nil {
		return fmt.Errorf("diskstore: save upload %q: %w", r.id, err)
	}
	next := r.st
	next.Committed = r.written
	next.Hash = state
	next.Updated = r.s.opts.now()
	if err := r.s.saveState(r.key, &next); err != nil {
		return classify("save upload", r.st.Name, err)
	}
	r.st = next
	return nil
}

func (r *resumable) breakWith(err error) {
	r.broken = true
	r.err = err
}

// Suspend saves the progress and releases the upload. After a failed write
// or save it only releases the upload: the state saved last stands.
func (r *resumable) Suspend() (err error) {
	defer r.s.unavailable(&err)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return nil
	}
	return r.suspend()
}

func (r *resumable) suspend() error {
	var err error
	if !r.broken {
		err = r.checkpoint()
	}
	if cerr := r.release(); err == nil {
		err = cerr
	}
	return err
}

// release closes the part file and the lock, keeping every file.
func (r *resumable) release() error {
	r.done = true
	err := r.close()
	r.s.held.Unlock(r.key)
	if err != nil {
		return classify("release upload", r.st.Name, err)
	}
	return nil
}

// Abort discards the upload: its bytes and its state.
func (r *resumable) Abort() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return nil
	}
	return r.abort()
}

func (r *resumable) abort() error {
	r.done = true
	err := errors.Join(r.close(), r.s.removeUpload(r.key))
	r.res.release()
	r.s.held.Unlock(r.key)
	if err != nil {
		return fmt.Errorf("diskstore: abort upload %q: %w", r.id, err)
	}
	return nil
}

// Commit verifies the whole file against the size and SHA-256 the upload
// was started with (or, if it was begun without a SHA-256, want's: the
// hash state covers every byte, those of earlier streams included) and
// against want, then commits it as every upload is
// (mode, digest attribute, sync, rename over the final name, folder syncs)
// and deletes the upload's state. A size or digest mismatch, a failed
// precondition (want.CreateOnly, want.IfMatch) or an exceeded quota
// discards the upload. Too few bytes or a ctx canceled before Commit
// suspend it; any other failure before the rename, a ctx canceled
// meanwhile included, releases it without saving anything new. Either way
// it can be resumed.
func (r *resumable) Commit(ctx context.Context, want service.Expect) (_ service.FileInfo, err error) {
	defer r.s.unavailable(&err)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return service.FileInfo{}, closedErr(r.err)
	}
	if r.broken {
		r.release()
		return service.FileInfo{}, r.err
	}
	if err := ctx.Err(); err != nil {
		r.suspend()
		return service.FileInfo{}, err
	}
	name, size := r.st.Name, r.st.Size
	if r.written < size {
		err := storekit.SizeMismatch("diskstore", name, r.written, size)
		if serr := r.suspend(); serr != nil {
			return service.FileInfo{}, serr
		}
		return service.FileInfo{}, err
	}
	info := service.FileInfo{Name: name, Size: r.written, SHA256: r.sum()}
	declared := r.st.declared()
	if !declared.HasSHA256 {
		// Begun without a sha256: the whole file must hash to want's.
		if !want.HasSHA256 {
			if serr := r.suspend(); serr != nil {
				return service.FileInfo{}, serr
			}
			return service.FileInfo{}, fmt.Errorf("diskstore: commit %q: %w", name, service.ErrDigestRequired)
		}
		declared.SHA256, declared.HasSHA256 = want.SHA256, true
	}
	if err := storekit.VerifyResumable("diskstore", name, info.Size, info.SHA256, declared, want); err != nil {
		r.abort()
		return service.FileInfo{}, err
	}
	renamed, err := r.s.commitFile(ctx, &r.hashedFile, r.key+partSuffix, r.final, &info, guard{want: want, res: r.res})
	if !renamed {
		if errors.Is(err, service.ErrExists) || errors.Is(err, service.ErrNotMatched) || errors.Is(err, service.ErrQuotaExceeded) {
			r.abort() // resuming cannot change the answer
			return service.FileInfo{}, err
		}
		r.breakWith(err)
		r.release()
		return service.FileInfo{}, err
	}
	// The bytes are published; the upload is over whatever happens next.
	if rerr := r.s.removeUpload(r.key); rerr != nil {
		// A state whose part file is gone is unusable: nobody can resume
		// it, and the janitor removes it.
		r.s.opts.logger.WarnContext(ctx, "removing a completed upload's state failed",
			slog.String("upload_id", r.id), slog.String("object", name), slog.Any("error", rerr))
	}
	r.release()
	if err != nil {
		return service.FileInfo{}, err
	}
	return info, nil
}
