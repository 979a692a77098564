package client

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/proto/wire"
	"github.com/greeter/greeter/service/servicetest"
)

// countingFile is an *os.File that counts the bytes read through ReadAt.
type countingFile struct {
	*os.File
	read atomic.Int64
}

func (f *countingFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.File.ReadAt(p, off)
	f.read.Add(int64(n))
	return n, err
}

func openCounting(t *testing.T, path string) *countingFile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &countingFile{File: f}
}

// TestUploadReadsTheFileOnce: a resumable upload and a plain one hash the
// file while they send it, so every byte is read once, and the server
// verifies the SHA-256 the trailer declares.
func TestUploadReadsTheFileOnce(t *testing.T) {
	ctx := testContext(t)
	const size = 3*mib + 17
	srv := servicetest.Start(t, servicetest.Config{})
	c, _ := dial(t, srv, Options{ChunkSize: 64 << 10}, nil)
	path, data := randomFile(t, size)
	for _, tc := range []struct {
		name string
		opts []TransferOption
	}{
		{"resumable.bin", nil},
		{"plain.bin", []TransferOption{NoResume()}},
	} {
		f := openCounting(t, path)
		res, err := c.uploadFrom(ctx, f, tc.name, nil, c.transferOptions(tc.opts))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := f.read.Load(); got != size {
			t.Errorf("%s: read %d bytes of the %d-byte file, want each once", tc.name, got, size)
		}
		if res.Sent != size || res.SHA256 != sum(data) {
			t.Errorf("%s: sent %d bytes with sha256 %s, want %d with %s", tc.name, res.Sent, res.SHA256, size, sum(data))
		}
		wantStored(t, ctx, c, tc.name, data)
	}
}

// TestUploadResumeHashesThePrefixLocally: an upload resumed by a new
// process (no hash state in memory) reads the committed prefix to hash it
// and sends only the rest: every byte is still read once, and the server
// checks the whole file against the trailer.
func TestUploadResumeHashesThePrefixLocally(t *testing.T) {
	ctx := testContext(t)
	const size = 4 * mib
	srv := servicetest.Start(t, servicetest.Config{})
	c, _ := dial(t, srv, Options{ChunkSize: 64 << 10}, nil)
	path, data := randomFile(t, size)
	f := openCounting(t, path)
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	// An earlier run stored the first 1.5 MiB, then stopped.
	sz := int64(size)
	md := &pb.MetaData{Filename: "p.bin", Size: &sz, UploadId: UploadID("p.bin", st)}
	var sent int64
	_, _, err = c.send(ctx, md, io.NewSectionReader(f, 0, 3*mib/2), -1, nil, &sent, nil, func(int64) {})
	if !hasReason(err, wire.ReasonUploadIncomplete, 3*mib/2) {
		t.Fatalf("the short upload failed with %v, want UPLOAD_INCOMPLETE at %d", err, 3*mib/2)
	}
	waitHandled(t, ctx, srv, pb.Greeter_UploadFile_FullMethodName)
	f.read.Store(0)

	res, err := c.uploadFrom(ctx, f, "p.bin", nil, c.transferOptions(nil))
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != size-3*mib/2 || f.read.Load() != size {
		t.Errorf("sent %d bytes and read %d; want %d sent and the file read once (%d)", res.Sent, f.read.Load(), size-3*mib/2, size)
	}
	wantStored(t, ctx, c, "p.bin", data)
}

// TestUploadFileChangedBetweenAttempts: a file rewritten between two
// attempts (another mtime) is not resumed under the first version's ID.
func TestUploadFileChangedBetweenAttempts(t *testing.T) {
	ctx := testContext(t)
	srv := servicetest.Start(t, servicetest.Config{})
	c, _ := dial(t, srv, Options{ChunkSize: 64 << 10}, nil)
	path, _ := randomFile(t, mib)
	f := openCounting(t, path)
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	u := &fileUpload{c: c, f: f, name: "c.bin", t: c.transferOptions(nil), size: st.Size(), res: &Result{}, furthest: -1, committed: -1,
		id: UploadID("c.bin", st), stat: st, h: newRunningHash()}
	later := st.ModTime().Add(time.Second)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
	_, err = u.attempt(ctx, func() {})
	if err == nil || status.Code(err) != codes.Unknown {
		t.Fatalf("attempt after the file changed = %v, want a local error", err)
	}
	if f.read.Load() != 0 {
		t.Errorf("read %d bytes of a changed file, want none", f.read.Load())
	}
}

func TestUploadIDFollowsTheFile(t *testing.T) {
	path, _ := randomFile(t, 1000)
	stat := func() os.FileInfo {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	first := UploadID("a", stat())
	if got := UploadID("a", stat()); got != first {
		t.Fatalf("UploadID of an unchanged file changed: %s, then %s", first, got)
	}
	if UploadID("b", stat()) == first {
		t.Error("UploadID ignores the name")
	}
	later := stat().ModTime().Add(time.Second)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
	touched := UploadID("a", stat())
	if touched == first {
		t.Error("UploadID ignores the modification time")
	}
	// The same size and mtime in a new file (another inode).
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tmp := path + ".new"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(tmp, later, later); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	if dev, ino := fileKey(stat()); ino != 0 && UploadID("a", stat()) == touched {
		t.Errorf("UploadID ignores the inode (device %d, inode %d)", dev, ino)
	}
}

// TestRunningHashSeeks: going back to an earlier committed size re-reads
// at most hashMarkEvery bytes, and going forward reads the gap; the hash
// is the SHA-256 of the file's first bytes either way.
func TestRunningHashSeeks(t *testing.T) {
	ctx := testContext(t)
	const size = 3*hashMarkEvery + 12345
	path, data := randomFile(t, size)
	f := openCounting(t, path)
	h := newRunningHash()
	for off := 0; off < size; off += 100_000 {
		h.Write(data[off:min(off+100_000, size)])
	}
	for _, off := range []int64{2*hashMarkEvery + 5, 2 * hashMarkEvery, hashMarkEvery - 1, 0, size} {
		before := f.read.Load()
		from := h.pos
		if err := h.seek(ctx, f, off); err != nil {
			t.Fatal(err)
		}
		want := sha256.Sum256(data[:off])
		if h.pos != off || h.sum() != hex.EncodeToString(want[:]) {
			t.Fatalf("after seek(%d) the hash covers %d bytes with sum %s, want %x", off, h.pos, h.sum(), want)
		}
		read := f.read.Load() - before
		if off < from && read > hashMarkEvery {
			t.Errorf("seek back from %d to %d read %d bytes, want at most %d", from, off, read, hashMarkEvery)
		}
		if off > from && read != off-from {
			t.Errorf("seek forward from %d to %d read %d bytes, want %d", from, off, read, off-from)
		}
	}
}

// digestFirstServer is a stream interceptor that answers a resumable
// upload without a sha256 as a server whose storage wants it up front
// does (err), and lets every other upload through.
type digestFirstServer struct {
	err     error
	mu      sync.Mutex
	refused int
}

func (d *digestFirstServer) intercept(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, next grpc.StreamHandler) error {
	if info.FullMethod != pb.Greeter_UploadFile_FullMethodName {
		return next(srv, ss)
	}
	first := new(pb.UploadFileRequest)
	if err := ss.RecvMsg(first); err != nil {
		return err
	}
	if md := first.GetMetadata(); md.GetUploadId() != "" && md.GetSha256() == "" {
		d.mu.Lock()
		d.refused++
		d.mu.Unlock()
		return d.err
	}
	return next(srv, &replayStream{ServerStream: ss, first: first})
}

// replayStream hands the message the interceptor read to the handler
// first.
type replayStream struct {
	grpc.ServerStream
	first *pb.UploadFileRequest
}

func (r *replayStream) RecvMsg(m any) error {
	if r.first != nil {
		proto.Merge(m.(proto.Message), r.first)
		r.first = nil
		return nil
	}
	return r.ServerStream.RecvMsg(m)
}

// TestUploadDeclaresTheDigestFirstWhenAsked: against a server whose storage
// wants the SHA-256 up front (DIGEST_REQUIRED) or that predates the trailer
// (its old message), UploadFile hashes the file first and declares it.
func TestUploadDeclaresTheDigestFirstWhenAsked(t *testing.T) {
	withInfo, _ := status.New(codes.InvalidArgument, "upload of \"x\": a resumable upload must declare its sha256 up front or when it completes").
		WithDetails(&errdetails.ErrorInfo{Reason: wire.ReasonDigestRequired, Domain: wire.ErrorDomain})
	for name, refusal := range map[string]error{
		"DIGEST_REQUIRED": withInfo.Err(),
		"old server":      status.Error(codes.InvalidArgument, "resumable uploads must declare size and sha256"),
	} {
		t.Run(name, func(t *testing.T) {
			ctx := testContext(t)
			d := &digestFirstServer{err: refusal}
			srv := servicetest.Start(t, servicetest.Config{Stream: []grpc.StreamServerInterceptor{d.intercept}})
			c, _ := dial(t, srv, Options{ChunkSize: 64 << 10}, nil)
			const size = 2*mib + 5
			path, data := randomFile(t, size)
			f := openCounting(t, path)
			res, err := c.uploadFrom(ctx, f, "d.bin", nil, c.transferOptions(nil))
			if err != nil {
				t.Fatal(err)
			}
			if d.refused != 1 || res.SHA256 != sum(data) {
				t.Errorf("refused %d uploads, result sha256 %s; want 1 refusal and %s", d.refused, res.SHA256, sum(data))
			}
			// Hashed whole, then sent: read twice, plus what the refused
			// attempt sent before the answer came (flow control bounds
			// it, by a window that grows with the connection's use).
			if got := f.read.Load(); got < 2*size || got > 3*size {
				t.Errorf("read %d bytes, want %d (hash first, then send) plus the refused attempt's", got, 2*size)
			}
			wantStored(t, ctx, c, "d.bin", data)
		})
	}
}

// TestUploadFileChangedWhileSending: a file touched while it is sent is
// not committed as one file (it may be torn): the stream ends before the
// trailer, and nothing is stored, resumable or plain.
func TestUploadFileChangedWhileSending(t *testing.T) {
	ctx := testContext(t)
	srv := servicetest.Start(t, servicetest.Config{})
	c, _ := dial(t, srv, Options{ChunkSize: 64 << 10}, nil)
	for name, opts := range map[string][]TransferOption{"resumable.bin": nil, "plain.bin": {NoResume()}} {
		path, _ := randomFile(t, mib)
		touched := false
		touch := func(done, _ int64) {
			if done >= mib/2 && !touched {
				touched = true
				later := time.Now().Add(time.Hour)
				if err := os.Chtimes(path, later, later); err != nil {
					t.Error(err)
				}
			}
		}
		_, err := c.UploadFile(ctx, path, name, touch, opts...)
		if err == nil || status.Code(err) != codes.Unknown {
			t.Errorf("%s: uploading a file changed meanwhile = %v, want a local error", name, err)
		}
		info, err := c.Stat(ctx, name)
		if status.Code(err) != codes.NotFound {
			t.Errorf("%s: Stat after the failed upload = %v, %v; want NotFound", name, info, err)
		}
	}
}

// TestUploadDeclaresTheDigestFirstOnResume: an earlier run began the
// upload with the SHA-256 up front, on a server that wants it so; a new
// run finds it committed part way, is refused without the digest, and
// resumes at the committed size with it.
func TestUploadDeclaresTheDigestFirstOnResume(t *testing.T) {
	ctx := testContext(t)
	withInfo, _ := status.New(codes.InvalidArgument, "digest first").
		WithDetails(&errdetails.ErrorInfo{Reason: wire.ReasonDigestRequired, Domain: wire.ErrorDomain})
	d := &digestFirstServer{err: withInfo.Err()}
	srv := servicetest.Start(t, servicetest.Config{Stream: []grpc.StreamServerInterceptor{d.intercept}})
	c, _ := dial(t, srv, Options{ChunkSize: 64 << 10}, nil)
	const size = 2 * mib
	path, data := randomFile(t, size)
	f := openCounting(t, path)
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	sz := int64(size)
	md := &pb.MetaData{Filename: "r.bin", Size: &sz, Sha256: sum(data), UploadId: UploadID("r.bin", st)}
	var sent int64
	_, _, err = c.send(ctx, md, io.NewSectionReader(f, 0, mib), -1, nil, &sent, nil, func(int64) {})
	if !hasReason(err, wire.ReasonUploadIncomplete, mib) {
		t.Fatalf("the earlier run failed with %v, want UPLOAD_INCOMPLETE at %d", err, mib)
	}
	waitHandled(t, ctx, srv, pb.Greeter_UploadFile_FullMethodName)

	res, err := c.uploadFrom(ctx, f, "r.bin", nil, c.transferOptions(nil))
	if err != nil {
		t.Fatal(err)
	}
	if d.refused != 1 || res.Sent > size-mib+size/2 {
		t.Errorf("refused %d uploads, sent %d bytes; want 1 refusal and the rest sent from %d", d.refused, res.Sent, mib)
	}
	wantStored(t, ctx, c, "r.bin", data)
}
