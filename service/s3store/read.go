package s3store

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

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

// readWindow is the size of a download's buffers: the readahead holds two
// per download (the one being read and the one being filled), and
// greeterd's peak RSS in the uploads that follow downloads stayed about
// 10 MiB lower with 2 MiB than with 4 MiB, and 18 MiB lower than with 8 MiB
// (66.6 MiB, past the 64 MiB target).
const readWindow = 2 << 20

// getRange is the most bytes one GET of a download asks for: 32 GETs per
// GiB instead of one per window. Each GET costs the server a request
// (MinIO: 0.45 s of CPU per GiB more with 2 MiB GETs than with one), and on
// a remote store a round trip that a window-sized GET pays every 2 MiB.
const getRange = 32 << 20

// stallLimit is how long a GET's answer may wait half read for a free
// buffer. MinIO holds a lock on the object until it has written the whole
// answer, and a replacement or delete of the file waits for it (one GET to
// the end of a large file kept writers waiting 30 s): when the client is
// slow, the GET is closed (its connection is not reused) and the next
// window gets a new one.
const stallLimit = 100 * time.Millisecond

// file is a service.File: one version of an object, read with ranged GETs
// that name its ETag. Sequential reads are served by a readahead that
// fetches the next window while the current one is read; a read elsewhere
// starts a new one there.
type file struct {
	s *Store
	// ctx is the context of the request that opened the file: its end
	// ends the readahead.
	ctx  context.Context
	key  string
	etag string
	info service.FileInfo

	mu     sync.Mutex
	ra     *readahead // nil before the first read and after a failure
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
	if f.ra == nil || f.ra.next != off {
		f.stop()
		f.ra = f.startReadahead(off)
	}
	n, err := f.ra.read(f.ctx, p[:want])
	if err != nil {
		f.stop()
		return n, err
	}
	if int64(n) < int64(len(p)) {
		return n, io.EOF
	}
	return n, nil
}

// getStream is a download's open GET, if any: body has the opened
// version's bytes from at to end.
type getStream struct {
	body    io.ReadCloser
	at, end int64
}

// close closes the GET; a body not read to its end drops its connection.
func (g *getStream) close() {
	if g.body != nil {
		g.body.Close()
		g.body = nil
	}
}

// fill reads the opened version's bytes from off into buf, whole: from the
// open GET if it is at off, else from a new one that asks for up to
// getRange bytes. A GET broken in the middle is retried once.
func (f *file) fill(ctx context.Context, g *getStream, buf []byte, off int64) error {
	retried := false
	for n := 0; n < len(buf); {
		at := off + int64(n)
		if g.body == nil || g.at != at {
			g.close()
			end := min(at+getRange, f.info.Size)
			body, err := f.get(ctx, at, end)
			if err != nil {
				return err
			}
			g.body, g.at, g.end = body, at, end
		}
		k, err := io.ReadFull(g.body, buf[n:])
		n += k
		g.at += int64(k)
		if g.at == g.end {
			g.close() // read to its end: the connection is reused
		}
		if err != nil {
			g.close()
			if retried {
				return f.s.classify(ctx, "read", f.info.Name, err)
			}
			retried = true
		}
	}
	return nil
}

// get starts a GET of the opened version's bytes from off to end.
func (f *file) get(ctx context.Context, off, end int64) (io.ReadCloser, error) {
	var opts minio.GetObjectOptions
	if err := opts.SetMatchETag(f.etag); err != nil {
		return nil, err
	}
	if err := opts.SetRange(off, end-1); err != nil {
		return nil, err
	}
	body, obj, _, err := f.s.c.GetObject(ctx, f.s.opts.Bucket, f.key, opts)
	switch {
	case isPreconditionFailed(err) || isNotFound(err):
		return nil, fmt.Errorf("s3store: read %q: %w", f.info.Name, service.ErrChanged)
	case err != nil:
		return nil, f.s.classify(ctx, "read", f.info.Name, err)
	case obj.ETag != f.etag:
		// A server that ignores If-Match: never mix versions.
		body.Close()
		return nil, fmt.Errorf("s3store: read %q: %w", f.info.Name, service.ErrChanged)
	}
	return body, nil
}

// stop ends the readahead, if any.
func (f *file) stop() {
	if f.ra != nil {
		f.ra.stop()
		f.ra = nil
	}
}

// Close ends the readahead.
func (f *file) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stop()
	f.closed = true
	return nil
}

// Info describes the version that was opened.
func (f *file) Info() service.FileInfo { return f.info }
