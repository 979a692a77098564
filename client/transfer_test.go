package client

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/proto/wire"
	"github.com/greeter/greeter/service/servicetest"
)

const mib = 1 << 20

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestUploadResumesAfterCancel(t *testing.T) {
	ctx := testContext(t)
	const size, cancelAt = 6 * mib, 2 * mib
	srv := servicetest.Start(t, servicetest.Config{})
	reached := srv.Store.Reached(cancelAt)
	c, _ := dial(t, srv, Options{ChunkSize: 64 << 10}, nil)
	path, data := randomFile(t, size)

	upCtx, cancel := context.WithCancel(ctx)
	go func() {
		<-reached
		cancel()
	}()
	res, err := c.UploadFile(upCtx, path, "big.bin", nil)
	if status.Code(err) != codes.Canceled {
		t.Fatalf("UploadFile canceled half way: %v, want Canceled", err)
	}
	if res.Attempts != 1 || res.Sent < cancelAt {
		t.Fatalf("canceled upload reported %d attempts and %d bytes sent, want 1 attempt and at least %d bytes", res.Attempts, res.Sent, cancelAt)
	}
	// The server suspends the upload when its handler returns.
	waitHandled(t, ctx, srv, pb.Greeter_UploadFile_FullMethodName)

	res, err = c.UploadFile(ctx, path, "big.bin", nil)
	if err != nil {
		t.Fatalf("resumed UploadFile: %v", err)
	}
	if res.Sent > size-cancelAt || res.Sent == 0 {
		t.Errorf("resumed upload sent %d bytes, want between 1 and %d (the server had %d of %d)", res.Sent, size-cancelAt, cancelAt, size)
	}
	if res.Size != size || res.SHA256 != sum(data) || res.Attempts != 1 {
		t.Errorf("resumed upload reported %+v, want size %d, sha256 %s, 1 attempt", res, size, sum(data))
	}
	wantStored(t, ctx, c, "big.bin", data)
}

func TestUploadResumesAcrossBrokenConnections(t *testing.T) {
	ctx := testContext(t)
	const size = 8 * mib
	srv := servicetest.Start(t, servicetest.Config{})
	// Every connection breaks after 3 MiB: an upload that started over
	// would never finish on these.
	cut := &cutter{budgets: []int64{3 * mib, 3 * mib, 3 * mib, 3 * mib}}
	c, _ := dial(t, srv, Options{}, cut)
	waitForServer(srv, c)
	path, data := randomFile(t, size)

	res, err := c.UploadFile(ctx, path, "cut.bin", nil)
	if err != nil {
		t.Fatalf("UploadFile through broken connections: %v", err)
	}
	if cut.cutCount() < 2 || res.Attempts < 3 {
		t.Fatalf("%d connections cut, %d attempts; want the test to break the upload at least twice", cut.cutCount(), res.Attempts)
	}
	if res.Sent >= size*3/2 {
		t.Errorf("upload sent %d bytes for a %d-byte file, want less than 1.5x: it must resume, not start over", res.Sent, size)
	}
	t.Logf("sent %d bytes for %d in %d attempts over %d cuts", res.Sent, size, res.Attempts, cut.cutCount())
	check, _ := dial(t, srv, Options{}, nil)
	wantStored(t, ctx, check, "cut.bin", data)
}

func TestUploadNoResumeStartsOver(t *testing.T) {
	ctx := testContext(t)
	const size = 4 * mib
	srv := servicetest.Start(t, servicetest.Config{})
	cut := &cutter{budgets: []int64{2 * mib}}
	c, _ := dial(t, srv, Options{}, cut)
	path, data := randomFile(t, size)

	res, err := c.UploadFile(ctx, path, "plain.bin", nil, NoResume())
	if err != nil {
		t.Fatalf("UploadFile with NoResume: %v", err)
	}
	if res.Attempts != 2 || res.Sent < size+mib {
		t.Errorf("plain upload over one cut: %d attempts, %d bytes sent; want 2 attempts and the whole file sent again", res.Attempts, res.Sent)
	}
	if res.SHA256 != sum(data) {
		t.Errorf("plain upload reported sha256 %s, want %s", res.SHA256, sum(data))
	}
	wantStored(t, ctx, c, "plain.bin", data)
}

// TestUploadResumesAtCommittedSizeFromErrorInfo: when the offset sent is
// wrong (QueryUpload lied here), the server's OFFSET_MISMATCH ErrorInfo
// says where to continue, without another QueryUpload.
func TestUploadResumesAtCommittedSizeFromErrorInfo(t *testing.T) {
	ctx := testContext(t)
	const size = 4 * mib
	faults := new(servicetest.Faults)
	faults.Fail(pb.Greeter_QueryUpload_FullMethodName, -1, status.Error(codes.NotFound, "forgotten"))
	srv := servicetest.Start(t, servicetest.Config{Unary: []grpc.UnaryServerInterceptor{faults.Unary}})
	c, _ := dial(t, srv, Options{ChunkSize: 64 << 10}, nil)
	path, data := randomFile(t, size)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	// Store the first MiB under the upload's ID, then stop. Like
	// UploadFile, declare the size and leave the digest to the trailer.
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	id := UploadID("e.bin", st)
	var sent int64
	sz := int64(size)
	md := &pb.MetaData{Filename: "e.bin", Size: &sz, UploadId: id}
	_, _, err = c.send(ctx, md, io.NewSectionReader(f, 0, mib), -1, nil, &sent, nil, func(int64) {})
	if !hasReason(err, wire.ReasonUploadIncomplete, mib) {
		t.Fatalf("a short resumable upload failed with %v, want UPLOAD_INCOMPLETE at %d", err, mib)
	}

	res, err := c.UploadFile(ctx, path, "e.bin", nil)
	if err != nil {
		t.Fatalf("UploadFile: %v", err)
	}
	// The first attempt, at offset 0, sends what fits in flight before the
	// server's answer arrives; the second sends the rest from 1 MiB.
	queries := faults.Calls(pb.Greeter_QueryUpload_FullMethodName)
	if res.Attempts != 2 || res.Sent >= size || queries != 1 {
		t.Errorf("UploadFile made %d attempts, sent %d bytes, made %d QueryUpload calls; want 2, less than %d, 1", res.Attempts, res.Sent, queries, size)
	}
	wantStored(t, ctx, c, "e.bin", data)
}

// TestUploadLostAnswerIsNotSentTwice: the server stored the file but its
// answer was lost; the retry finds the file with StatFile instead of
// sending it again.
func TestUploadLostAnswerIsNotSentTwice(t *testing.T) {
	ctx := testContext(t)
	const size = 1 * mib
	var dropped atomic.Bool
	dropAnswer := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, next grpc.StreamHandler) error {
		if info.FullMethod != pb.Greeter_UploadFile_FullMethodName || !dropped.CompareAndSwap(false, true) {
			return next(srv, ss)
		}
		if err := next(srv, &answerDropper{ServerStream: ss}); err != nil {
			return err
		}
		return status.Error(codes.Unavailable, "the answer was lost")
	}
	srv := servicetest.Start(t, servicetest.Config{Stream: []grpc.StreamServerInterceptor{dropAnswer}})
	c, rec := dial(t, srv, Options{}, nil)
	path, data := randomFile(t, size)

	res, err := c.UploadFile(ctx, path, "lost.bin", nil)
	if err != nil {
		t.Fatalf("UploadFile: %v", err)
	}
	if res.Attempts != 2 || res.Sent != size || len(rec.all()) != 1 {
		t.Errorf("UploadFile made %d attempts, sent %d bytes, waited %d times; want 2, %d, 1", res.Attempts, res.Sent, len(rec.all()), size)
	}
	wantStored(t, ctx, c, "lost.bin", data)
}

// answerDropper swallows the response of an upload.
type answerDropper struct{ grpc.ServerStream }

func (answerDropper) SendMsg(any) error { return nil }

func TestUploadFallsBackWithoutResumableStore(t *testing.T) {
	ctx := testContext(t)
	srv := servicetest.Start(t, servicetest.Config{Plain: true})
	c, _ := dial(t, srv, Options{}, nil)
	path, data := randomFile(t, 300<<10)
	res, err := c.UploadFile(ctx, path, "old.bin", nil)
	if err != nil {
		t.Fatalf("UploadFile to a server that cannot resume: %v", err)
	}
	if res.Attempts != 1 || res.Sent != int64(len(data)) || res.SHA256 != sum(data) {
		t.Errorf("UploadFile reported %+v, want 1 attempt and every byte sent once", res)
	}
	wantStored(t, ctx, c, "old.bin", data)
}

func TestDownloadResumesFromPartialFile(t *testing.T) {
	ctx := testContext(t)
	const size, have = 3 * mib, mib + 123
	_, c, data := startWithFile(t, ctx, servicetest.Config{}, "d.bin", size)
	dst := filepath.Join(t.TempDir(), "d.bin")
	if err := os.WriteFile(PartialPath(dst), data[:have], 0o600); err != nil {
		t.Fatal(err)
	}

	var last int64
	res, err := c.DownloadFile(ctx, "d.bin", dst, func(done, total int64) { last = done })
	if err != nil {
		t.Fatalf("DownloadFile: %v", err)
	}
	if res.Received != size-have || res.Attempts != 1 || res.Size != size || res.SHA256 != sum(data) {
		t.Errorf("DownloadFile reported %+v, want %d bytes received in 1 attempt, size %d, sha256 %s", res, size-have, size, sum(data))
	}
	if last != size {
		t.Errorf("progress ended at %d, want %d", last, size)
	}
	wantFile(t, dst, data)
	if _, err := os.Stat(PartialPath(dst)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the partial file is still there after the download: %v", err)
	}
}

func TestDownloadStartsOverOnceWhenPartialIsStale(t *testing.T) {
	ctx := testContext(t)
	const size = 2 * mib
	_, c, data := startWithFile(t, ctx, servicetest.Config{}, "s.bin", size)
	for _, tc := range []struct {
		name     string
		partial  []byte
		received int64
	}{
		// The remaining bytes arrive, the whole does not verify, and the
		// file is fetched again from the start.
		{"different bytes", make([]byte, mib), size - mib + size},
		// The server refuses an offset past the end (OutOfRange).
		{"longer than the file", make([]byte, size+1), size},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := filepath.Join(t.TempDir(), "s.bin")
			if err := os.WriteFile(PartialPath(dst), tc.partial, 0o600); err != nil {
				t.Fatal(err)
			}
			res, err := c.DownloadFile(ctx, "s.bin", dst, nil)
			if err != nil {
				t.Fatalf("DownloadFile: %v", err)
			}
			if res.Received != tc.received || res.Attempts != 1 {
				t.Errorf("DownloadFile received %d bytes in %d attempts, want %d in 1", res.Received, res.Attempts, tc.received)
			}
			wantFile(t, dst, data)
		})
	}
}

func TestDownloadResumesAcrossBrokenConnections(t *testing.T) {
	ctx := testContext(t)
	const size = 8 * mib
	srv, _, data := startWithFile(t, ctx, servicetest.Config{Options: cutChunks}, "dl.bin", size)
	cut := &cutter{budgets: []int64{3 * mib, 3 * mib, 3 * mib, 3 * mib}}
	c, _ := dial(t, srv, Options{}, cut)
	dst := filepath.Join(t.TempDir(), "dl.bin")

	res, err := c.DownloadFile(ctx, "dl.bin", dst, nil)
	if err != nil {
		t.Fatalf("DownloadFile through broken connections: %v", err)
	}
	if cut.cutCount() < 2 || res.Attempts < 3 {
		t.Fatalf("%d connections cut, %d attempts; want the test to break the download at least twice", cut.cutCount(), res.Attempts)
	}
	if res.Received >= size*3/2 {
		t.Errorf("download received %d bytes for a %d-byte file, want less than 1.5x", res.Received, size)
	}
	t.Logf("received %d bytes for %d in %d attempts over %d cuts", res.Received, size, res.Attempts, cut.cutCount())
	wantFile(t, dst, data)
}

func TestDownloadFailureKeepsPartialForLater(t *testing.T) {
	ctx := testContext(t)
	const size = 4 * mib
	srv, up, data := startWithFile(t, ctx, servicetest.Config{Options: cutChunks}, "k.bin", size)
	dst := filepath.Join(t.TempDir(), "k.bin")

	// One attempt, cut after 2 MiB.
	cut := &cutter{budgets: []int64{2 * mib}}
	c, _ := dial(t, srv, Options{Retry: RetryPolicy{MaxAttempts: 1}}, cut)
	res, err := c.DownloadFile(ctx, "k.bin", dst, nil)
	if status.Code(err) != codes.Unavailable || res.Attempts != 1 {
		t.Fatalf("DownloadFile over a broken connection without retries: %v after %d attempts, want Unavailable after 1", err, res.Attempts)
	}
	if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a failed download created %s: %v", dst, err)
	}
	st, err := os.Stat(PartialPath(dst))
	if err != nil || st.Size() != res.Received || st.Size() == 0 {
		t.Fatalf("the partial file after a failure: %v, want %d bytes", err, res.Received)
	}

	// A later call (a later run) continues from there.
	res2, err := up.DownloadFile(ctx, "k.bin", dst, nil)
	if err != nil {
		t.Fatalf("resumed DownloadFile: %v", err)
	}
	if res2.Received != size-st.Size() {
		t.Errorf("resumed download received %d bytes, want the %d missing", res2.Received, size-st.Size())
	}
	wantFile(t, dst, data)

	// NoResume ignores and removes a partial file.
	if err := os.WriteFile(PartialPath(dst), data[:mib], 0o600); err != nil {
		t.Fatal(err)
	}
	res3, err := up.DownloadFile(ctx, "k.bin", dst, nil, NoResume())
	if err != nil || res3.Received != size {
		t.Fatalf("DownloadFile with NoResume: %v, %d bytes received; want the whole %d", err, res3.Received, size)
	}
	wantFile(t, dst, data)
}

func TestDownloadOfMissingFileLeavesNothing(t *testing.T) {
	ctx := testContext(t)
	srv := servicetest.Start(t, servicetest.Config{})
	c, rec := dial(t, srv, Options{}, nil)
	dst := filepath.Join(t.TempDir(), "missing.bin")
	res, err := c.DownloadFile(ctx, "missing.bin", dst, nil)
	if status.Code(err) != codes.NotFound || res.Attempts != 1 || len(rec.all()) != 0 {
		t.Fatalf("DownloadFile of a missing file: %v after %d attempts and %d waits, want NotFound at once", err, res.Attempts, len(rec.all()))
	}
	entries, err := os.ReadDir(filepath.Dir(dst))
	if err != nil || len(entries) != 0 {
		t.Fatalf("a failed download left %v behind (%v)", entries, err)
	}
}

func TestEmptyFileRoundTrip(t *testing.T) {
	ctx := testContext(t)
	srv := servicetest.Start(t, servicetest.Config{})
	c, _ := dial(t, srv, Options{}, nil)
	path, data := randomFile(t, 0)
	res, err := c.UploadFile(ctx, path, "empty", nil)
	if err != nil || res.Size != 0 || res.SHA256 != sum(data) {
		t.Fatalf("UploadFile of an empty file: %+v, %v", res, err)
	}
	dst := filepath.Join(t.TempDir(), "empty")
	res, err = c.DownloadFile(ctx, "empty", dst, nil)
	if err != nil || res.Size != 0 || res.SHA256 != sum(data) {
		t.Fatalf("DownloadFile of an empty file: %+v, %v", res, err)
	}
	wantFile(t, dst, data)
}
