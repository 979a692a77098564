package s3store

import (
	"context"
	"log/slog"

	"github.com/minio/minio-go/v7"

	"github.com/greeter/greeter/coordination"
	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/storekit"
)

// metaUpload is the metadata name of the nonce a resumable upload's state
// records and its multipart upload carries (X-Amz-Meta-Greeter-Upload): on
// the file's object it shows that this upload completed, even when the
// answer of CompleteMultipartUpload was lost.
const metaUpload = "Greeter-Upload"

// leased is what begin returns: an upload that the lease of its stream is
// given to.
type leased interface {
	service.ResumableUpload
	watch(lease coordination.Lease)
}

// mayBeComplete reports whether a commit of the upload whose state is st
// can have taken effect: every byte past Committed fits in the one last
// part that no state records.
func (st *uploadState) mayBeComplete() bool {
	return st.Size-st.Committed < st.PartSize
}

// metadata returns the file's metadata for the upload whose state is st:
// with its nonce, if it has one.
func (st *uploadState) metadata() map[string]string {
	if st.Nonce == "" {
		return fileMetadata(st.Size, st.sum())
	}
	return uploadMetadata(st.Size, st.sum(), st.Nonce)
}

// completedAs reports whether the upload whose state is st completed: the
// file's object final carries the state's nonce, size and SHA-256. Such a
// state outlived its commit because the answer of the commit was lost (the
// store or this replica died at that moment); the returned info is what
// that answer would have been. A state written before nonces existed is
// never recognised.
func (s *Store) completedAs(ctx context.Context, final string, st *uploadState) (service.FileInfo, bool, error) {
	if st.Nonce == "" || !st.mayBeComplete() {
		return service.FileInfo{}, false, nil
	}
	obj, err := s.c.StatObject(ctx, s.opts.Bucket, final, minio.StatObjectOptions{})
	switch {
	case isNotFound(err):
		return service.FileInfo{}, false, nil
	case err != nil:
		return service.FileInfo{}, false, err
	}
	sum, ok := parseSHA256(obj.Metadata.Get("X-Amz-Meta-" + metaSHA256))
	if !ok || obj.Metadata.Get("X-Amz-Meta-"+metaUpload) != st.Nonce || obj.Size != st.Size || sum != st.sum() {
		return service.FileInfo{}, false, nil
	}
	return service.FileInfo{Name: st.Name, Size: obj.Size, SHA256: sum, Modified: obj.LastModified}, true, nil
}

// resumeCompleted answers a stream that resumes an upload that completed
// but whose state outlived the commit (see completedAs): at offset info.Size
// it gets an upload that commits to info, anywhere else an
// ErrOffsetMismatch that sends it there.
func (s *Store) resumeCompleted(ctx context.Context, key, id string, st *uploadState, info service.FileInfo, offset int64, res *reservation, writer string) (*finished, error) {
	s.opts.Logger.InfoContext(ctx, "resumed upload had completed; its commit's answer was lost",
		slog.String("upload_id", id), slog.String("object", st.Name))
	if offset != info.Size {
		return nil, &service.UploadError{ID: id, Committed: info.Size, Err: service.ErrOffsetMismatch}
	}
	f := &finished{}
	f.Finished = &storekit.Finished{Store: "s3store", ID: id, Info: info, Closed: closedErr(nil),
		Declared: service.Expect{Size: st.Size, HasSize: true, SHA256: st.sum(), HasSHA256: true},
		// The file's bytes are counted by the next reconciliation of the
		// owner's usage (the replica that published it did not live to
		// settle them).
		Forget: func(ctx context.Context) {
			if err := s.removeKey(ctx, key); err != nil && !isNotFound(err) {
				s.opts.Logger.WarnContext(ctx, "removing a completed upload's state failed; it expires later",
					slog.String("upload_id", id), slog.String("object", info.Name), slog.Any("error", err))
			}
		},
		Release: func(ctx context.Context) {
			res.release(ctx)
			s.held.drop(key, writer)
			if f.lease != nil {
				f.lease.Release()
			}
		}}
	return f, nil
}

// finished is a storekit.Finished that a stream's lease is given to.
type finished struct {
	*storekit.Finished
	lease coordination.Lease
}

func (f *finished) watch(lease coordination.Lease) { f.lease = lease }

// completeRetried returns, for a CompleteMultipartUpload that failed with
// NoSuchUpload or InvalidPart, the answer of the earlier request that took
// effect (the client library retries a request whose answer it lost, and
// the parts of a completed upload are gone), if the file's object shows
// that this upload completed.
func (r *resumable) completeRetried(ctx context.Context, err error) (minio.UploadInfo, error) {
	if !isCode(err, codeNoSuchUpload, codeInvalidPart) {
		return minio.UploadInfo{}, err
	}
	info, ok, herr := r.s.completedAs(ctx, r.final, &r.st)
	if herr != nil {
		// Unknown: answer that failure (the store is most likely down),
		// which keeps the upload, rather than discard an upload that
		// may have completed; the client's retry finds out.
		r.s.opts.Logger.WarnContext(ctx, "checking whether a lost commit took effect failed",
			slog.String("object", r.st.Name), slog.Any("error", herr))
		return minio.UploadInfo{}, herr
	}
	if !ok {
		return minio.UploadInfo{}, err
	}
	return minio.UploadInfo{LastModified: info.Modified, Size: info.Size}, nil
}
