package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/minio/minio-go/v7"

	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/storekit"
)

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
	if err := r.collect(); err != nil {
		r.breakWith(r.orLost(err))
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
