package diskstore

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"strings"
	"time"

	"github.com/greeter/greeter/service"
)

// partSuffix ends the name of the file that holds a resumable upload's
// bytes: uploads/<owner>/<id>.part.
const partSuffix = ".part"

// uploadOwnerPath returns the root-relative folder of owner's incomplete
// uploads.
func uploadOwnerPath(owner string) (string, error) {
	return ownerFolder(uploadsDir, owner)
}

// uploadKey returns the root-relative path of upload id of owner without a
// suffix; it also names the upload's lock.
func uploadKey(owner, id string) (string, error) {
	dir, err := uploadOwnerPath(owner)
	if err != nil {
		return "", err
	}
	if err := service.ValidateUploadID(id); err != nil {
		return "", err
	}
	return dir + "/" + id, nil
}

// BeginResumable starts owner's resumable upload r.ID, or resumes it from
// its committed size. See service.ResumableStore for the errors. An
// expired or unusable earlier state is discarded and the upload starts
// anew.
func (s *Store) BeginResumable(ctx context.Context, owner string, r service.Resume) (_ service.ResumableUpload, err error) {
	defer s.unavailable(&err)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	final, err := objectPath(owner, r.Name)
	if err != nil {
		return nil, err
	}
	key, err := uploadKey(owner, r.ID)
	if err != nil {
		return nil, err
	}
	if !r.Want.HasSize || r.Want.Size < 0 {
		return nil, fmt.Errorf("diskstore: begin upload %q: a resumable upload must declare its size", r.ID)
	}
	if err := s.checkTarget("begin upload", r.Name, final); err != nil {
		return nil, err
	}
	if !s.held.TryLock(key) {
		return nil, &service.UploadError{ID: r.ID, Err: service.ErrUploadBusy}
	}
	up, err := s.begin(ctx, owner, key, final, r)
	if err != nil {
		s.held.Unlock(key)
		return nil, err
	}
	return up, nil
}

// begin resumes or creates owner's upload at key, whose lock the caller
// holds.
func (s *Store) begin(ctx context.Context, owner, key, final string, r service.Resume) (service.ResumableUpload, error) {
	st, err := s.loadState(key)
	if errors.Is(err, errBadState) {
		if st, info, done := s.completedAs(ctx, owner, key); done {
			return s.resumeCompleted(ctx, key, r, st, info)
		}
	}
	switch {
	case err == nil && st.expired(s.opts.now(), r.TTL):
		s.opts.logger.InfoContext(ctx, "expired upload replaced by a new one",
			slog.String("upload_id", r.ID), slog.String("object", r.Name), slog.Time("updated", st.Updated))
		st = nil
	case errors.Is(err, errBadState):
		s.opts.logger.WarnContext(ctx, "unusable upload state replaced by a new upload",
			slog.String("upload_id", r.ID), slog.String("object", r.Name), slog.Any("error", err))
		st = nil
	case isMissing(err):
		st = nil
	case err != nil:
		return nil, fmt.Errorf("diskstore: begin upload %q: %w", r.ID, err)
	}
	if st == nil {
		if r.Offset != 0 {
			return nil, &service.UploadError{ID: r.ID, Committed: 0, Err: service.ErrOffsetMismatch}
		}
		return s.create(ctx, owner, key, final, r)
	}
	if st.Name != r.Name || st.Size != r.Want.Size || st.SHA256 != declaredSum(r.Want) {
		return nil, &service.UploadError{ID: r.ID, Err: service.ErrUploadMismatch}
	}
	if r.Offset != st.Committed {
		return nil, &service.UploadError{ID: r.ID, Committed: st.Committed, Err: service.ErrOffsetMismatch}
	}
	res, err := s.resumed(ctx, owner, key)
	if err != nil {
		return nil, fmt.Errorf("diskstore: resume upload %q: %w", r.ID, err)
	}
	return s.reopen(ctx, key, final, r.ID, st, res)
}

// create starts a new upload of owner at key, replacing whatever is left
// there, and sets aside its share of owner's quota.
func (s *Store) create(ctx context.Context, owner, key, final string, r service.Resume) (up *resumable, err error) {
	// Before createMu: the owner's first use walks its folders.
	res, err := s.reserve(ctx, owner, key, final, r.Want.Size)
	if err != nil {
		return nil, fmt.Errorf("diskstore: begin upload %q: %w", r.ID, err)
	}
	defer func() {
		if err != nil {
			res.release()
		}
	}()
	s.createMu.Lock()
	defer s.createMu.Unlock()
	dir := path.Dir(key)
	if max := s.opts.maxUploadsPerOwner; max > 0 {
		n, err := s.countUploads(dir, r.ID, r.TTL)
		if err != nil {
			return nil, fmt.Errorf("diskstore: begin upload %q: %w", r.ID, err)
		}
		if n >= max {
			return nil, &service.UploadError{ID: r.ID, Err: service.ErrTooManyUploads}
		}
	}
	if _, err := s.root.Lstat(dir); isMissing(err) {
		if err := s.root.MkdirAll(dir, dirMode); err != nil {
			return nil, classify("begin upload", r.ID, err)
		}
		if err := s.syncDir(uploadsDir); err != nil {
			return nil, classify("begin upload", r.ID, err)
		}
	}
	f, err := s.root.OpenFile(key+partSuffix, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, tmpMode)
	if err != nil {
		return nil, classify("begin upload", r.ID, err)
	}
	h := sha256.New()
	state, err := marshalHash(h)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("diskstore: begin upload %q: %w", r.ID, err)
	}
	var ident string
	if fi, err := f.Stat(); err == nil {
		ident = fileIdentity(fi)
	}
	now := s.opts.now()
	st := &uploadState{
		File:    ident,
		Version: stateVersion,
		Name:    r.Name,
		Size:    r.Want.Size,
		SHA256:  declaredSum(r.Want),
		Hash:    state,
		Created: now,
		Updated: now,
	}
	// The state's folder sync also makes the part file's entry durable.
	if err := s.saveState(key, st); err != nil {
		f.Close()
		s.removeUpload(key)
		return nil, classify("begin upload", r.ID, err)
	}
	return s.newResumable(ctx, key, final, r.ID, f, h, st, res)
}

// reopen resumes the upload at key, whose reservation is res, from its
// committed size.
func (s *Store) reopen(ctx context.Context, key, final, id string, st *uploadState, res *reservation) (*resumable, error) {
	h, err := st.restoreHash()
	if err != nil {
		return nil, fmt.Errorf("diskstore: resume upload %q: %w", id, err)
	}
	f, err := s.root.OpenFile(key+partSuffix, os.O_WRONLY, 0)
	if err != nil {
		return nil, classify("resume upload", id, err)
	}
	// Bytes past the committed size were written after the last save;
	// the client sends them again.
	if err := f.Truncate(st.Committed); err != nil {
		f.Close()
		return nil, classify("resume upload", id, err)
	}
	if _, err := f.Seek(st.Committed, io.SeekStart); err != nil {
		f.Close()
		return nil, classify("resume upload", id, err)
	}
	return s.newResumable(ctx, key, final, id, f, h, st, res)
}

// newResumable returns the upload at key, whose reservation is res,
// writing to its part file f, whose first st.Committed bytes hash to h. It
// closes f on error.
func (s *Store) newResumable(ctx context.Context, key, final, id string, f *os.File, h hash.Hash, st *uploadState, res *reservation) (*resumable, error) {
	r := &resumable{s: s, logCtx: context.WithoutCancel(ctx), key: key, id: id, final: final, st: *st, res: res}
	if err := r.init(f, h, st.Committed, &s.opts); err != nil {
		f.Close()
		return nil, classify("begin upload", id, err)
	}
	return r, nil
}

// removeUpload removes every file of the upload at key and syncs its
// folder.
func (s *Store) removeUpload(key string) error {
	var errs []error
	for _, suffix := range []string{stateSuffix, partSuffix, stateTmpSuffix} {
		if err := s.root.Remove(key + suffix); err != nil && !isMissing(err) {
			errs = append(errs, err)
		}
	}
	if err := s.syncDir(path.Dir(key)); err != nil && !isMissing(err) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// countUploads counts the unexpired incomplete uploads in the owner folder
// dir other than except. A state that cannot be read counts.
func (s *Store) countUploads(dir, except string, ttl time.Duration) (int, error) {
	entries, err := fs.ReadDir(s.root.FS(), dir)
	if isMissing(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	now := s.opts.now()
	n := 0
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), stateSuffix)
		if !ok || id == except || !e.Type().IsRegular() {
			continue
		}
		st, err := s.loadState(dir + "/" + id)
		if err == nil && st.expired(now, ttl) {
			continue
		}
		n++
	}
	return n, nil
}

// QueryResumable returns the committed size of owner's incomplete upload
// id. An upload that is unknown, completed, unusable or, unless a stream
// holds it, expired per ttl gives an *service.UploadError wrapping
// service.ErrNotFound.
func (s *Store) QueryResumable(ctx context.Context, owner, id string, ttl time.Duration) (_ int64, err error) {
	defer s.unavailable(&err)
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	key, err := uploadKey(owner, id)
	if err != nil {
		return 0, err
	}
	st, err := s.loadState(key)
	if errors.Is(err, errBadState) {
		if st, _, done := s.completedAs(ctx, owner, key); done && !st.expired(s.opts.now(), ttl) {
			// The client resumes at the end; that stream's commit
			// answers it.
			return st.Size, nil
		}
	}
	switch {
	case isMissing(err) || errors.Is(err, errBadState):
		return 0, &service.UploadError{ID: id, Err: service.ErrNotFound}
	case err != nil:
		return 0, fmt.Errorf("diskstore: query upload %q: %w", id, err)
	case st.expired(s.opts.now(), ttl) && !s.held.IsLocked(key):
		return 0, &service.UploadError{ID: id, Err: service.ErrNotFound}
	}
	return st.Committed, nil
}
