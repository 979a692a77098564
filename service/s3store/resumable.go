package s3store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/greeter/greeter/coordination"
	"github.com/greeter/greeter/service"
)

// BeginResumable starts owner's resumable upload r.ID, or resumes it from
// its committed size, on any replica. See service.ResumableStore for the
// errors. An expired or unusable earlier state is discarded and the upload
// starts anew.
//
// The stream first takes the upload's lease from Options.Leases. With the
// default in-process leases, a stream of this process that holds the
// upload makes this call fail with ErrUploadBusy; shared leases
// (redislease) ask the stream holding it, on any replica, to let go and
// take over within their bound, and that stream ends with ErrUploadBusy.
// Either way, resuming then claims the upload by a conditional write of
// its state, so that a stream that still writes it without knowing (on a
// replica without the lease, or while Redis is down) fails with
// ErrUploadBusy at its next part.
func (s *Store) BeginResumable(ctx context.Context, owner string, r service.Resume) (service.ResumableUpload, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	final, err := s.objectKey(owner, r.Name)
	if err != nil {
		return nil, err
	}
	key, err := s.stateKey(owner, r.ID)
	if err != nil {
		return nil, err
	}
	if !r.Want.HasSize || r.Want.Size < 0 {
		return nil, fmt.Errorf("s3store: begin upload %q: a resumable upload must declare its size", r.ID)
	}
	if !r.Want.HasSHA256 {
		// The file's SHA-256 is user metadata, which only the start of a
		// multipart upload can set; CompleteMultipartUpload cannot.
		return nil, fmt.Errorf("s3store: begin upload %q: %w", r.ID, service.ErrDigestRequired)
	}
	writer := newToken()
	lease, err := s.leases.Acquire(ctx, key, writer)
	switch {
	case errors.Is(err, coordination.ErrLeaseHeld):
		return nil, busy(r.ID)
	case err != nil:
		return nil, err // ctx ended
	}
	if !s.held.hold(key, writer) {
		lease.Release()
		return nil, busy(r.ID) // the janitor is judging it
	}
	up, err := s.begin(ctx, key, final, owner, r, writer)
	if err != nil {
		s.held.drop(key, writer)
		lease.Release()
		return nil, err
	}
	up.watch(lease)
	return up, nil
}

// busy is the error of a writer that lost the upload to another.
func busy(id string) error {
	return &service.UploadError{ID: id, Err: service.ErrUploadBusy}
}

// begin resumes or creates the upload whose state is key for the stream
// writer, which holds its lease.
func (s *Store) begin(ctx context.Context, key, final, owner string, r service.Resume, writer string) (leased, error) {
	st, etag, err := s.loadState(ctx, key)
	switch {
	case err == nil && st.expired(s.opts.Now(), r.TTL):
		s.opts.Logger.InfoContext(ctx, "expired upload replaced by a new one",
			slog.String("upload_id", r.ID), slog.String("object", r.Name), slog.Time("updated", st.Updated))
		s.abortStale(ctx, final, st)
		st = nil
	case err == nil && !st.fits():
		s.opts.Logger.WarnContext(ctx, "upload with no part numbers left replaced by a new one",
			slog.String("upload_id", r.ID), slog.String("object", r.Name))
		s.abortStale(ctx, final, st)
		st = nil
	case errors.Is(err, errBadState):
		s.opts.Logger.WarnContext(ctx, "unusable upload state replaced by a new upload",
			slog.String("upload_id", r.ID), slog.String("object", r.Name), slog.Any("error", err))
	case errors.Is(err, errNoState):
	case err != nil:
		return nil, s.classify(ctx, "begin upload", r.ID, err)
	}
	if st != nil && (st.Name != r.Name || st.Size != r.Want.Size || st.sum() != r.Want.SHA256) {
		return nil, &service.UploadError{ID: r.ID, Err: service.ErrUploadMismatch}
	}
	if st != nil {
		gone, err := s.multipartGone(ctx, final, st.S3UploadID)
		if err != nil {
			return nil, s.classify(ctx, "begin upload", r.ID, err)
		}
		if gone {
			info, done, err := s.completedAs(ctx, final, st)
			if err != nil {
				return nil, s.classify(ctx, "begin upload", r.ID, err)
			}
			if done {
				seg, err := ownerSegment(owner)
				if err != nil {
					return nil, err
				}
				res := &reservation{s: s, owner: seg, key: key, final: final, name: r.Name, quota: s.quotaFor(owner)}
				return s.resumeCompleted(ctx, key, r.ID, st, info, r.Offset, res, writer)
			}
			s.opts.Logger.WarnContext(ctx, "upload whose multipart upload is gone from the store replaced by a new one",
				slog.String("upload_id", r.ID), slog.String("object", r.Name))
			if r.Offset != 0 {
				// The client starts again at 0, which replaces the state
				// (below); until then QueryUpload must not promise bytes.
				if err := s.removeKey(ctx, key); err != nil {
					return nil, s.classify(ctx, "begin upload", r.ID, err)
				}
			}
			st = nil
		}
	}
	if st == nil {
		if r.Offset != 0 {
			return nil, &service.UploadError{ID: r.ID, Committed: 0, Err: service.ErrOffsetMismatch}
		}
		return s.create(ctx, key, final, owner, r, etag, writer)
	}
	if r.Offset != st.Committed {
		return nil, &service.UploadError{ID: r.ID, Committed: st.Committed, Err: service.ErrOffsetMismatch}
	}
	seg, err := ownerSegment(owner)
	if err != nil {
		return nil, err
	}
	res := &reservation{s: s, owner: seg, key: key, final: final, name: r.Name, quota: s.quotaFor(owner)}
	return s.claim(ctx, key, final, r.ID, st, etag, res, writer)
}

// multipartGone reports whether the store no longer knows the multipart
// upload uploadID of final: a lifecycle rule or the server's own purge
// removed it, or another stream completed it. ListParts serves only as
// that probe; offsets come from the state alone.
func (s *Store) multipartGone(ctx context.Context, final, uploadID string) (bool, error) {
	_, err := s.c.ListObjectParts(ctx, s.opts.Bucket, final, uploadID, 0, 1)
	switch {
	case isCode(err, codeNoSuchUpload):
		return true, nil
	case err != nil:
		return false, err
	}
	return false, nil
}

// fits reports whether the part numbers left suffice for the rest of the
// file, one skipped number for a claim included.
func (st *uploadState) fits() bool {
	left := (st.Size - st.Committed + st.PartSize - 1) / st.PartSize
	return int64(st.NextPart)+1+left <= maxParts+1
}

// abortStale aborts the multipart upload of a state that is being
// replaced. A failure leaves an orphan that CleanExpiredUploads aborts.
func (s *Store) abortStale(ctx context.Context, final string, st *uploadState) {
	if err := s.abortMultipart(ctx, final, st.S3UploadID); err != nil {
		s.opts.Logger.WarnContext(ctx, "aborting a replaced upload failed; the janitor aborts it later",
			slog.String("object", st.Name), slog.Any("error", err))
	}
}

// create starts a new upload: it sets aside the upload's share of owner's
// quota (failing with a *service.QuotaError), then starts a multipart
// upload on the file's key that carries the declared size and SHA-256 as
// metadata, and writes its state only if there is none (replacing, with
// etag, the discarded one).
func (s *Store) create(ctx context.Context, key, final, owner string, r service.Resume, etag, writer string) (*resumable, error) {
	defer s.creating.lock(owner)()
	if max := s.opts.MaxUploadsPerOwner; max > 0 {
		n, err := s.countUploads(ctx, owner, r.ID, r.TTL, max)
		if err != nil {
			return nil, s.classify(ctx, "begin upload", r.ID, err)
		}
		if n >= max {
			return nil, &service.UploadError{ID: r.ID, Err: service.ErrTooManyUploads}
		}
	}
	if err := s.checkFolders(ctx, strings.TrimSuffix(final, r.Name), r.Name); err != nil {
		return nil, err // early: Commit checks again
	}
	res, err := s.reserve(ctx, owner, r.Name, final, key, r.Want.Size)
	if err != nil {
		return nil, err
	}
	up, err := s.startUpload(ctx, key, final, r, etag, writer, res)
	if err != nil {
		res.release(ctx)
		return nil, err
	}
	return up, nil
}

// startUpload starts the multipart upload and writes the state of the new
// upload r, whose share of the quota res holds.
func (s *Store) startUpload(ctx context.Context, key, final string, r service.Resume, etag, writer string, res *reservation) (*resumable, error) {
	nonce := newToken()
	id, err := s.c.NewMultipartUpload(ctx, s.opts.Bucket, final,
		minio.PutObjectOptions{UserMetadata: uploadMetadata(r.Want.Size, r.Want.SHA256, nonce)})
	if err != nil {
		return nil, s.classify(ctx, "begin upload", r.ID, err)
	}
	h := sha256.New()
	state, err := marshalHash(h)
	if err != nil {
		return nil, err
	}
	now := s.opts.Now()
	st := &uploadState{
		Version:    stateVersion,
		Name:       r.Name,
		Size:       r.Want.Size,
		SHA256:     hex.EncodeToString(r.Want.SHA256[:]),
		S3UploadID: id,
		Nonce:      nonce,
		PartSize:   s.partSizeFor(r.Want.Size),
		NextPart:   1,
		Hash:       state,
		Writer:     writer,
		Created:    now,
		Updated:    now,
	}
	newTag, err := s.saveState(ctx, key, st, etag)
	if err != nil {
		s.abortStale(ctx, final, st)
		if errors.Is(err, errStateMoved) {
			return nil, busy(r.ID)
		}
		return nil, s.classify(ctx, "begin upload", r.ID, err)
	}
	return s.newResumable(ctx, key, final, r.ID, st, newTag, h, res), nil
}

// claim takes over the upload in st, read with etag, for a new stream. A
// stream that held it without releasing it (on a replica that died, or
// that still runs) may be uploading part NextPart right now, so the new
// stream starts one number later.
func (s *Store) claim(ctx context.Context, key, final, id string, st *uploadState, etag string, res *reservation, writer string) (*resumable, error) {
	h, err := st.restoreHash()
	if err != nil {
		return nil, err
	}
	next := *st
	if st.Writer != "" {
		next.NextPart++
	}
	next.Writer = writer
	next.Updated = s.opts.Now()
	newTag, err := s.saveState(ctx, key, &next, etag)
	if errors.Is(err, errStateMoved) {
		return nil, busy(id)
	}
	if err != nil {
		return nil, s.classify(ctx, "resume upload", id, err)
	}
	return s.newResumable(ctx, key, final, id, &next, newTag, h, res), nil
}

// partSizeFor returns the part size of a new upload of size bytes: the
// store's, doubled until half of the part numbers hold the file, which
// leaves the other half for claims.
func (s *Store) partSizeFor(size int64) int64 {
	ps := s.opts.PartSize
	for ps < MaxPartSize && size > ps*(maxParts/2) {
		ps = min(2*ps, MaxPartSize)
	}
	return ps
}

// newToken returns a random name for a stream holding an upload.
func newToken() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// countUploads counts owner's unexpired incomplete uploads other than
// except, stopping at max. A state that cannot be read counts.
func (s *Store) countUploads(ctx context.Context, owner, except string, ttl time.Duration, max int) (int, error) {
	dir, err := s.ownerDir(uploadsDir, owner)
	if err != nil {
		return 0, err
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	now := s.opts.Now()
	n := 0
	for obj := range s.c.ListObjectsIter(lctx, s.opts.Bucket, minio.ListObjectsOptions{Prefix: dir}) {
		if obj.Err != nil {
			return 0, obj.Err
		}
		id, ok := strings.CutSuffix(strings.TrimPrefix(obj.Key, dir), stateSuffix)
		if !ok || id == except || service.ValidateUploadID(id) != nil {
			continue
		}
		st, _, err := s.loadState(ctx, obj.Key)
		if err == nil && st.expired(now, ttl) || errors.Is(err, errNoState) {
			continue
		}
		if n++; n >= max {
			break
		}
	}
	return n, nil
}

// QueryResumable returns the committed size of owner's incomplete upload
// id, from its state object: the end of its last full part. An upload
// that is unknown, completed, unusable or, unless a stream of this process
// holds it, expired per ttl gives an *service.UploadError wrapping
// service.ErrNotFound.
func (s *Store) QueryResumable(ctx context.Context, owner, id string, ttl time.Duration) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	key, err := s.stateKey(owner, id)
	if err != nil {
		return 0, err
	}
	st, _, err := s.loadState(ctx, key)
	switch {
	case errors.Is(err, errNoState) || errors.Is(err, errBadState):
		return 0, &service.UploadError{ID: id, Err: service.ErrNotFound}
	case err != nil:
		return 0, s.classify(ctx, "query upload", id, err)
	case st.expired(s.opts.Now(), ttl) && !s.held.isHeld(key):
		return 0, &service.UploadError{ID: id, Err: service.ErrNotFound}
	}
	if st.mayBeComplete() {
		// A commit whose answer was lost leaves the state: the client
		// resumes at the end, and that stream's commit answers it.
		final, err := s.objectKey(owner, st.Name)
		if err != nil {
			return 0, &service.UploadError{ID: id, Err: service.ErrNotFound}
		}
		if _, done, err := s.completedAs(ctx, final, st); err != nil {
			return 0, s.classify(ctx, "query upload", id, err)
		} else if done {
			return st.Size, nil
		}
	}
	return st.Committed, nil
}
