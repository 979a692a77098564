package s3store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"go.uber.org/goleak"

	"github.com/greeter/greeter/internal/s3test"
	"github.com/greeter/greeter/service"
)

// shared is the MinIO server the package's tests share; each test works
// under a prefix of its own. Tests that stop the server start their own.
var shared *s3test.Server

func TestMain(m *testing.M) {
	srv, err := s3test.Launch()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	shared = srv
	code := m.Run()
	srv.Close()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

const (
	owner    = "jwt:https://issuer.example:alice"
	testPart = MinPartSize // 5 MiB parts keep the tests small
	mib      = 1 << 20
)

// testCtx returns a context that ends with the test or after a minute.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

var prefixSeq atomic.Int64

// testPrefix returns a prefix of keys no other test uses.
func testPrefix(t *testing.T) string {
	name := regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "-")
	return fmt.Sprintf("t%d-%s/", prefixSeq.Add(1), strings.ToLower(name))
}

// optionsFor returns Options for srv with the root credentials, test part
// size and a fresh prefix.
func optionsFor(t *testing.T, srv *s3test.Server) Options {
	return Options{
		Endpoint:    srv.Endpoint,
		Bucket:      srv.Bucket,
		Prefix:      testPrefix(t),
		PathStyle:   true,
		Credentials: credentials.NewStaticV4(s3test.AccessKey, s3test.SecretKey, ""),
		PartSize:    testPart,
		MaxRetries:  1,
	}
}

// openStore opens a store on srv, or on the shared server if srv is nil,
// with optionsFor changed by mods.
func openStore(t *testing.T, srv *s3test.Server, mods ...func(*Options)) *Store {
	t.Helper()
	if srv == nil {
		srv = shared
	}
	o := optionsFor(t, srv)
	for _, m := range mods {
		m(&o)
	}
	s, err := Open(testCtx(t), o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// data returns n deterministic pseudo-random bytes for seed.
func data(n int, seed byte) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

// writeChunks writes b to w in chunks of 256 KiB, as the service does.
func writeChunks(t *testing.T, w io.Writer, b []byte) {
	t.Helper()
	for len(b) > 0 {
		n := min(len(b), 256<<10)
		if _, err := w.Write(b[:n]); err != nil {
			t.Fatalf("Write: %v", err)
		}
		b = b[n:]
	}
	if r, ok := w.(*resumable); ok {
		settled(t, r)
	}
}

// settled waits until the full part r sent last, if it is still settling,
// is counted in the saved state, as r's next part, Suspend and Commit do:
// what the test reads next of the state, on any store, is then settled.
func settled(t *testing.T, r *resumable) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.collect(); err != nil {
		t.Fatalf("settling the part sent last: %v", err)
	}
}

// put stores b as owner's name with a plain upload.
func put(t *testing.T, s *Store, name string, b []byte) service.FileInfo {
	t.Helper()
	ctx := testCtx(t)
	up, err := s.Create(ctx, owner, name)
	if err != nil {
		t.Fatalf("Create(%q): %v", name, err)
	}
	writeChunks(t, up, b)
	info, err := up.Commit(ctx, service.Expect{Size: int64(len(b)), HasSize: true, SHA256: sha256.Sum256(b), HasSHA256: true})
	if err != nil {
		t.Fatalf("Commit(%q): %v", name, err)
	}
	return info
}

// get reads owner's name whole, in the service's 256 KiB chunks.
func get(t *testing.T, s *Store, name string) []byte {
	t.Helper()
	f, err := s.Open(testCtx(t), owner, name)
	if err != nil {
		t.Fatalf("Open(%q): %v", name, err)
	}
	defer f.Close()
	var out bytes.Buffer
	buf := make([]byte, 256<<10)
	for off := int64(0); ; {
		n, err := f.ReadAt(buf, off)
		out.Write(buf[:n])
		off += int64(n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("ReadAt(%q, %d): %v", name, off, err)
		}
	}
	if int64(out.Len()) != f.Info().Size {
		t.Fatalf("read %d bytes of %q, Info says %d", out.Len(), name, f.Info().Size)
	}
	return out.Bytes()
}

// incompleteUploads returns the keys of the multipart uploads in progress
// under s's prefix. MinIO lists them only for the whole bucket.
func incompleteUploads(t *testing.T, srv *s3test.Server, s *Store) []string {
	t.Helper()
	var keys []string
	for u := range srv.Client().ListIncompleteUploads(testCtx(t), srv.Bucket, "", true) {
		if u.Err != nil {
			t.Fatalf("ListIncompleteUploads: %v", u.Err)
		}
		if strings.HasPrefix(u.Key, s.opts.Prefix) {
			keys = append(keys, u.Key)
		}
	}
	return keys
}

// keysUnder returns the keys below s's prefix + dir.
func keysUnder(t *testing.T, srv *s3test.Server, s *Store, dir string) []string {
	t.Helper()
	var keys []string
	for o := range srv.Client().ListObjectsIter(testCtx(t), srv.Bucket, minio.ListObjectsOptions{Prefix: s.opts.Prefix + dir, Recursive: true}) {
		if o.Err != nil {
			t.Fatalf("ListObjects: %v", o.Err)
		}
		keys = append(keys, o.Key)
	}
	return keys
}

// assertClean fails unless s left no multipart upload, staged file or
// upload state behind.
func assertClean(t *testing.T, srv *s3test.Server, s *Store) {
	t.Helper()
	if keys := incompleteUploads(t, srv, s); len(keys) > 0 {
		t.Errorf("multipart uploads left: %q", keys)
	}
	for _, dir := range []string{tmpDir, uploadsDir} {
		if keys := keysUnder(t, srv, s, dir); len(keys) > 0 {
			t.Errorf("objects left under %s/: %q", dir, keys)
		}
	}
}

// resume returns the Resume of upload id for b starting at offset.
func resume(id, name string, b []byte, offset int64) service.Resume {
	return service.Resume{
		ID:     id,
		Name:   name,
		Want:   service.Expect{Size: int64(len(b)), HasSize: true, SHA256: sha256.Sum256(b), HasSHA256: true},
		Offset: offset,
		TTL:    time.Hour,
	}
}
