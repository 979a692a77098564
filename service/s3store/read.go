package s3store

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"

	"github.com/minio/minio-go/v7"

	"github.com/greeter/greeter/service"
)

// errNoMetadata means an object lacks the metadata the store writes: it
// was put there by something else.
var errNoMetadata = errors.New("object has no valid greeter sha256 and size metadata")

// Stat describes owner's committed file name from one HEAD request.
func (s *Store) Stat(ctx context.Context, owner, name string) (service.FileInfo, error) {
	info, _, err := s.stat(ctx, "stat", owner, name)
	return info, err
}

// Open opens owner's committed file name. Its ReadAt reads the version
// that was opened, by ETag, or fails with service.ErrChanged once that
// version is gone.
func (s *Store) Open(ctx context.Context, owner, name string) (service.File, error) {
	info, obj, err := s.stat(ctx, "open", owner, name)
	if err != nil {
		return nil, err
	}
	return &file{s: s, ctx: ctx, key: obj.Key, etag: obj.ETag, info: info}, nil
}

// stat heads owner's file name and returns what its metadata says.
func (s *Store) stat(ctx context.Context, op, owner, name string) (service.FileInfo, minio.ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return service.FileInfo{}, minio.ObjectInfo{}, err
	}
	key, err := s.objectKey(owner, name)
	if err != nil {
		return service.FileInfo{}, minio.ObjectInfo{}, err
	}
	obj, err := s.c.StatObject(ctx, s.opts.Bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return service.FileInfo{}, obj, s.classify(ctx, op, name, err)
	}
	obj.Key = key
	info := service.FileInfo{Name: name, Size: obj.Size, Modified: obj.LastModified}
	sum, ok := parseSHA256(obj.Metadata.Get("X-Amz-Meta-" + metaSHA256))
	size, err := strconv.ParseInt(obj.Metadata.Get("X-Amz-Meta-"+metaSize), 10, 64)
	if !ok || err != nil || size != obj.Size {
		return service.FileInfo{}, obj, fmt.Errorf("s3store: %s %q: %w", op, name, errNoMetadata)
	}
	info.SHA256 = sum
	return info, obj, nil
}

// parseSHA256 decodes a hex SHA-256.
func parseSHA256(h string) (sum [32]byte, ok bool) {
	if len(h) != hex.EncodedLen(len(sum)) {
		return sum, false
	}
	_, err := hex.Decode(sum[:], []byte(h))
	return sum, err == nil
}

// readWindow is the most bytes one GET of a download asks for. MinIO holds
// a lock on the object until it has written the whole answer, and a
// replacement or delete of the file waits for it (up to 30 s): a reader
// whose client is slow must not keep a whole file's answer pending. A few
// MiB keep the requests of a 1 GiB download in the hundreds.
const readWindow = 4 << 20

// file is a service.File: one version of an object, read with ranged GETs
// that name its ETag. Sequential reads share one GET of up to readWindow
// bytes; a read past it, or elsewhere, starts a new one.
type file struct {
	s *Store
	// ctx is the context of the request that opened the file: its end
	// ends a GET in progress.
	ctx  context.Context
	key  string
	etag string
	info service.FileInfo

	mu     sync.Mutex
	body   io.ReadCloser // the GET in progress, or nil
	pos    int64         // where body continues
	end    int64         // where body ends
	closed bool
}

// ReadAt reads len(p) bytes at off, or fewer and io.EOF at the end of the
// file. It fails with service.ErrChanged if the version opened was
// replaced or deleted, and with service.ErrUnavailable if the server
// cannot be reached. A GET broken in the middle is retried once.
func (f *file) ReadAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return 0, fmt.Errorf("s3store: read %q: file closed", f.info.Name)
	}
	if off < 0 {
		return 0, fmt.Errorf("s3store: read %q: negative offset", f.info.Name)
	}
	if off >= f.info.Size {
		return 0, io.EOF
	}
	want := min(int64(len(p)), f.info.Size-off)
	n, retried := int64(0), false
	for n < want {
		pos := off + n
		if f.body == nil || f.pos != pos || f.pos == f.end {
			if err := f.get(pos); err != nil {
				return int(n), err
			}
		}
		k, err := io.ReadFull(f.body, p[n:min(want, n+f.end-pos)])
		n += int64(k)
		f.pos += int64(k)
		if err != nil {
			f.drop()
			if retried {
				return int(n), f.s.classify(f.ctx, "read", f.info.Name, err)
			}
			retried = true
		}
	}
	if n < int64(len(p)) {
		return int(n), io.EOF
	}
	return int(n), nil
}

// get starts a GET of the opened version from off to the end of the window
// that starts there.
func (f *file) get(off int64) error {
	f.drop()
	var opts minio.GetObjectOptions
	if err := opts.SetMatchETag(f.etag); err != nil {
		return err
	}
	end := min(off+readWindow, f.info.Size)
	if err := opts.SetRange(off, end-1); err != nil {
		return err
	}
	body, obj, _, err := f.s.c.GetObject(f.ctx, f.s.opts.Bucket, f.key, opts)
	switch {
	case isPreconditionFailed(err) || isNotFound(err):
		return fmt.Errorf("s3store: read %q: %w", f.info.Name, service.ErrChanged)
	case err != nil:
		return f.s.classify(f.ctx, "read", f.info.Name, err)
	case obj.ETag != f.etag:
		// A server that ignores If-Match: never mix versions.
		body.Close()
		return fmt.Errorf("s3store: read %q: %w", f.info.Name, service.ErrChanged)
	}
	f.body, f.pos, f.end = body, off, end
	return nil
}

// drop ends the GET in progress, if any.
func (f *file) drop() {
	if f.body != nil {
		f.body.Close()
		f.body = nil
	}
}

// Close ends the GET in progress.
func (f *file) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.drop()
	f.closed = true
	return nil
}

// Info describes the version that was opened.
func (f *file) Info() service.FileInfo { return f.info }
