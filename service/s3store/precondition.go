package s3store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/minio/minio-go/v7"

	"github.com/greeter/greeter/service"
)

// codeConditionalConflict is AWS S3's answer to a conditional write that
// raced another write of the same key: the other write changes what the
// condition was about, so it counts as a failed condition.
const codeConditionalConflict = "ConditionalRequestConflict"

// target is the file an upload replaces, as one HEAD found it.
type target struct {
	exists bool
	size   int64
	sum    [32]byte
	hasSum bool // the object carries the store's SHA-256 metadata
	etag   string
}

// headTarget heads the key of the file name. A missing key is no error.
func (s *Store) headTarget(ctx context.Context, key, name string) (target, error) {
	obj, err := s.c.StatObject(ctx, s.opts.Bucket, key, minio.StatObjectOptions{})
	if isNotFound(err) {
		return target{}, nil
	}
	if err != nil {
		return target{}, s.classify(ctx, "commit", name, err)
	}
	t := target{exists: true, size: obj.Size, etag: obj.ETag}
	t.sum, t.hasSum = parseSHA256(obj.Metadata.Get("X-Amz-Meta-" + metaSHA256))
	return t, nil
}

// condition is what the write that publishes a file requires of the
// object it replaces, checked by the server atomically with the write.
type condition struct {
	createOnly bool   // If-None-Match: *
	ifMatch    string // If-Match: the ETag of the version checked
}

// none reports whether c requires nothing.
func (c condition) none() bool { return !c.createOnly && c.ifMatch == "" }

// apply sets c on the options of a PutObject or CompleteMultipartUpload.
func (c condition) apply(o *minio.PutObjectOptions) {
	switch {
	case c.createOnly:
		o.SetMatchETagExcept("*")
	case c.ifMatch != "":
		o.SetMatchETag(c.ifMatch)
	}
}

// failed returns the precondition error that a failed write of name means
// under c, or nil if err is not such a failure: 412 (or AWS's conflict of
// racing conditional writes) for either condition, and a missing key for
// If-Match.
func (c condition) failed(name string, err error) error {
	if c.none() || err == nil {
		return nil
	}
	if !isPreconditionFailed(err) && !isCode(err, codeConditionalConflict) && !(c.ifMatch != "" && isNotFound(err)) {
		return nil
	}
	if c.createOnly {
		return fmt.Errorf("s3store: commit %q: %w", name, service.ErrExists)
	}
	return fmt.Errorf("s3store: commit %q: %w: it was replaced or deleted meanwhile", name, service.ErrNotMatched)
}

// preconditions checks want.CreateOnly and want.IfMatch of an upload of
// name against t, and returns the condition that makes the server check
// them again atomically with the write: If-None-Match: * for CreateOnly,
// and If-Match on the ETag of the version whose SHA-256 matched for
// IfMatch, so that a replacement in between fails the write.
func preconditions(name string, want service.Expect, t target) (condition, error) {
	switch {
	case want.CreateOnly && t.exists:
		return condition{}, fmt.Errorf("s3store: commit %q: %w", name, service.ErrExists)
	case want.CreateOnly:
		return condition{createOnly: true}, nil
	case !want.HasIfMatch:
		return condition{}, nil
	case !t.exists:
		return condition{}, fmt.Errorf("s3store: commit %q: %w: there is no such file", name, service.ErrNotMatched)
	case !t.hasSum || t.sum != want.IfMatch:
		return condition{}, fmt.Errorf("s3store: commit %q: %w: its sha256 is %x", name, service.ErrNotMatched, t.sum)
	}
	return condition{ifMatch: t.etag}, nil
}

// publishFunc writes a verified file to its key under cond, in one step
// that makes it visible, and returns the server's error as it is.
type publishFunc func(ctx context.Context, cond condition) (minio.UploadInfo, error)

// publish makes the verified file info describes visible at res.final
// with write, if its folders are no files and no files lie below it
// (checkFolders), want's preconditions and the owner's quota allow it,
// and counts it. Commits and deletes of one key, and of the keys of its
// folders, in this process take turns; the server checks the
// preconditions again with the write, so that a replica that changes the
// key meanwhile fails it. A failed write gives
// the precondition error it means or, through classify, the service error.
// On success info gets its Modified time.
func (s *Store) publish(ctx context.Context, res *reservation, info *service.FileInfo, want service.Expect,
	write publishFunc, classify func(error) error) error {
	dir := strings.TrimSuffix(res.final, info.Name)
	defer s.lockChain(dir, info.Name)()
	if err := s.checkFolders(ctx, dir, info.Name); err != nil {
		return err
	}
	t, err := s.headTarget(ctx, res.final, info.Name)
	if err != nil {
		return err
	}
	cond, err := preconditions(info.Name, want, t)
	if err != nil {
		return err
	}
	share, err := res.commitShare(ctx, info.Size, t)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.beforeWrite != nil {
		s.beforeWrite(info.Name)
	}
	out, err := write(ctx, cond)
	if perr := cond.failed(info.Name, err); perr != nil {
		return perr
	}
	if err != nil {
		return classify(err)
	}
	res.settle(ctx, share)
	info.Modified = modifiedTime(out, s.opts.Now)
	return nil
}

// copyObject copies the object src, as long as its ETag is etag, to dst
// with the user metadata meta, in one step that makes dst visible. Without
// a condition and within one copy request's limit it is one CopyObject;
// otherwise a multipart copy whose completion carries cond, since
// CopyObject takes no condition on its destination.
func (s *Store) copyObject(ctx context.Context, src, etag, dst string, size int64, meta map[string]string, cond condition) (minio.UploadInfo, error) {
	if cond.none() && size <= MaxPartSize {
		to := minio.CopyDestOptions{Bucket: s.opts.Bucket, Object: dst, UserMetadata: meta, ReplaceMetadata: true}
		from := minio.CopySrcOptions{Bucket: s.opts.Bucket, Object: src, MatchETag: etag}
		return s.c.Client.CopyObject(ctx, to, from)
	}
	id, err := s.c.NewMultipartUpload(ctx, s.opts.Bucket, dst, minio.PutObjectOptions{UserMetadata: meta})
	if err != nil {
		return minio.UploadInfo{}, err
	}
	s.active.TryLock(id)
	defer s.active.Unlock(id)
	var parts []minio.CompletePart
	for off, n := int64(0), 1; off < size; off, n = off+MaxPartSize, n+1 {
		length := min(int64(MaxPartSize), size-off)
		p, err := s.c.CopyObjectPart(ctx, s.opts.Bucket, src, s.opts.Bucket, dst, id, n, off, length,
			map[string]string{"x-amz-copy-source-if-match": strconv.Quote(etag)})
		if err != nil {
			return minio.UploadInfo{}, errors.Join(err, s.abortMultipart(ctx, dst, id))
		}
		parts = append(parts, p)
	}
	var opts minio.PutObjectOptions
	cond.apply(&opts)
	res, err := s.c.CompleteMultipartUpload(ctx, s.opts.Bucket, dst, id, parts, opts)
	if err != nil {
		if aerr := s.abortMultipart(ctx, dst, id); aerr != nil {
			s.opts.Logger.WarnContext(ctx, "aborting a failed copy failed; the janitor aborts it later", slog.Any("error", aerr))
		}
		return minio.UploadInfo{}, err
	}
	return res, nil
}
