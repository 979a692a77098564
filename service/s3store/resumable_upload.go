package s3store

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"slices"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/greeter/greeter/coordination"
	"github.com/greeter/greeter/service"
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
	// partCtx runs the part requests and the state writes of parts that
	// settle: it outlives ctx by up to cleanupTimeout when the request
	// ends (so that a part whose bytes have all come still counts before
	// Suspend), and ends with ctx when the lease is lost, and at release.
	partCtx    context.Context
	partCancel context.CancelCauseFunc

	mu sync.Mutex
	// st and etag change on the writer's goroutine only, and never while
	// a part is settling.
	st   uploadState // as last saved
	etag string      // the state object's ETag, as last saved
	// part is the part being sent, nil between parts. settling is the
	// full part sent before it, awaiting its answer and the state that
	// counts it. tail is the file's last part once it was sent whole when
	// it is shorter than a full one: no state records it, Commit completes
	// with it. pending counts the bytes past st.Committed, in part,
	// settling or tail.
	part     *partStream
	settling *settling
	tail     *minio.CompletePart
	pending  int64
	h        hash.Hash // over st.Committed bytes and pending
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
	partCtx, partCancel := context.WithCancelCause(context.WithoutCancel(ctx))
	context.AfterFunc(ctx, func() {
		cause := context.Cause(ctx)
		if partCtx.Err() != nil {
			return // released
		}
		if errors.Is(cause, errLeaseLost) {
			partCancel(cause)
			return
		}
		time.AfterFunc(cleanupTimeout, func() { partCancel(cause) })
	})
	return &resumable{s: s, ctx: ctx, cancel: cancel, partCtx: partCtx, partCancel: partCancel,
		stopped: make(chan struct{}), key: key, final: final, id: id,
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
	if r.settling.failed() {
		err := r.orLost(r.collect())
		r.breakWith(err)
		return 0, err
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
	number, sent := r.st.NextPart, r.st.Committed
	if r.settling != nil {
		number, sent = number+1, sent+r.st.PartSize
	}
	if number > maxParts {
		return fmt.Errorf("s3store: upload %q: no part numbers left: %w", r.id, service.ErrNoSpace)
	}
	size := min(r.st.PartSize, r.st.Size-sent)
	ps, err := r.s.startPart(r.ctx, r.partCtx, r.final, r.st.S3UploadID, number, size)
	if err != nil {
		return r.s.classify(r.ctx, "upload", r.st.Name, err)
	}
	r.part = ps
	return nil
}

// endPart ends the part that got all its bytes, once the part before it
// settled. A full part settles while the next one streams: once it is
// stored it is counted in a saved state, with the hash state after it.
// The shorter last part is waited for and kept for Commit.
func (r *resumable) endPart() error {
	if err := r.collect(); err != nil {
		return err
	}
	ps := r.part
	r.part = nil
	if ps.size < r.st.PartSize {
		part, err := ps.finish()
		if err != nil {
			return r.partError(r.ctx, "upload", err)
		}
		r.tail = &part
		return nil
	}
	state, err := marshalHash(r.h)
	if err != nil {
		ps.cancel()
		return err
	}
	next, etag := r.st, r.etag
	ps.end()
	r.settling = r.s.settle(func() (func(), error) {
		part, err := ps.answer()
		if err != nil {
			return nil, r.partError(r.partCtx, "upload", err)
		}
		next.Parts = append(slices.Clip(next.Parts), statePart{Number: part.PartNumber, ETag: part.ETag})
		next.Committed += ps.size
		next.NextPart = part.PartNumber + 1
		next.Hash = state
		next.Updated = r.s.opts.Now()
		etag, err := r.saveState(r.partCtx, &next, etag)
		if err != nil {
			return nil, err
		}
		return func() {
			r.st, r.etag = next, etag
			r.pending -= ps.size
		}, nil
	})
	return nil
}

// collect waits for the part settling, if any, and takes the state that
// counts it as the one saved last.
func (r *resumable) collect() error {
	st := r.settling
	r.settling = nil
	return st.wait()
}

// dropPending gives up the bytes past the last full part: the part in
// flight, whose request ends unfinished, and the tail. A part settling is
// waited for: it counts if it settles, else the upload breaks.
func (r *resumable) dropPending() {
	if r.part != nil {
		r.part.cancel()
		r.part = nil
	}
	if err := r.collect(); err != nil && !r.broken {
		r.breakWith(r.orLost(err))
	}
	r.tail = nil
}

// save writes next if the state object is still the one this stream saved
// last, and makes it the state saved last.
func (r *resumable) save(ctx context.Context, next *uploadState) error {
	etag, err := r.saveState(ctx, next, r.etag)
	if err != nil {
		return err
	}
	r.st, r.etag = *next, etag
	return nil
}

// saveState writes next if the state object's ETag is still etag, and
// returns its new ETag. It changes no field.
func (r *resumable) saveState(ctx context.Context, next *uploadState, etag string) (string, error) {
	etag, err := r.s.saveState(ctx, r.key, next, etag)
	if errors.Is(err, errStateMoved) {
		return "", busy(r.id)
	}
	if err != nil {
		return "", r.s.classify(ctx, "save upload", r.id, err)
	}
	return etag, nil
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
	r.partCancel(nil) // first: ctx's end then starts no grace timer
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

// partError classifies an error of the multipart upload in op. A
// multipart upload that is gone was completed by another stream or
// expired: this one lost it.
func (r *resumable) partError(ctx context.Context, op string, err error) error {
	if isCode(err, codeNoSuchUpload) {
		return busy(r.id)
	}
	return r.s.classify(ctx, op, r.st.Name, err)
}
