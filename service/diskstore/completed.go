package diskstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/greeter/greeter/service"
)

// completedAs reports whether the upload at key, whose state file is
// unusable, completed: a commit renames the part file to the file and
// then removes the state, so a state whose part file is gone while owner's
// file is that part file (by its identity, which the state records) and
// holds the declared size and SHA-256 outlived its commit (the process
// died in between, and the answer was lost). It returns the state and the
// file's info, the answer the lost one would have been. An upload begun
// without a SHA-256 is never recognised, nor is one whose state predates
// identities.
func (s *Store) completedAs(ctx context.Context, owner, key string) (*uploadState, service.FileInfo, bool) {
	st, err := s.readState(key)
	if err != nil || st.SHA256 == "" || st.File == "" {
		return nil, service.FileInfo{}, false
	}
	if _, err := s.root.Lstat(key + partSuffix); !isMissing(err) {
		return nil, service.FileInfo{}, false
	}
	final, err := objectPath(owner, st.Name)
	if err != nil {
		return nil, service.FileInfo{}, false
	}
	if fi, err := s.root.Lstat(final); err != nil || fileIdentity(fi) != st.File {
		return nil, service.FileInfo{}, false
	}
	info, err := s.Stat(ctx, owner, st.Name)
	if err != nil || info.Size != st.Size || info.SHA256 != st.declared().SHA256 {
		return nil, service.FileInfo{}, false
	}
	return st, info, true
}

// resumeCompleted answers a stream that resumes an upload that completed
// but whose state outlived the commit (see completedAs): at the file's
// size it gets an upload that commits to info, anywhere else an
// ErrOffsetMismatch that sends it there. The caller holds the upload's
// lock, which the returned upload releases.
func (s *Store) resumeCompleted(ctx context.Context, key string, r service.Resume, st *uploadState, info service.FileInfo) (*finished, error) {
	if st.Name != r.Name || st.Size != r.Want.Size || st.SHA256 != declaredSum(r.Want) {
		return nil, &service.UploadError{ID: r.ID, Err: service.ErrUploadMismatch}
	}
	s.opts.logger.InfoContext(ctx, "resumed upload had completed; its commit's answer was lost",
		slog.String("upload_id", r.ID), slog.String("object", r.Name))
	if r.Offset != info.Size {
		return nil, &service.UploadError{ID: r.ID, Committed: info.Size, Err: service.ErrOffsetMismatch}
	}
	return &finished{s: s, key: key, id: r.ID, info: info, declared: st.declared()}, nil
}

// finished is the service.ResumableUpload of a stream that resumed a
// completed upload at its end: it takes no bytes, and its Commit gives the
// answer the lost one would have been, after checking want against the
// file, and forgets the upload. The file's preconditions are not checked
// again: they held when it was published.
type finished struct {
	s        *Store
	key, id  string
	info     service.FileInfo
	declared service.Expect

	mu   sync.Mutex
	done bool
}

// Write refuses any byte: the file has all of them.
func (f *finished) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return 0, fmt.Errorf("diskstore: upload %q: %w: more than the declared %d bytes", f.id, service.ErrSizeMismatch, f.info.Size)
}

// Written returns the file's size.
func (f *finished) Written() int64 { return f.info.Size }

// Commit checks want against the file, forgets the upload and returns the
// file's info.
func (f *finished) Commit(ctx context.Context, want service.Expect) (service.FileInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done {
		return service.FileInfo{}, errClosed
	}
	defer f.release()
	if err := verifyResumable(f.info.Name, f.info.Size, f.info.SHA256, f.declared, want); err != nil {
		return service.FileInfo{}, err
	}
	f.forget(ctx)
	return f.info, nil
}

// Abort forgets the upload; the file stays, as it was committed.
func (f *finished) Abort() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.done {
		f.forget(context.Background())
		f.release()
	}
	return nil
}

// Suspend releases the upload, whose state stays.
func (f *finished) Suspend() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.done {
		f.release()
	}
	return nil
}

func (f *finished) forget(ctx context.Context) {
	if err := f.s.removeUpload(f.key); err != nil && !errors.Is(err, errClosed) {
		f.s.opts.logger.WarnContext(ctx, "removing a completed upload's state failed",
			slog.String("upload_id", f.id), slog.String("object", f.info.Name), slog.Any("error", err))
	}
}

func (f *finished) release() {
	f.done = true
	f.s.held.Unlock(f.key)
}
