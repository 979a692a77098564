package s3store

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"log/slog"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/storekit"
)

// Create starts an upload of name for owner. Its bytes are kept in one
// part buffer; a file that outgrows it goes to a multipart upload under
// tmp/, which Commit copies to its key (see the package documentation).
// Nothing is sent until the buffer is full or Commit is called. It fails
// with a *service.QuotaError if one more file would exceed owner's objects
// quota; Write and Commit check the quotas again.
func (s *Store) Create(ctx context.Context, owner, name string) (service.Upload, error) {
	return s.createUpload(ctx, owner, name, -1)
}

// CreateSized is Create for a file of size bytes, declared in advance.
// A file larger than one part is then not buffered: each part streams to
// the multipart upload under tmp/ as its bytes arrive (see partStream),
// since S3 needs no more than each part's length first. A smaller one is
// buffered, as by Create. Either way the declared size is set aside in the
// bytes quota when the upload starts, so that two uploads that do not fit
// together cannot both get most of the way and both fail.
func (s *Store) CreateSized(ctx context.Context, owner, name string, size int64) (service.Upload, error) {
	return s.createUpload(ctx, owner, name, size)
}

// createUpload starts an upload of name for owner, of size bytes or, if size is
// negative, of a size that only Commit knows.
func (s *Store) createUpload(ctx context.Context, owner, name string, size int64) (service.Upload, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	key, err := s.objectKey(owner, name)
	if err != nil {
		return nil, err
	}
	res, err := s.reserve(ctx, owner, name, key, "", max(0, size))
	if err != nil {
		return nil, err
	}
	up := &upload{s: s, ctx: ctx, name: name, key: key, res: res, h: sha256.New()}
	if size > s.opts.PartSize {
		up.size = size
	} else {
		up.buf = s.newPartBuffer(s.opts.PartSize)
	}
	return up, nil
}

// upload is a plain service.Upload.
type upload struct {
	s *Store
	// ctx is the context of the request that created the upload; its part
	// uploads run under it.
	ctx  context.Context
	name string // object name, for errors
	key  string // the file's key
	res  *reservation

	mu sync.Mutex
	// buf holds the bytes not sent yet when the size is not known, or
	// fits in one part; else size is the declared size, and part is the
	// part being sent, nil between parts.
	buf  *partBuffer
	size int64
	part *partStream
	// settling is the part sent before part, awaiting its answer; parts
	// gets it when it settles.
	settling *settling
	h        hash.Hash
	written  int64
	// The multipart upload on a staging key, once the file outgrew one
	// part; uploadID is "" before.
	stage    string
	uploadID string
	parts    []minio.CompletePart
	err      error // why the upload ended, returned again
	done     bool
}

// Write appends p to the part buffer and hashes it. When the buffer is
// full and more bytes come, it is sent as a part first. A failure there,
// or bytes beyond the owner's bytes quota, end the upload and discard what
// was sent.
func (u *upload) Write(p []byte) (int, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.done {
		return 0, closedErr(u.err)
	}
	if err := u.res.grow(u.ctx, u.written+int64(len(p))); err != nil {
		u.fail(u.ctx, err)
		return 0, u.err
	}
	if u.buf == nil {
		return u.stream(p)
	}
	n := 0
	for len(p) > 0 {
		if u.buf.full() {
			if err := u.sendPart(); err != nil {
				u.fail(u.ctx, err)
				return n, u.err
			}
		}
		k := u.buf.fill(p)
		u.h.Write(p[:k])
		u.written += int64(k)
		n += k
		p = p[k:]
	}
	return n, nil
}

// stream sends p on as part of the parts of a file of declared size:
// each part, the shorter last one too, streams to the staging multipart
// upload as its bytes arrive, and settles while the next one streams.
func (u *upload) stream(p []byte) (int, error) {
	if u.written+int64(len(p)) > u.size {
		u.fail(u.ctx, storekit.SizeMismatch("s3store", u.name, u.written+int64(len(p)), u.size))
		return 0, u.err
	}
	if u.settling.failed() {
		u.fail(u.ctx, u.collect())
		return 0, u.err
	}
	n := 0
	for len(p) > 0 {
		if u.part == nil {
			if err := u.startPart(); err != nil {
				u.fail(u.ctx, err)
				return n, u.err
			}
		}
		k := int(min(int64(len(p)), u.part.left()))
		if _, err := u.part.Write(p[:k]); err != nil {
			u.fail(u.ctx, u.s.classify(u.ctx, "upload", u.name, err))
			return n, u.err
		}
		u.h.Write(p[:k])
		u.written += int64(k)
		n += k
		p = p[k:]
		if u.part.left() == 0 {
			if err := u.collect(); err != nil {
				u.fail(u.ctx, err)
				return n, u.err
			}
			ps := u.part
			u.part = nil
			ps.end()
			u.settling = u.s.settle(func() (func(), error) {
				part, err := ps.answer()
				if err != nil {
					return nil, u.s.classify(u.ctx, "upload", u.name, err)
				}
				return func() { u.parts = append(u.parts, part) }, nil
			})
		}
	}
	return n, nil
}

// collect waits for the part settling, if any, and counts it in parts.
func (u *upload) collect() error {
	st := u.settling
	u.settling = nil
	return st.wait()
}

// startPart starts streaming the next part of a file of declared size.
func (u *upload) startPart() error {
	if err := u.startStaging(); err != nil {
		return err
	}
	number := len(u.parts) + 1
	if u.settling != nil {
		number++
	}
	if number > maxParts {
		return fmt.Errorf("s3store: upload %q: larger than %d parts of %d bytes: %w", u.name, maxParts, u.s.opts.PartSize, service.ErrNoSpace)
	}
	sent := int64(number-1) * u.s.opts.PartSize
	ps, err := u.s.startPart(u.ctx, u.ctx, u.stage, u.uploadID, number, min(u.s.opts.PartSize, u.size-sent))
	if err != nil {
		return u.s.classify(u.ctx, "upload", u.name, err)
	}
	u.part = ps
	return nil
}

// startStaging starts the staging multipart upload, unless it was.
func (u *upload) startStaging() error {
	s := u.s
	if u.uploadID == "" {
		var b [16]byte
		rand.Read(b[:])
		stage := s.opts.Prefix + tmpDir + "/" + hex.EncodeToString(b[:])
		id, err := s.c.NewMultipartUpload(u.ctx, s.opts.Bucket, stage, minio.PutObjectOptions{})
		if err != nil {
			return s.classify(u.ctx, "upload", u.name, err)
		}
		u.stage, u.uploadID = stage, id
		s.active.TryLock(id)
	}
	return nil
}

// sendPart sends the full buffer as the next part, starting the staging
// multipart upload first if needed.
func (u *upload) sendPart() error {
	s := u.s
	if err := u.startStaging(); err != nil {
		return err
	}
	number := len(u.parts) + 1
	if number > maxParts {
		return fmt.Errorf("s3store: upload %q: larger than %d parts of %d bytes: %w", u.name, maxParts, s.opts.PartSize, service.ErrNoSpace)
	}
	part, err := s.putPart(u.ctx, u.stage, u.uploadID, number, u.buf.bytes())
	if err != nil {
		return s.classify(u.ctx, "upload", u.name, err)
	}
	u.parts = append(u.parts, part)
	u.buf.reset()
	return nil
}

// Written returns the number of bytes written so far.
func (u *upload) Written() int64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.written
}

// Commit checks the bytes against want and publishes them in one step: a
// file that fits in one part with a single PutObject, a larger one by
// completing the staging upload and copying it, with its metadata, to its
// key. want's preconditions and the owner's quotas are checked first and,
// the preconditions, by the server again with that step (see publish). On
// any error nothing becomes visible and the upload is discarded.
func (u *upload) Commit(ctx context.Context, want service.Expect) (service.FileInfo, error) {
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
	u.release()
	return info, nil
}

func (u *upload) commit(ctx context.Context, want service.Expect) (service.FileInfo, error) {
	if err := u.collect(); err != nil {
		return service.FileInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return service.FileInfo{}, err
	}
	s := u.s
	info := service.FileInfo{Name: u.name, Size: u.written}
	u.h.Sum(info.SHA256[:0])
	if err := storekit.Verify("s3store", u.name, info.Size, info.SHA256, want); err != nil {
		return service.FileInfo{}, err
	}
	meta := fileMetadata(info.Size, info.SHA256)
	if u.buf == nil && u.written < u.size {
		return service.FileInfo{}, storekit.SizeMismatch("s3store", u.name, u.written, u.size)
	}
	if u.buf != nil && u.uploadID == "" {
		err := s.publish(ctx, u.res, &info, want, func(ctx context.Context, cond condition) (minio.UploadInfo, error) {
			opts := minio.PutObjectOptions{UserMetadata: meta}
			cond.apply(&opts)
			return s.c.PutObject(ctx, s.opts.Bucket, u.key, bytes.NewReader(u.buf.bytes()), int64(len(u.buf.bytes())), "", "", opts)
		}, u.classifier(ctx))
		if err != nil {
			return service.FileInfo{}, err
		}
		return info, nil
	}
	if u.buf != nil {
		if err := u.sendPart(); err != nil {
			return service.FileInfo{}, err
		}
	}
	staged, err := s.c.CompleteMultipartUpload(ctx, s.opts.Bucket, u.stage, u.uploadID, u.parts, minio.PutObjectOptions{})
	if err != nil {
		return service.FileInfo{}, s.classify(ctx, "commit", u.name, err)
	}
	u.uploadID = "" // completed: the staging object is what is left to remove
	err = s.publish(ctx, u.res, &info, want, func(ctx context.Context, cond condition) (minio.UploadInfo, error) {
		return s.copyObject(ctx, u.stage, staged.ETag, u.key, info.Size, meta, cond)
	}, u.classifier(ctx))
	if err != nil {
		return service.FileInfo{}, err
	}
	if err := s.removeKey(ctx, u.stage); err != nil {
		s.opts.Logger.WarnContext(ctx, "removing a staged upload failed; CleanTemporaries removes it later",
			slog.String("object", u.name), slog.Any("error", err))
	}
	u.stage = ""
	return info, nil
}

// classifier returns the classification of the upload's errors at commit.
func (u *upload) classifier(ctx context.Context) func(error) error {
	return func(err error) error { return u.s.classify(ctx, "commit", u.name, err) }
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
	return u.discard(u.ctx)
}

// fail ends the upload with err and discards what it sent.
func (u *upload) fail(ctx context.Context, err error) {
	u.err = err
	u.done = true
	if derr := u.discard(ctx); derr != nil {
		u.s.opts.Logger.WarnContext(ctx, "discarding a failed upload failed; the janitor removes it later",
			slog.String("object", u.name), slog.Any("error", derr))
	}
}

// discard aborts the staging upload or removes the staged object, and
// releases the buffer.
func (u *upload) discard(ctx context.Context) error {
	if u.part != nil {
		u.part.cancel() // first: its request would fail on the aborted upload
		u.part = nil
	}
	u.collect() // a part that settles with an error is gone; one that did not goes with the abort
	var err error
	switch {
	case u.uploadID != "":
		err = u.s.abortMultipart(ctx, u.stage, u.uploadID)
	case u.stage != "":
		err = u.s.removeKey(ctx, u.stage)
	}
	u.release()
	if err != nil {
		return u.s.classify(ctx, "abort", u.name, err)
	}
	return nil
}

// release gives the buffer and the hold back and forgets the multipart
// upload. After a commit the hold is settled already.
func (u *upload) release() {
	u.res.release(u.ctx)
	if u.buf != nil {
		u.buf.release()
	}
	if u.part != nil {
		u.part.cancel()
		u.part = nil
	}
	u.collect()
	if u.uploadID != "" {
		u.s.active.Unlock(u.uploadID)
	}
	u.uploadID, u.stage = "", ""
}

// modifiedTime returns the modification time of an object written with
// the result res, or now() when the server did not say.
func modifiedTime(res minio.UploadInfo, now func() time.Time) time.Time {
	if !res.LastModified.IsZero() {
		return res.LastModified
	}
	return now()
}

// closedErr returns the error an upload that ended with err (nil when it
// was committed or aborted) gives when it is used again.
func closedErr(err error) error {
	if err != nil {
		return err
	}
	return errNotHeld
}
