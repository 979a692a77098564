package s3store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/greeter/greeter/coordination"
)

// MinTemporaryAge is the least age of anything under tmp/ for the janitor
// to remove it: a staged upload between its completion and its copy lives
// for seconds, and a plain upload's staging multipart upload as long as
// the upload.
const MinTemporaryAge = time.Hour

// janitorTimeout bounds one pass of CleanExpiredUploads or
// CleanTemporaries.
const janitorTimeout = 10 * time.Minute

// CleanExpiredUploads removes the incomplete resumable uploads that were
// last written more than olderThan ago (aborting their multipart uploads,
// then deleting their states), unusable states older than that, and
// orphaned multipart uploads under the prefix that no state names and that
// were started more than olderThan ago (more than MinTemporaryAge for
// plain uploads' staging uploads); it returns how many it removed. Any
// replica may run it at any time: everything it does is idempotent. It
// skips uploads a stream of this process holds and keeps going after an
// error, returning all of them joined. olderThan must be positive. With
// leases that can be tried (coordination.LeaseTrier, as redislease's), it
// also skips uploads a stream holds on another replica, and holds the
// lease of each upload it removes, so that no replica resumes it
// meanwhile.
//
// A plain upload that runs longer than olderThan may be aborted by the
// janitor of another replica; an upload resumed at the very moment it
// expires may be lost, and its client starts it again.
func (s *Store) CleanExpiredUploads(olderThan time.Duration) (removed int, err error) {
	if olderThan <= 0 {
		return 0, fmt.Errorf("s3store: clean expired uploads: olderThan must be positive, got %v", olderThan)
	}
	ctx, cancel := context.WithTimeout(context.Background(), janitorTimeout)
	defer cancel()
	now := s.opts.Now()
	cutoff := now.Add(-olderThan)
	referenced := make(map[string]bool)
	var errs []error
	top := s.opts.Prefix + uploadsDir + "/"
	listed := true
	for obj := range s.c.ListObjectsIter(ctx, s.opts.Bucket, minio.ListObjectsOptions{Prefix: top, Recursive: true}) {
		if obj.Err != nil {
			errs = append(errs, obj.Err)
			listed = false
			break
		}
		ok, err := s.cleanState(ctx, obj, now, cutoff, olderThan, referenced)
		if ok {
			removed++
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	// Without every state, an orphan cannot be told from a live upload.
	if listed {
		for _, dir := range []struct {
			top string
			age time.Duration
		}{{objectsDir, olderThan}, {tmpDir, max(olderThan, MinTemporaryAge)}} {
			n, err := s.abortOrphans(ctx, s.opts.Prefix+dir.top+"/", now.Add(-dir.age), referenced)
			removed += n
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("s3store: clean expired uploads: %w", err)
	}
	return removed, nil
}

// cleanState removes the upload whose state object is obj if it expired,
// or obj itself if it is unusable and older than cutoff, and reports
// whether it removed anything. A kept upload's multipart upload goes into
// referenced.
func (s *Store) cleanState(ctx context.Context, obj minio.ObjectInfo, now, cutoff time.Time, ttl time.Duration, referenced map[string]bool) (bool, error) {
	rest := strings.TrimPrefix(obj.Key, s.opts.Prefix+uploadsDir+"/")
	seg, file, ok := strings.Cut(rest, "/")
	if !ok || !strings.HasSuffix(file, stateSuffix) || strings.Contains(file, "/") {
		return false, nil
	}
	st, _, err := s.loadState(ctx, obj.Key)
	switch {
	case errors.Is(err, errNoState):
		return false, nil // completed or removed meanwhile
	case errors.Is(err, errBadState):
		if !obj.LastModified.Before(cutoff) {
			return false, nil
		}
		// Its multipart upload, if any, is an orphan now.
		return true, s.c.RemoveObject(ctx, s.opts.Bucket, obj.Key, minio.RemoveObjectOptions{})
	case err != nil:
		return false, err
	}
	if !st.expired(now, ttl) || !s.held.judge(obj.Key) {
		referenced[st.S3UploadID] = true
		return false, nil
	}
	defer s.held.drop(obj.Key, judging)
	if trier, ok := s.leases.(coordination.LeaseTrier); ok {
		// A stream on another replica may hold it: take its lease, never
		// asking, or leave it; while the janitor holds the lease, a stream
		// that resumes the upload waits for it. Read the state again, as
		// a stream may have resumed it since it was listed.
		referenced[st.S3UploadID] = true // unless removed below
		lease, err := trier.TryAcquire(ctx, obj.Key, "janitor-"+newToken())
		if err != nil { // held, or no telling while Redis is down
			return false, nil
		}
		defer lease.Release()
		switch st, _, err = s.loadState(ctx, obj.Key); {
		case errors.Is(err, errNoState):
			return false, nil
		case err != nil:
			return false, err
		case !st.expired(now, ttl):
			referenced[st.S3UploadID] = true
			return false, nil
		}
	}
	final := s.opts.Prefix + objectsDir + "/" + seg + "/" + st.Name
	if err := s.abortMultipart(ctx, final, st.S3UploadID); err != nil {
		referenced[st.S3UploadID] = true
		return false, err
	}
	if err := s.c.RemoveObject(ctx, s.opts.Bucket, obj.Key, minio.RemoveObjectOptions{}); err != nil {
		return false, err
	}
	s.counter.Release(ctx, seg, obj.Key)
	s.opts.Logger.InfoContext(ctx, "expired upload removed",
		slog.String("object", st.Name), slog.Time("updated", st.Updated))
	return true, nil
}

// abortOrphans aborts the multipart uploads under prefix that were started
// before cutoff and are neither in referenced nor in flight in this
// process, and returns how many it aborted.
//
// MinIO lists multipart uploads only for one exact key or for the whole
// bucket, and answers a prefix with nothing; so when the prefix finds
// nothing, the whole bucket is listed and filtered.
func (s *Store) abortOrphans(ctx context.Context, prefix string, cutoff time.Time, referenced map[string]bool) (int, error) {
	aborted, seen, err := s.abortOrphansListed(ctx, prefix, prefix, cutoff, referenced)
	if err == nil && seen == 0 {
		aborted, _, err = s.abortOrphansListed(ctx, "", prefix, cutoff, referenced)
	}
	return aborted, err
}

// abortOrphansListed does the work of abortOrphans for the uploads that
// listing by listPrefix returns, and also returns how many of them were
// under prefix.
func (s *Store) abortOrphansListed(ctx context.Context, listPrefix, prefix string, cutoff time.Time, referenced map[string]bool) (aborted, seen int, err error) {
	var errs []error
	keyMarker, idMarker := "", ""
	for {
		res, err := s.c.ListMultipartUploads(ctx, s.opts.Bucket, listPrefix, keyMarker, idMarker, "", maxListKeys)
		if err != nil {
			return aborted, seen, errors.Join(append(errs, err)...)
		}
		for _, u := range res.Uploads {
			if !strings.HasPrefix(u.Key, prefix) {
				continue
			}
			seen++
			if referenced[u.UploadID] || s.active.IsLocked(u.UploadID) || !u.Initiated.Before(cutoff) {
				continue
			}
			if err := s.abortMultipart(ctx, u.Key, u.UploadID); err != nil {
				errs = append(errs, err)
				continue
			}
			aborted++
		}
		if !res.IsTruncated || (res.NextKeyMarker == keyMarker && res.NextUploadIDMarker == idMarker) {
			return aborted, seen, errors.Join(errs...)
		}
		keyMarker, idMarker = res.NextKeyMarker, res.NextUploadIDMarker
	}
}

// CleanTemporaries removes objects under tmp/ last written more than
// olderThan ago, but never less than MinTemporaryAge ago: files a plain
// upload staged and a crash kept from copying and removing, and leftover
// probes of Open. It returns how many it removed, and keeps going after an
// error, returning all of them joined.
func (s *Store) CleanTemporaries(olderThan time.Duration) (removed int, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), janitorTimeout)
	defer cancel()
	cutoff := s.opts.Now().Add(-max(olderThan, MinTemporaryAge))
	var errs []error
	for obj := range s.c.ListObjectsIter(ctx, s.opts.Bucket, minio.ListObjectsOptions{Prefix: s.opts.Prefix + tmpDir + "/", Recursive: true}) {
		if obj.Err != nil {
			errs = append(errs, obj.Err)
			break
		}
		if !obj.LastModified.Before(cutoff) {
			continue
		}
		if err := s.c.RemoveObject(ctx, s.opts.Bucket, obj.Key, minio.RemoveObjectOptions{}); err != nil {
			errs = append(errs, err)
			continue
		}
		removed++
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("s3store: clean temporaries: %w", err)
	}
	return removed, nil
}
