package diskstore

import (
	"context"
	"errors"
	"log/slog"

	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/storekit"
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
func (s *Store) resumeCompleted(ctx context.Context, key string, r service.Resume, st *uploadState, info service.FileInfo) (*storekit.Finished, error) {
	if st.Name != r.Name || st.Size != r.Want.Size || st.SHA256 != declaredSum(r.Want) {
		return nil, &service.UploadError{ID: r.ID, Err: service.ErrUploadMismatch}
	}
	s.opts.logger.InfoContext(ctx, "resumed upload had completed; its commit's answer was lost",
		slog.String("upload_id", r.ID), slog.String("object", r.Name))
	if r.Offset != info.Size {
		return nil, &service.UploadError{ID: r.ID, Committed: info.Size, Err: service.ErrOffsetMismatch}
	}
	f := &storekit.Finished{Store: "diskstore", ID: r.ID, Info: info, Declared: st.declared(), Closed: errClosed,
		Release: func(context.Context) { s.held.Unlock(key) }}
	f.Forget = func(ctx context.Context) {
		if err := s.removeUpload(key); err != nil && !errors.Is(err, errClosed) {
			s.opts.logger.WarnContext(ctx, "removing a completed upload's state failed",
				slog.String("upload_id", r.ID), slog.String("object", info.Name), slog.Any("error", err))
		}
	}
	return f, nil
}
