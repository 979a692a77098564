package s3store

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/greeter/greeter/internal/fakeclock"
	"github.com/greeter/greeter/service"
)

func TestCleanExpiredUploads(t *testing.T) {
	clk := fakeclock.New(time.Now())
	s := openStore(t, nil, func(o *Options) { o.Now = clk.Now })
	b := data(2*testPart+1, 13)
	stale := begin(t, s, "stale", b, 0)
	writeChunks(t, stale, b[:testPart+3])
	if err := stale.Suspend(); err != nil {
		t.Fatal(err)
	}
	// An orphan: a multipart upload no state names, as a crash between
	// starting it and writing the state leaves.
	key, _ := s.objectKey(owner, "orphan")
	if _, err := shared.Client().NewMultipartUpload(testCtx(t), shared.Bucket, key, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	// An unusable state.
	bad, _ := s.stateKey(owner, "bad")
	if _, err := shared.Client().PutObject(testCtx(t), shared.Bucket, bad, strings.NewReader("{"), 1, "", "", minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}

	clk.Advance(30 * time.Minute)
	fresh := begin(t, s, "fresh", b, 0) // held by a stream
	writeChunks(t, fresh, b[:testPart])
	if n, err := s.CleanExpiredUploads(time.Hour); err != nil || n != 0 {
		t.Fatalf("clean before expiry = %d, %v; want 0", n, err)
	}

	clk.Advance(45 * time.Minute) // stale is 75 min old, fresh 45 min
	n, err := s.CleanExpiredUploads(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// The stale upload, the bad state and the orphan (both older than an
	// hour by this clock); not the upload a stream holds.
	if n != 3 {
		t.Errorf("removed %d, want 3", n)
	}
	if _, err := s.QueryResumable(testCtx(t), owner, "stale", 0); !errors.Is(err, service.ErrNotFound) {
		t.Errorf("Query(stale) = %v, want ErrNotFound", err)
	}
	if got, err := s.QueryResumable(testCtx(t), owner, "fresh", time.Hour); err != nil || got != testPart {
		t.Errorf("Query(fresh) = %d, %v; want %d", got, err, testPart)
	}
	// Expired, but held by a stream of this process: kept.
	clk.Advance(2 * time.Hour)
	if n, err := s.CleanExpiredUploads(time.Hour); err != nil || n != 0 {
		t.Errorf("second clean = %d, %v; want 0", n, err)
	}
	if keys := incompleteUploads(t, shared, s); len(keys) != 1 {
		t.Errorf("multipart uploads left: %q, want only the held one", keys)
	}
	commitAll(t, s, fresh, b, testPart)
	assertClean(t, shared, s)
	if _, err := s.CleanExpiredUploads(0); err == nil {
		t.Error("CleanExpiredUploads(0) succeeded")
	}
}

// TestCleanExpiredUploadsFromAnotherReplica expires an upload another
// replica's stream abandoned.
func TestCleanExpiredUploadsFromAnotherReplica(t *testing.T) {
	clk := fakeclock.New(time.Now())
	a := openStore(t, nil, func(o *Options) { o.Now = clk.Now })
	b := openStore(t, nil, func(o *Options) { o.Now = clk.Now; o.Prefix = a.opts.Prefix })
	content := data(testPart+1, 14)
	up := begin(t, a, "id", content, 0)
	writeChunks(t, up, content[:testPart])
	// a dies holding it.
	clk.Advance(2 * time.Hour)
	if n, err := b.CleanExpiredUploads(time.Hour); err != nil || n != 1 {
		t.Fatalf("clean on the other replica = %d, %v; want 1", n, err)
	}
	assertClean(t, shared, a)
	// Resuming the expired upload starts it anew.
	if _, err := b.BeginResumable(testCtx(t), owner, resume("id", "f", content, testPart)); !errors.Is(err, service.ErrOffsetMismatch) {
		t.Fatalf("resume of an expired upload = %v, want ErrOffsetMismatch", err)
	}
	commitAll(t, b, begin(t, b, "id", content, 0), content, 0)
}

func TestExpiredUploadIsReplaced(t *testing.T) {
	clk := fakeclock.New(time.Now())
	s := openStore(t, nil, func(o *Options) { o.Now = clk.Now })
	b := data(testPart+1, 15)
	up := begin(t, s, "id", b, 0)
	writeChunks(t, up, b[:testPart])
	up.Suspend()
	clk.Advance(2 * time.Hour)
	if _, err := s.QueryResumable(testCtx(t), owner, "id", time.Hour); !errors.Is(err, service.ErrNotFound) {
		t.Errorf("Query of an expired upload = %v, want ErrNotFound", err)
	}
	r := resume("id", "f", b, 0)
	up2, err := s.BeginResumable(testCtx(t), owner, r)
	if err != nil {
		t.Fatal(err)
	}
	commitAll(t, s, up2, b, 0)
	assertClean(t, shared, s) // the old multipart upload was aborted
}

func TestCleanTemporaries(t *testing.T) {
	clk := fakeclock.New(time.Now())
	s := openStore(t, nil, func(o *Options) { o.Now = clk.Now })
	key := s.opts.Prefix + tmpDir + "/leftover"
	if _, err := shared.Client().PutObject(testCtx(t), shared.Bucket, key, strings.NewReader("x"), 1, "", "", minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.CleanTemporaries(0); err != nil || n != 0 {
		t.Errorf("CleanTemporaries of a fresh file = %d, %v; want 0", n, err)
	}
	clk.Advance(MinTemporaryAge + time.Minute)
	if n, err := s.CleanTemporaries(0); err != nil || n != 1 {
		t.Errorf("CleanTemporaries of an old file = %d, %v; want 1", n, err)
	}
	assertClean(t, shared, s)
}
