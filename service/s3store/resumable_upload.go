package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"slices"
	"sync"

	"github.com/minio/minio-go/v7"

	"github.com/greeter/greeter/coordination"
	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/storekit"
)

// resumable is a service.ResumableUpload: a multipart upload with
// fixed-size parts and its state object. The stream that began it holds
// the in-process lock on key until it is released.
type resumable struct {
	s *Store
	// ctx is the context of the request that began the upload; its part
	// uploads run under it.
	ctx    context.Context
	key    string // the state object's key; the lease's key; its hold's key
	final  string // the file's key
	id     string
	writer string // this stream's token: the lease's holder
	res    *reservation
	lease  coordination.Lease
	// cancel ends ctx: with errLeaseLost when the lease is lost, which
	// cuts a part upload in flight short, or when the upload is released.
	cancel  context.CancelCauseFunc
	stopped chan struct{} // closed when the upload is released

	mu   sync.Mutex
	st   uploadState // as last saved
	etag string      // the state object's ETag, as last saved
	// part is the part being sent, nil between parts. tail is the file's
	// last part once it was sent whole when it is shorter than a full one:
	// no state records it, Commit completes with it. pending counts the
	// bytes past st.Committed, in part or tail.
	part    *partStream
	tail    *minio.CompletePart
	pending int64
	h       hash.Hash // over st.Committed bytes and pending
	// broken is set when a part or state write failed: what the state
	// object says stands, and nothing more is saved.
	broken bool
	err    error // why the upload broke or ended, returned again
	done   bool  // released: committed, aborted, suspended or failed
}

// newResumable returns the upload whose state st was saved with etag; h
// is the hash of its committed bytes.
func (s *Store) newResumable(ctx context.Context, key, final, id string, st *uploadState, etag string, h hash.Hash, res *reservation) *resumable {
	ctx, cancel := context.WithCancelCause(ctx)
	return &resumable{s: s, ctx: ctx, cancel: cancel, stopped: make(chan struct{}), key: key, final: final, id: id,
		writer: st.Writer, res: res, st: *st, etag: etag, h: h}
}

// Write sends p on as part of the file's parts and hashes it. Each part
// streams to the store as its bytes arrive (see partStream); when a full
// part has gone, the state object is advanced to count it, conditionally
// on its ETag. The file's last part, if shorter, streams too, and Commit
// completes the upload with it. A failure breaks the upload: the state
// saved last stands, and a lost claim gives ErrUploadBusy.
func (r *resumable) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return 0, closedErr(r.err)
	}
	if r.broken {
		return 0, r.err
	}
	if r.st.Committed+r.pending+int64(len(p)) > r.st.Size {
		r.breakWith(fmt.Errorf("s3store: upload %q: %w: more than the declared %d bytes", r.id, service.ErrSizeMismatch, r.st.Size))
		return 0, r.err
	}
	n := 0
	for len(p) > 0 {
		if r.part == nil {
			if err := r.startPart(); err != nil {
				err = r.orLost(err)
				r.breakWith(err)
				return n, err
			}
		}
		k := int(min(int64(len(p)), r.part.left()))
		if _, err := r.part.Write(p[:k]); err != nil {
			err = r.orLost(r.partError(r.ctx, "upload", err))
			r.breakWith(err)
			return n, err
		}
		r.h.Write(p[:k])
		r.pending += int64(k)
		n += k
		p = p[k:]
		if r.part.left() == 0 {
			if err := r.endPart(); err != nil {
				err = r.orLost(err)
				r.breakWith(err)
				return n, err
			}
		}
	}
	return n, nil
}

// startPart starts sending part NextPart: a full part, or the rest of the
// file if that is shorter.
func (r *resumable) startPart() error {
	if r.lost() {
		return busy(r.id)
	}
	number := r.st.NextPart
	if number > maxParts {
		return fmt.Errorf("s3store: upload %q: no part numbers left: %w", r.id, service.ErrNoSpace)
	}
	size := min(r.st.PartSize, r.st.Size-r.st.Committed)
	ps, err := r.s.startPart(r.ctx, r.final, r.st.S3UploadID, number, size)
	if err != nil {
		return r.s.classify(r.ctx, "upload", r.st.Name, err)
	}
	r.part = ps
	return nil
}

// endPart waits for the part that got all its bytes to be stored. A full
// part is then counted in a saved state, with the hash state after it;
// the shorter last part is kept for Commit.
func (r *resumable) endPart() error {
	ps := r.part
	r.part = nil
	part, err := ps.finish()
	if err != nil {
		return r.partError(r.ctx, "upload", err)
	}
	if ps.size < r.st.PartSize {
		r.tail = &part
		return nil
	}
	state, err := marshalHash(r.h)
	if err != nil {
		return err
	}
	next := r.st
	next.Parts = append(slices.Clip(r.st.Parts), statePart{Number: part.PartNumber, ETag: part.ETag})
	next.Committed += ps.size
	next.NextPart = part.PartNumber + 1
	next.Hash = state
	next.Updated = r.s.opts.Now()
	if err := r.save(r.ctx, &next); err != nil {
		return err
	}
	r.pending -= ps.size
	return nil
}

// dropPending gives up the bytes past the last full part: the part in
// flight, whose request ends unfinished, and the tail.
func (r *resumable) dropPending() {
	if r.part != nil {
		r.part.cancel()
		r.part = nil
	}
	r.tail = nil
}

// save writes next if the state object is still the one this stream saved
// last, and makes it the state saved last.
func (r *resumable) save(ctx context.Context, next *uploadState) error {
	etag, err := r.s.saveState(ctx, r.key, next, r.etag)
	if errors.Is(err, errStateMoved) {
		return busy(r.id)
	}
	if err != nil {
		return r.s.classify(ctx, "save upload", r.id, err)
	}
	r.st, r.etag = *next, etag
	return nil
}

func (r *resumable) breakWith(err error) {
	r.broken = true
	r.err = err
}

// Written returns the size of the file so far, committed bytes included.
// Once the upload is suspended it is the committed size.
func (r *resumable) Written() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return r.st.Committed
	}
	return r.st.Committed + r.pending
}

// Suspend releases the upload. Bytes past the last full part are dropped:
// the committed size stays at the end of that part, and the client sends
// the rest again. Unless the upload broke, the state records that no
// stream holds it, so the next one need not skip a part number.
func (r *resumable) Suspend() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return nil
	}
	return r.suspend()
}

func (r *resumable) suspend() error {
	r.dropPending() // before the state says no stream holds the upload
	var err error
	if !r.broken && !r.lost() { // a lost lease's new holder may have read the state already
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), cleanupTimeout)
		next := r.st
		next.Writer = ""
		next.Updated = r.s.opts.Now()
		err = r.save(ctx, &next)
		cancel()
		if errors.Is(err, service.ErrUploadBusy) {
			err = nil // another stream took over; what was committed is kept
		}
	}
	r.release()
	return err
}

// release ends this stream's hold on the upload, keeping it on the store,
// and gives its lease up.
func (r *resumable) release() {
	select {
	case <-r.stopped:
		return // released already
	default:
	}
	r.done = true
	r.dropPending()
	r.s.held.drop(r.key, r.writer)
	close(r.stopped)
	r.cancel(nil)
	if r.lease != nil {
		r.lease.Release()
	}
}

// Abort discards the upload: its multipart upload, its state and its
// hold on the owner's quota.
func (r *resumable) Abort() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return nil
	}
	return r.abort(r.ctx)
}

func (r *resumable) abort(ctx context.Context) error {
	r.dropPending() // first: no part request may race the abort
	err := errors.Join(r.s.abortMultipart(ctx, r.final, r.st.S3UploadID), r.s.removeKey(ctx, r.key))
	r.res.release(ctx)
	r.release()
	if err != nil {
		return r.s.classify(ctx, "abort upload", r.id, err)
	}
	return nil
}

// Commit verifies the whole file against the size and SHA-256 the upload
// was started with (and against want), from the hash state after the
// committed parts plus the bytes since; bytes that miss the declared
// SHA-256 abort the upload with service.ErrResumableDigestMismatch. Then it
// checks by a conditional write that this stream still holds the upload
// and completes the multipart upload, with the last part that Write
// streamed, under want's preconditions and the owner's quota (see
// Store.publish), which publishes the file in one step with the declared
// size and SHA-256 as metadata (an empty file is put instead), and deletes
// the state.
// A failed precondition, an exceeded quota or a stored part that is not
// the one received abort the upload too: resuming cannot change the
// answer. Too few bytes or a ctx cancelled before Commit suspend the
// upload; any other failure releases it, resumable.
func (r *resumable) Commit(ctx context.Context, want service.Expect) (service.FileInfo, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return service.FileInfo{}, closedErr(r.err)
	}
	if r.broken {
		r.release()
		return service.FileInfo{}, r.err
	}
	if r.lost() {
		r.breakWith(busy(r.id))
		r.release()
		return service.FileInfo{}, r.err
	}
	if err := ctx.Err(); err != nil {
		r.suspend()
		return service.FileInfo{}, err
	}
	name, size := r.st.Name, r.st.Size
	written := r.st.Committed + r.pending
	if written < size {
		err := storekit.SizeMismatch("s3store", name, written, size)
		if serr := r.suspend(); serr != nil {
			return service.FileInfo{}, serr
		}
		return service.FileInfo{}, err
	}
	info := service.FileInfo{Name: name, Size: written}
	r.h.Sum(info.SHA256[:0])
	declared := service.Expect{Size: size, HasSize: true, SHA256: r.st.sum(), HasSHA256: true}
	if err := storekit.VerifyResumable("s3store", name, info.Size, info.SHA256, declared, want); err != nil {
		r.abort(ctx)
		return service.FileInfo{}, err
	}
	if err := r.publish(ctx, &info, want); err != nil {
		switch {
		case r.done:
		case errors.Is(err, service.ErrResumableDigestMismatch), errors.Is(err, service.ErrExists),
			errors.Is(err, service.ErrNotMatched), errors.Is(err, service.ErrQuotaExceeded):
			r.abort(ctx)
		default:
			r.breakWith(err)
			r.release()
		}
		return service.FileInfo{}, err
	}
	if err := r.s.removeKey(ctx, r.key); err != nil {
		r.s.opts.Logger.WarnContext(ctx, "removing a completed upload's state failed; it expires later",
			slog.String("upload_id", r.id), slog.String("object", name), slog.Any("error", err))
	}
	r.st.Committed = info.Size // for Written
	r.release()
	return info, nil
}

// publish makes the verified file visible: after the fence (a write of the
// state that fails if another stream claimed the upload), with one
// PutObject for an empty file, else by completing the multipart upload
// with the parts the state records and the tail. An InvalidPart answer
// means the parts on the server are not the ones the state recorded (a
// stream that lost its claim overwrote one with other bytes): the upload
// cannot complete, which is reported as
// service.ErrResumableDigestMismatch.
func (r *resumable) publish(ctx context.Context, info *service.FileInfo, want service.Expect) error {
	s := r.s
	fence := r.st
	fence.Updated = s.opts.Now()
	if err := r.save(ctx, &fence); err != nil {
		return err
	}
	classify := func(err error) error {
		if isCode(err, codeInvalidPart) {
			return fmt.Errorf("s3store: commit %q: %w: a stored part is not the one received", info.Name, service.ErrResumableDigestMismatch)
		}
		return r.partError(ctx, "commit", err)
	}
	if len(r.st.Parts) == 0 && r.tail == nil {
		err := s.publish(ctx, r.res, info, want, func(ctx context.Context, cond condition) (minio.UploadInfo, error) {
			opts := minio.PutObjectOptions{UserMetadata: r.st.metadata()}
			cond.apply(&opts)
			return s.c.PutObject(ctx, s.opts.Bucket, r.final, bytes.NewReader(nil), 0, "", "", opts)
		}, classify)
		if err != nil {
			return err
		}
		if err := s.abortMultipart(ctx, r.final, r.st.S3UploadID); err != nil {
			s.opts.Logger.WarnContext(ctx, "aborting the unused multipart upload failed; the janitor aborts it later",
				slog.String("object", info.Name), slog.Any("error", err))
		}
		return nil
	}
	parts := r.st.completeParts()
	if r.tail != nil {
		parts = append(parts, *r.tail)
	}
	return s.publish(ctx, r.res, info, want, func(ctx context.Context, cond condition) (minio.UploadInfo, error) {
		var opts minio.PutObjectOptions
		cond.apply(&opts)
		out, err := s.c.CompleteMultipartUpload(ctx, s.opts.Bucket, r.final, r.st.S3UploadID, parts, opts)
		if err != nil {
			return r.completeRetried(ctx, err)
		}
		return out, nil
	}, classify)
}

// partError classifies an error of the multipart upload in op. A
// multipart upload that is gone was completed by another stream or
// expired: this one lost it.
func (r *resumable) partError(ctx context.Context, op string, err error) error {
	if isCode(err, codeNoSuchUpload) {
		return busy(r.id)
	}
	return r.s.classify(ctx, op, r.st.Name, err)
}
