package service_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/greeter/greeter/identity"
	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/proto/wire"
	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/diskstore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// harness is a Greeter server over bufconn backed by a real disk store.
type harness struct {
	t       *testing.T
	dir     string
	store   *diskstore.Store
	client  pb.GreeterClient
	handled chan string // the full method of every call whose handler returned
}

// ownerKey lets a test pick the caller: a tiny stand-in for the auth plugin.
const ownerKey = "x-test-owner"

func newHarness(t *testing.T, opts service.Options) *harness {
	t.Helper()
	dir := t.TempDir()
	store, err := diskstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, dir: dir, store: store, handled: make(chan string, 1024)}
	stop := h.serve(store, opts)
	t.Cleanup(func() {
		stop()
		store.Close()
	})
	return h
}

// serve serves the Greeter service over store with opts (the default owner
// "alice" unless set), behind interceptors that take the caller from the
// ownerKey header and report finished handlers on h.handled. It sets
// h.client and returns the func that stops the server.
func (h *harness) serve(store service.Store, opts service.Options) func() {
	h.t.Helper()
	withOwner := func(ctx context.Context) context.Context {
		md, _ := metadata.FromIncomingContext(ctx)
		if v := md.Get(ownerKey); len(v) == 1 {
			return identity.NewContext(ctx, identity.Identity{Kind: identity.KindJWT, Issuer: "test", Name: v[0]})
		}
		return ctx
	}
	if opts.DefaultOwner == "" {
		opts.DefaultOwner = "alice"
	}
	client, stop := serveBufconn(h.t, func(r grpc.ServiceRegistrar) { service.New(store, opts).Register(r) },
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
			defer func() { h.handled <- info.FullMethod }()
			return next(withOwner(ctx), req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, next grpc.StreamHandler) error {
			defer func() { h.handled <- info.FullMethod }()
			return next(srv, &ctxStream{ServerStream: ss, ctx: withOwner(ss.Context())})
		}),
	)
	h.client = client
	return stop
}

// serveBufconn starts a gRPC server with opts on an in-memory listener,
// lets register add the services, and returns a Greeter client of it and
// the func that closes both.
func serveBufconn(tb testing.TB, register func(grpc.ServiceRegistrar), opts ...grpc.ServerOption) (pb.GreeterClient, func()) {
	tb.Helper()
	srv := grpc.NewServer(opts...)
	register(srv)
	lis := bufconn.Listen(1 << 20)
	go srv.Serve(lis)
	conn, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	return pb.NewGreeterClient(conn), func() {
		conn.Close()
		srv.Stop()
	}
}

type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *ctxStream) Context() context.Context { return s.ctx }

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitHandled blocks until the server finished handling a call of method.
func (h *harness) waitHandled(method string) {
	h.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m := <-h.handled:
			if m == method {
				return
			}
		case <-timeout:
			h.t.Fatalf("the server never finished a call of %s", method)
		}
	}
}

// assertNothingStored checks that no file is visible and no temporary is left.
func (h *harness) assertNothingStored(owner string) {
	h.t.Helper()
	files, err := h.store.List(context.Background(), owner, "", "", 10)
	if err != nil {
		h.t.Fatal(err)
	}
	if len(files) != 0 {
		h.t.Errorf("got %d visible files (%v), want none", len(files), files[0].Name)
	}
	h.assertNoTemporaries()
}

func (h *harness) assertNoTemporaries() {
	h.t.Helper()
	var left []string
	filepath.WalkDir(filepath.Join(h.dir, "tmp"), func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			left = append(left, path)
		}
		return nil
	})
	if len(left) > 0 {
		h.t.Errorf("temporaries left behind: %v", left)
	}
}

type uploadMsg = pb.UploadFileRequest

func meta(name string) *uploadMsg {
	return &uploadMsg{Request: &pb.UploadFileRequest_Metadata{Metadata: &pb.MetaData{Filename: name}}}
}

func metaWith(md *pb.MetaData) *uploadMsg {
	return &uploadMsg{Request: &pb.UploadFileRequest_Metadata{Metadata: md}}
}

func chunk(b []byte) *uploadMsg {
	return &uploadMsg{Request: &pb.UploadFileRequest_ChunkData{ChunkData: b}}
}

// send runs one upload made of msgs and returns the server's answer.
func (h *harness) send(ctx context.Context, msgs ...*uploadMsg) (*pb.StringResponse, error) {
	stream, err := h.client.UploadFile(ctx)
	if err != nil {
		return nil, err
	}
	for _, m := range msgs {
		if err := stream.Send(m); err != nil {
			break // the server ended the call; CloseAndRecv has the status
		}
	}
	return stream.CloseAndRecv()
}

func (h *harness) upload(ctx context.Context, name string, data []byte, chunkSize int) (*pb.StringResponse, error) {
	msgs := []*uploadMsg{meta(name)}
	for off := 0; off < len(data); off += chunkSize {
		msgs = append(msgs, chunk(data[off:min(off+chunkSize, len(data))]))
	}
	return h.send(ctx, msgs...)
}

func (h *harness) download(ctx context.Context, md *pb.MetaData) ([]byte, metadata.MD, error) {
	stream, err := h.client.DownloadFile(ctx, md)
	if err != nil {
		return nil, nil, err
	}
	var buf bytes.Buffer
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			hdr, _ := stream.Header()
			return buf.Bytes(), hdr, nil
		}
		if err != nil {
			return nil, nil, err
		}
		buf.Write(msg.GetChunkData())
	}
}

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func wantCode(t *testing.T, err error, code codes.Code, msgPart string) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != code {
		t.Fatalf("got %v (%q), want %v", st.Code(), st.Message(), code)
	}
	if !strings.Contains(st.Message(), msgPart) {
		t.Fatalf("got message %q, want it to mention %q", st.Message(), msgPart)
	}
}

func TestSayHello(t *testing.T) {
	h := newHarness(t, service.Options{})
	for _, c := range []struct {
		name string
		age  int32
		code codes.Code
		want string
	}{
		{"John Doe", 30, codes.OK, "Hello, John Doe! Your age is 30"},
		{"Zoë", 0, codes.OK, "Hello, Zoë! Your age is 0"},
		{"", 30, codes.InvalidArgument, "name must not be empty"},
		{strings.Repeat("a", 257), 30, codes.InvalidArgument, "at most 256 bytes"},
		{"Old", 151, codes.InvalidArgument, "age must be between 0 and 150"},
		{"Negative", -1, codes.InvalidArgument, "age must be between 0 and 150"},
	} {
		resp, err := h.client.SayHello(testCtx(t), &pb.HelloRequest{Name: c.name, Age: c.age})
		wantCode(t, err, c.code, map[bool]string{true: "", false: c.want}[c.code == codes.OK])
		if c.code == codes.OK && resp.GetMessage() != c.want {
			t.Errorf("SayHello(%q, %d) = %q, want %q", c.name, c.age, resp.GetMessage(), c.want)
		}
	}
}

func TestUploadDownloadRoundTrip(t *testing.T) {
	h := newHarness(t, service.Options{ChunkSize: 64 << 10})
	for _, c := range []struct {
		name  string
		size  int
		chunk int
	}{
		{"empty.bin", 0, 1024},
		{"one.bin", 1, 1024},
		{"exactly-one-chunk.bin", 64 << 10, 64 << 10},
		{"many/chunks/deep.bin", 3*(64<<10) + 17, 10_000},
		{"big.bin", 100 << 20, 1 << 20},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := testCtx(t)
			data := randomBytes(t, c.size)
			resp, err := h.upload(ctx, c.name, data, c.chunk)
			if err != nil {
				t.Fatal(err)
			}
			if resp.GetMessage() != "Success!" || resp.GetSize() != int64(c.size) || resp.GetSha256() != hexSum(data) {
				t.Fatalf("got %v, want Success! with size %d and sha256 %s", resp, c.size, hexSum(data))
			}
			got, hdr, err := h.download(ctx, &pb.MetaData{Filename: c.name})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("downloaded %d bytes (sha256 %s), want %d (%s)", len(got), hexSum(got), len(data), hexSum(data))
			}
			if s := hdr.Get(wire.HeaderSize); len(s) != 1 || s[0] != strconv.Itoa(c.size) {
				t.Errorf("size header %v, want %d", s, c.size)
			}
			if s := hdr.Get(wire.HeaderSHA256); len(s) != 1 || s[0] != hexSum(data) {
				t.Errorf("sha256 header %v, want %s", s, hexSum(data))
			}
		})
	}
	h.assertNoTemporaries()
}

func TestUploadTutorialNameSplit(t *testing.T) {
	h := newHarness(t, service.Options{})
	ctx := testCtx(t)
	data := []byte("hello tutorial")
	if _, err := h.send(ctx, metaWith(&pb.MetaData{Filename: "test", Extension: ".txt"}), chunk(data)); err != nil {
		t.Fatal(err)
	}
	got, _, err := h.download(ctx, &pb.MetaData{Filename: "test.txt"})
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("download of test.txt = %q, %v; want %q", got, err, data)
	}
}

func TestUploadRejections(t *testing.T) {
	const max = 1000
	h := newHarness(t, service.Options{MaxFileSize: max})
	size := func(n int64) *int64 { return &n }
	data := []byte("0123456789")
	for _, c := range []struct {
		name string
		msgs []*uploadMsg
		code codes.Code
		msg  string
	}{
		{"empty stream", nil, codes.InvalidArgument, "first message must carry metadata"},
		{"chunk first", []*uploadMsg{chunk(data)}, codes.InvalidArgument, "first message must carry metadata"},
		{"metadata twice", []*uploadMsg{meta("a"), meta("a")}, codes.InvalidArgument, "only be sent in the first"},
		{"metadata after chunks", []*uploadMsg{meta("a"), chunk(data), meta("b")}, codes.InvalidArgument, "only be sent in the first"},
		{"traversal", []*uploadMsg{meta("../../etc/passwd"), chunk(data)}, codes.InvalidArgument, `".."`},
		{"absolute", []*uploadMsg{meta("/etc/passwd"), chunk(data)}, codes.InvalidArgument, "invalid name"},
		{"backslash", []*uploadMsg{meta(`..\..\x`), chunk(data)}, codes.InvalidArgument, "invalid name"},
		{"nul", []*uploadMsg{meta("a\x00.txt"), chunk(data)}, codes.InvalidArgument, "invalid name"},
		{"bidi", []*uploadMsg{meta("invoice\u202etxt.exe"), chunk(data)}, codes.InvalidArgument, "invalid name"},
		{"empty name", []*uploadMsg{meta(""), chunk(data)}, codes.InvalidArgument, "invalid name"},
		{"too long", []*uploadMsg{meta(strings.Repeat("a", 256)), chunk(data)}, codes.InvalidArgument, "invalid name"},
		{"over max size", []*uploadMsg{meta("big"), chunk(make([]byte, 600)), chunk(make([]byte, 600))}, codes.ResourceExhausted, "maximum file size of 1000"},
		{"declared over max", []*uploadMsg{metaWith(&pb.MetaData{Filename: "big", Size: size(max + 1)})}, codes.ResourceExhausted, "exceeds the maximum"},
		{"negative size", []*uploadMsg{metaWith(&pb.MetaData{Filename: "a", Size: size(-1)})}, codes.InvalidArgument, "must not be negative"},
		{"more than declared", []*uploadMsg{metaWith(&pb.MetaData{Filename: "a", Size: size(5)}), chunk(data)}, codes.InvalidArgument, "more bytes than the declared size"},
		{"fewer than declared", []*uploadMsg{metaWith(&pb.MetaData{Filename: "a", Size: size(11)}), chunk(data)}, codes.InvalidArgument, "size does not match"},
		{"digest mismatch", []*uploadMsg{metaWith(&pb.MetaData{Filename: "a", Sha256: hexSum([]byte("other"))}), chunk(data)}, codes.InvalidArgument, "sha256 does not match"},
		{"digest not hex", []*uploadMsg{metaWith(&pb.MetaData{Filename: "a", Sha256: strings.Repeat("z", 64)}), chunk(data)}, codes.InvalidArgument, "hex"},
		{"digest wrong length", []*uploadMsg{metaWith(&pb.MetaData{Filename: "a", Sha256: "abcd"}), chunk(data)}, codes.InvalidArgument, "64 hex digits"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := h.send(testCtx(t), c.msgs...)
			wantCode(t, err, c.code, c.msg)
			h.waitHandled(pb.Greeter_UploadFile_FullMethodName)
			h.assertNothingStored("alice")
		})
	}
}

func TestUploadDeclaredSizeAndDigestAccepted(t *testing.T) {
	h := newHarness(t, service.Options{})
	data := randomBytes(t, 3000)
	n := int64(len(data))
	resp, err := h.send(testCtx(t), metaWith(&pb.MetaData{Filename: "ok.bin", Size: &n, Sha256: hexSum(data)}), chunk(data[:1000]), chunk(data[1000:]))
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetSha256() != hexSum(data) {
		t.Fatalf("got sha256 %s, want %s", resp.GetSha256(), hexSum(data))
	}
}

func TestUploadCancelledLeavesNothing(t *testing.T) {
	h := newHarness(t, service.Options{})
	ctx, cancel := context.WithCancel(testCtx(t))
	stream, err := h.client.UploadFile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(meta("partial.bin")); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := stream.Send(chunk(randomBytes(t, 64<<10))); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	h.waitHandled(pb.Greeter_UploadFile_FullMethodName)
	h.assertNothingStored("alice")
}

func TestUploadIdleTimeout(t *testing.T) {
	h := newHarness(t, service.Options{IdleTimeout: 100 * time.Millisecond})
	stream, err := h.client.UploadFile(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(meta("idle.bin")); err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(chunk([]byte("some"))); err != nil {
		t.Fatal(err)
	}
	// Send nothing more: the server must give up on its own.
	err = stream.RecvMsg(new(pb.StringResponse))
	wantCode(t, err, codes.DeadlineExceeded, "idle")
	h.waitHandled(pb.Greeter_UploadFile_FullMethodName)
	h.assertNothingStored("alice")
}

func TestConcurrentUploadsToOneNameNeverInterleave(t *testing.T) {
	h := newHarness(t, service.Options{})
	const writers = 6
	contents := make([][]byte, writers)
	var wg sync.WaitGroup
	for i := range writers {
		contents[i] = bytes.Repeat([]byte{byte('a' + i)}, 512<<10)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := h.upload(testCtx(t), "same.bin", contents[i], 32<<10); err != nil {
				t.Errorf("writer %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	got, _, err := h.download(testCtx(t), &pb.MetaData{Filename: "same.bin"})
	if err != nil {
		t.Fatal(err)
	}
	match := -1
	for i, c := range contents {
		if bytes.Equal(got, c) {
			match = i
		}
	}
	if match < 0 {
		t.Fatalf("stored file (%d bytes, sha256 %s) equals none of the uploads", len(got), hexSum(got))
	}
	h.assertNoTemporaries()
}

func TestDownloadErrorsAndRanges(t *testing.T) {
	h := newHarness(t, service.Options{ChunkSize: 1000})
	ctx := testCtx(t)
	data := randomBytes(t, 5000)
	if _, err := h.upload(ctx, "r.bin", data, 4096); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		md   *pb.MetaData
		code codes.Code
		msg  string
		want []byte
	}{
		{"missing", &pb.MetaData{Filename: "nope.bin"}, codes.NotFound, `"nope.bin" not found`, nil},
		{"invalid name", &pb.MetaData{Filename: "../r.bin"}, codes.InvalidArgument, "invalid name", nil},
		{"offset past end", &pb.MetaData{Filename: "r.bin", Offset: 5001}, codes.OutOfRange, "past the end", nil},
		{"negative offset", &pb.MetaData{Filename: "r.bin", Offset: -1}, codes.InvalidArgument, "offset must not be negative", nil},
		{"negative limit", &pb.MetaData{Filename: "r.bin", Limit: -1}, codes.InvalidArgument, "limit must not be negative", nil},
		{"offset at end", &pb.MetaData{Filename: "r.bin", Offset: 5000}, codes.OK, "", []byte{}},
		{"middle range", &pb.MetaData{Filename: "r.bin", Offset: 1234, Limit: 2100}, codes.OK, "", data[1234:3334]},
		{"tail", &pb.MetaData{Filename: "r.bin", Offset: 4000}, codes.OK, "", data[4000:]},
		{"limit past end", &pb.MetaData{Filename: "r.bin", Offset: 10, Limit: 99999}, codes.OK, "", data[10:]},
		{"another owner's file", &pb.MetaData{Filename: "r.bin"}, codes.NotFound, "not found", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := ctx
			if c.name == "another owner's file" {
				ctx = metadata.AppendToOutgoingContext(ctx, ownerKey, "mallory")
			}
			got, hdr, err := h.download(ctx, c.md)
			wantCode(t, err, c.code, c.msg)
			if c.code != codes.OK {
				return
			}
			if !bytes.Equal(got, c.want) {
				t.Fatalf("got %d bytes, want %d", len(got), len(c.want))
			}
			if s := hdr.Get(wire.HeaderSHA256); len(s) != 1 || s[0] != hexSum(data) {
				t.Errorf("a ranged download must announce the whole file's sha256: got %v", s)
			}
		})
	}
}

func TestListStatDelete(t *testing.T) {
	h := newHarness(t, service.Options{})
	ctx := testCtx(t)
	names := []string{"a.txt", "docs/b.txt", "docs/c.txt", "docs/sub/d.txt", "e.txt"}
	for _, n := range names {
		if _, err := h.upload(ctx, n, []byte(n), 10); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.upload(metadata.AppendToOutgoingContext(ctx, ownerKey, "bob"), "bob-only.txt", []byte("b"), 10); err != nil {
		t.Fatal(err)
	}

	var got []string
	req := &pb.ListFilesRequest{PageSize: 2}
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		resp, err := h.client.ListFiles(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range resp.GetFiles() {
			got = append(got, f.GetName())
		}
		if resp.GetNextPageToken() == "" {
			break
		}
		req.PageToken = resp.GetNextPageToken()
	}
	if fmt.Sprint(got) != fmt.Sprint(names) {
		t.Fatalf("listing = %v, want %v", got, names)
	}

	resp, err := h.client.ListFiles(ctx, &pb.ListFilesRequest{Prefix: "docs/"})
	if err != nil || len(resp.GetFiles()) != 3 {
		t.Fatalf("prefix docs/ listed %v, %v; want 3 files", resp.GetFiles(), err)
	}
	_, err = h.client.ListFiles(ctx, &pb.ListFilesRequest{Prefix: "../"})
	wantCode(t, err, codes.InvalidArgument, "invalid prefix")
	_, err = h.client.ListFiles(ctx, &pb.ListFilesRequest{PageToken: "!!!"})
	wantCode(t, err, codes.InvalidArgument, "page_token")

	info, err := h.client.StatFile(ctx, &pb.MetaData{Filename: "docs/", Extension: "b.txt"})
	if err != nil {
		t.Fatal(err)
	}
	if info.GetSize() != int64(len("docs/b.txt")) || info.GetSha256() != hexSum([]byte("docs/b.txt")) {
		t.Fatalf("stat = %v, want size %d sha256 %s", info, len("docs/b.txt"), hexSum([]byte("docs/b.txt")))
	}
	_, err = h.client.StatFile(ctx, &pb.MetaData{Filename: "bob-only.txt"})
	wantCode(t, err, codes.NotFound, "not found")

	if _, err := h.client.DeleteFile(ctx, &pb.MetaData{Filename: "docs/sub/d.txt"}); err != nil {
		t.Fatal(err)
	}
	_, err = h.client.DeleteFile(ctx, &pb.MetaData{Filename: "docs/sub/d.txt"})
	wantCode(t, err, codes.NotFound, "not found")
	_, err = h.client.DeleteFile(ctx, &pb.MetaData{Filename: "bob-only.txt"})
	wantCode(t, err, codes.NotFound, "not found")
	_, err = h.client.DeleteFile(ctx, &pb.MetaData{Filename: "a/../b"})
	wantCode(t, err, codes.InvalidArgument, "invalid name")
}

func TestNoIdentityNoDefaultOwnerIsUnauthenticated(t *testing.T) {
	store, err := diskstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	s := service.New(store, service.Options{})
	_, err = s.StatFile(context.Background(), &pb.MetaData{Filename: "a"})
	wantCode(t, err, codes.Unauthenticated, "no authenticated caller")
}

// TestUploadMemoryIsBounded uploads 256 MiB and samples the heap that survives each garbage collection: it
// must stay far below the file size, proving the upload streams to disk.
func TestUploadMemoryIsBounded(t *testing.T) {
	h := newHarness(t, service.Options{})
	ctx := testCtx(t)
	const total, chunkSize = 256 << 20, 1 << 20
	const bound = 32 << 20 // growth of the live heap over its level before the upload

	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	// Collect first: the metric reports the last collection, which may
	// still count an earlier test's buffers.
	runtime.GC()
	metrics.Read(sample)
	base := sample[0].Value.Uint64()
	var peak uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(sample)
			peak = max(peak, sample[0].Value.Uint64())
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()

	stream, err := h.client.UploadFile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(meta("large.bin")); err != nil {
		t.Fatal(err)
	}
	buf := randomBytes(t, chunkSize)
	for range total / chunkSize {
		if err := stream.Send(chunk(buf)); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := stream.CloseAndRecv()
	close(stop)
	<-sampled
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetSize() != total {
		t.Fatalf("stored %d bytes, want %d", resp.GetSize(), total)
	}
	grew := peak - min(peak, base)
	if grew > bound {
		t.Fatalf("live heap grew by %d MiB during a %d MiB upload, want at most %d MiB", grew>>20, total>>20, bound>>20)
	}
	t.Logf("live heap grew by %.1f MiB (from %.1f MiB) during a %d MiB upload", float64(grew)/(1<<20), float64(base)/(1<<20), total>>20)
}

// TestDownloadStalledReaderTimesOut starts a download and never reads: once
// flow control stops the server's sends, the idle timer ends the call, and
// the handler returns instead of holding the file and a transfer slot.
func TestDownloadStalledReaderTimesOut(t *testing.T) {
	h := newHarness(t, service.Options{ChunkSize: 64 << 10, IdleTimeout: 200 * time.Millisecond})
	ctx := testCtx(t)
	if _, err := h.upload(ctx, "big.bin", randomBytes(t, 32<<20), 1<<20); err != nil {
		t.Fatal(err)
	}
	h.waitHandled(pb.Greeter_UploadFile_FullMethodName)
	stream, err := h.client.DownloadFile(ctx, &pb.MetaData{Filename: "big.bin"})
	if err != nil {
		t.Fatal(err)
	}
	h.waitHandled(pb.Greeter_DownloadFile_FullMethodName)
	for {
		if _, err = stream.Recv(); err != nil {
			break
		}
	}
	wantCode(t, err, codes.DeadlineExceeded, "download stalled")
}
