package service_test

import (
	"context"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/proto/wire"
	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/diskstore"
)

// rharness is a harness whose server can be restarted on the same data
// directory and whose store reports how far resumable uploads have
// written.
type rharness struct {
	*harness
	opts      service.Options
	storeOpts []diskstore.Option
	// wrap picks what the server sees of the disk store.
	wrap     func(*diskstore.Store) service.Store
	progress *progress
	stop     func()
}

func newResumableHarness(t *testing.T, opts service.Options, storeOpts ...diskstore.Option) *rharness {
	t.Helper()
	h := &rharness{
		harness:   &harness{t: t, dir: t.TempDir(), handled: make(chan string, 1024)},
		opts:      opts,
		storeOpts: storeOpts,
		progress:  &progress{},
	}
	h.wrap = func(s *diskstore.Store) service.Store { return &observedStore{Store: s, p: h.progress} }
	h.start()
	t.Cleanup(func() { h.stop() })
	return h
}

// start opens the store and serves it over a new bufconn.
func (h *rharness) start() {
	t := h.t
	t.Helper()
	store, err := diskstore.Open(h.dir, h.storeOpts...)
	if err != nil {
		t.Fatal(err)
	}
	h.store = store
	stop := h.serve(h.wrap(store), h.opts)
	h.stop = func() {
		stop()
		store.Close()
	}
}

// restart stops the server and closes the store, then opens a new store on
// the same directory and serves it: what a server restart looks like.
func (h *rharness) restart() {
	h.t.Helper()
	h.stop()
	h.start()
}

// progress lets a test wait until the server has written a resumable
// upload up to some size, without sleeping.
type progress struct {
	mu      sync.Mutex
	target  int64
	reached chan struct{}
}

// at returns a channel that is closed once a resumable upload's file has
// reached n bytes on the server.
func (p *progress) at(n int64) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.target, p.reached = n, make(chan struct{})
	return p.reached
}

func (p *progress) wrote(total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reached != nil && total >= p.target {
		close(p.reached)
		p.reached = nil
	}
}

// observedStore is the real disk store with resumable uploads that report
// their progress.
type observedStore struct {
	*diskstore.Store
	p *progress
}

func (o *observedStore) BeginResumable(ctx context.Context, owner string, r service.Resume) (service.ResumableUpload, error) {
	up, err := o.Store.BeginResumable(ctx, owner, r)
	if err != nil {
		return nil, err
	}
	return &observedUpload{ResumableUpload: up, p: o.p}, nil
}

type observedUpload struct {
	service.ResumableUpload
	p *progress
}

func (u *observedUpload) Write(b []byte) (int, error) {
	n, err := u.ResumableUpload.Write(b)
	u.p.wrote(u.ResumableUpload.Written())
	return n, err
}

// resumeMeta is the first message of a resumable upload of data.
func resumeMeta(id, name string, data []byte, offset int64) *uploadMsg {
	size := int64(len(data))
	return metaWith(&pb.MetaData{Filename: name, Size: &size, Sha256: hexSum(data), UploadId: id, Offset: offset})
}

// resumeMsgs is a whole resumable upload of data[offset:] in chunks.
func resumeMsgs(id, name string, data []byte, offset int64, chunkSize int) []*uploadMsg {
	msgs := []*uploadMsg{resumeMeta(id, name, data, offset)}
	for off := int(offset); off < len(data); off += chunkSize {
		msgs = append(msgs, chunk(data[off:min(off+chunkSize, len(data))]))
	}
	return msgs
}

// asOwner makes a context whose calls run as owner.
func asOwner(ctx context.Context, owner string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, ownerKey, owner)
}

// committed returns what QueryUpload reports for id.
func (h *rharness) committed(ctx context.Context, id string) (int64, error) {
	st, err := h.client.QueryUpload(ctx, &pb.QueryUploadRequest{UploadId: id})
	if err != nil {
		return 0, err
	}
	if st.GetUploadId() != id || st.GetComplete() {
		h.t.Errorf("QueryUpload(%q) = %v, want the same upload_id, not complete", id, st)
	}
	return st.GetCommittedSize(), nil
}

func (h *rharness) wantCommitted(ctx context.Context, id string, want int64) {
	h.t.Helper()
	got, err := h.committed(ctx, id)
	if err != nil || got != want {
		h.t.Fatalf("QueryUpload(%q) = %d, %v; want %d, nil", id, got, err, want)
	}
}

func (h *rharness) wantNoUpload(ctx context.Context, id string) {
	h.t.Helper()
	_, err := h.committed(ctx, id)
	wantCode(h.t, err, codes.NotFound, "not found")
}

// interrupted sends the start of a resumable upload (data[offset:cut]),
// waits until the server has written at least reach bytes of the file and
// then cancels the call, as a broken connection would. It returns once the
// server's handler has finished.
func (h *rharness) interrupted(ctx context.Context, id, name string, data []byte, offset, cut, reach int64, chunkSize int) {
	h.t.Helper()
	reached := h.progress.at(reach)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := h.client.UploadFile(cctx)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, m := range resumeMsgs(id, name, data[:cut], offset, chunkSize) {
		if m.GetMetadata() != nil {
			m = resumeMeta(id, name, data, offset) // declare the whole file
		}
		if err := stream.Send(m); err != nil {
			h.t.Fatalf("Send: %v", err)
		}
	}
	select {
	case <-reached:
	case <-ctx.Done():
		h.t.Fatalf("the server never wrote %d bytes", reach)
	}
	cancel()
	h.waitHandled(pb.Greeter_UploadFile_FullMethodName)
}

// partial uploads data[offset:cut] and half-closes, which leaves an
// incomplete upload committed up to cut.
func (h *rharness) partial(ctx context.Context, id, name string, data []byte, offset, cut int64) {
	h.t.Helper()
	msgs := resumeMsgs(id, name, data[:cut], offset, 100)
	msgs[0] = resumeMeta(id, name, data, offset)
	_, err := h.send(ctx, msgs...)
	wantCode(h.t, err, codes.FailedPrecondition, "upload incomplete: "+strconv.FormatInt(cut, 10)+" of "+strconv.Itoa(len(data))+" bytes")
	wantErrorInfo(h.t, err, wire.ReasonUploadIncomplete, cut)
	h.waitHandled(pb.Greeter_UploadFile_FullMethodName)
}

// wantErrorInfo checks that err carries the greeter ErrorInfo reason with
// the committed size.
func wantErrorInfo(t *testing.T, err error, reason string, committed int64) {
	t.Helper()
	st, _ := status.FromError(err)
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			if info.GetReason() != reason || info.GetDomain() != "greeter" || info.GetMetadata()["committed_size"] != strconv.FormatInt(committed, 10) {
				t.Fatalf("got ErrorInfo %v, want reason %s, domain greeter, committed_size %d", info, reason, committed)
			}
			return
		}
	}
	t.Fatalf("got details %v in %v, want an ErrorInfo", st.Details(), err)
}

// assertNoUploadState checks that nothing is left below uploads/.
func (h *rharness) assertNoUploadState() {
	h.t.Helper()
	var left []string
	filepath.WalkDir(filepath.Join(h.dir, "uploads"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			left = append(left, p)
		}
		return nil
	})
	if len(left) > 0 {
		h.t.Errorf("upload state left behind: %v", left)
	}
}

// assertInvisible checks that name cannot be seen through the API.
func (h *rharness) assertInvisible(ctx context.Context, name string) {
	h.t.Helper()
	_, err := h.client.StatFile(ctx, &pb.MetaData{Filename: name})
	wantCode(h.t, err, codes.NotFound, "not found")
	_, _, err = h.download(ctx, &pb.MetaData{Filename: name})
	wantCode(h.t, err, codes.NotFound, "not found")
	list, err := h.client.ListFiles(ctx, &pb.ListFilesRequest{})
	if err != nil || len(list.GetFiles()) != 0 {
		h.t.Errorf("ListFiles = %v, %v; want no files", list.GetFiles(), err)
	}
}

// assertStored checks that name holds data.
func (h *rharness) assertStored(ctx context.Context, name string, data []byte) {
	h.t.Helper()
	got, hdr, err := h.download(ctx, &pb.MetaData{Filename: name})
	if err != nil {
		h.t.Fatal(err)
	}
	if hexSum(got) != hexSum(data) || hdr.Get(wire.HeaderSHA256)[0] != hexSum(data) {
		h.t.Fatalf("got %d bytes with sha256 %s (header %v), want %d bytes with sha256 %s",
			len(got), hexSum(got), hdr.Get(wire.HeaderSHA256), len(data), hexSum(data))
	}
}

func TestResumableInterruptAndResume(t *testing.T) {
	h := newResumableHarness(t, service.Options{})
	ctx := testCtx(t)
	data := randomBytes(t, 1<<20)

	h.interrupted(ctx, "u1", "big.bin", data, 0, 512<<10, 256<<10, 64<<10)
	committed, err := h.committed(ctx, "u1")
	if err != nil {
		t.Fatal(err)
	}
	if committed < 256<<10 || committed > 512<<10 {
		t.Fatalf("committed %d bytes after the server wrote %d of the %d sent, want between them", committed, 256<<10, 512<<10)
	}
	h.assertInvisible(ctx, "big.bin")
	h.assertNoTemporaries()

	resp, err := h.send(ctx, resumeMsgs("u1", "big.bin", data, committed, 64<<10)...)
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetSize() != int64(len(data)) || resp.GetSha256() != hexSum(data) {
		t.Fatalf("got %d bytes, sha256 %s; want %d bytes, sha256 %s", resp.GetSize(), resp.GetSha256(), len(data), hexSum(data))
	}
	h.assertStored(ctx, "big.bin", data)
	h.waitHandled(pb.Greeter_UploadFile_FullMethodName)
	// Completed uploads are forgotten (see QueryUpload).
	h.wantNoUpload(ctx, "u1")
	h.assertNoUploadState()
	h.assertNoTemporaries()
}

func TestResumableInOneGo(t *testing.T) {
	h := newResumableHarness(t, service.Options{})
	ctx := testCtx(t)
	for _, size := range []int{0, 1, 1000} {
		data := randomBytes(t, size)
		name := "f" + strconv.Itoa(size)
		if _, err := h.send(ctx, resumeMsgs("id-"+name, name, data, 0, 300)...); err != nil {
			t.Fatalf("%d bytes: %v", size, err)
		}
		h.assertStored(ctx, name, data)
	}
	h.assertNoUploadState()
}

func TestResumableRejections(t *testing.T) {
	h := newResumableHarness(t, service.Options{MaxFileSize: 1 << 20})
	ctx := testCtx(t)
	data := randomBytes(t, 1000)
	other := randomBytes(t, 1000)
	size := func(n int64) *int64 { return &n }
	const none = -1 // no upload state afterwards
	for i, c := range []struct {
		name string
		// prior commits this many bytes of data as "r<i>"/"f" first.
		prior int64
		msgs  func(id string) []*uploadMsg
		code  codes.Code
		msg   string
		// info is the ErrorInfo reason expected, with committed size
		// infoSize.
		info     string
		infoSize int64
		// after is the committed size QueryUpload reports afterwards.
		after int64
	}{
		{"offset without upload_id", 0, func(string) []*uploadMsg {
			return []*uploadMsg{metaWith(&pb.MetaData{Filename: "f", Offset: 10}), chunk(data)}
		}, codes.InvalidArgument, "offset requires upload_id", "", 0, none},
		{"invalid upload_id", 0, func(string) []*uploadMsg {
			return []*uploadMsg{resumeMeta("a/b", "f", data, 0)}
		}, codes.InvalidArgument, "invalid upload_id", "", 0, none},
		{"upload_id too long", 0, func(string) []*uploadMsg {
			return []*uploadMsg{resumeMeta(strings.Repeat("a", 129), "f", data, 0)}
		}, codes.InvalidArgument, "invalid upload_id", "", 0, none},
		{"no size", 0, func(id string) []*uploadMsg {
			return []*uploadMsg{metaWith(&pb.MetaData{Filename: "f", Sha256: hexSum(data), UploadId: id}), chunk(data)}
		}, codes.InvalidArgument, "resumable uploads must declare size and sha256", "", 0, none},
		{"no sha256", 0, func(id string) []*uploadMsg {
			return []*uploadMsg{metaWith(&pb.MetaData{Filename: "f", Size: size(1000), UploadId: id}), chunk(data)}
		}, codes.InvalidArgument, "resumable uploads must declare size and sha256", "", 0, none},
		{"over max size", 0, func(id string) []*uploadMsg {
			return []*uploadMsg{metaWith(&pb.MetaData{Filename: "f", Size: size(2 << 20), Sha256: hexSum(data), UploadId: id})}
		}, codes.ResourceExhausted, "exceeds the maximum", "", 0, none},
		{"invalid name", 0, func(id string) []*uploadMsg {
			return []*uploadMsg{resumeMeta(id, "../x", data, 0)}
		}, codes.InvalidArgument, "invalid name", "", 0, none},
		{"negative offset", 0, func(id string) []*uploadMsg {
			return []*uploadMsg{resumeMeta(id, "f", data, -5)}
		}, codes.InvalidArgument, "offset must not be negative", "", 0, none},
		{"new upload at an offset", 0, func(id string) []*uploadMsg {
			return resumeMsgs(id, "f", data, 10, 500)
		}, codes.FailedPrecondition, "committed size of 0 bytes", wire.ReasonOffsetMismatch, 0, none},
		{"resume before the committed size", 400, func(id string) []*uploadMsg {
			return resumeMsgs(id, "f", data, 300, 500)
		}, codes.FailedPrecondition, "committed size of 400 bytes", wire.ReasonOffsetMismatch, 400, 400},
		{"resume after the committed size", 400, func(id string) []*uploadMsg {
			return resumeMsgs(id, "f", data, 500, 500)
		}, codes.FailedPrecondition, "committed size of 400 bytes", wire.ReasonOffsetMismatch, 400, 400},
		{"resume with a negative offset", 400, func(id string) []*uploadMsg {
			return []*uploadMsg{resumeMeta(id, "f", data, -1), chunk(data)}
		}, codes.InvalidArgument, "offset must not be negative", "", 0, 400},
		{"resume another name", 400, func(id string) []*uploadMsg {
			return resumeMsgs(id, "g", data, 400, 500)
		}, codes.FailedPrecondition, "was started for a different file", "", 0, 400},
		{"resume another size", 400, func(id string) []*uploadMsg {
			return resumeMsgs(id, "f", data[:999], 400, 500)
		}, codes.FailedPrecondition, "was started for a different file", "", 0, 400},
		{"resume another digest", 400, func(id string) []*uploadMsg {
			return resumeMsgs(id, "f", other, 400, 500)
		}, codes.FailedPrecondition, "was started for a different file", "", 0, 400},
		{"more bytes than declared", 400, func(id string) []*uploadMsg {
			return append(resumeMsgs(id, "f", data, 400, 500), chunk([]byte("x")))
		}, codes.InvalidArgument, "more bytes than the declared size of 1000", "", 0, none},
		{"digest mismatch at the end", 400, func(id string) []*uploadMsg {
			msgs := resumeMsgs(id, "f", other, 400, 300)
			msgs[0] = resumeMeta(id, "f", data, 400)
			return msgs
		}, codes.InvalidArgument, "sha256 does not match", "", 0, none},
		{"metadata twice", 400, func(id string) []*uploadMsg {
			return []*uploadMsg{resumeMeta(id, "f", data, 400), chunk(data[400:500]), resumeMeta(id, "f", data, 500)}
		}, codes.InvalidArgument, "only be sent in the first", "", 0, 500},
		{"half-close early", 400, func(id string) []*uploadMsg {
			return []*uploadMsg{resumeMeta(id, "f", data, 400), chunk(data[400:700])}
		}, codes.FailedPrecondition, "upload incomplete: 700 of 1000 bytes", wire.ReasonUploadIncomplete, 700, 700},
	} {
		t.Run(c.name, func(t *testing.T) {
			id := "r" + strconv.Itoa(i)
			if c.prior > 0 {
				h.partial(ctx, id, "f", data, 0, c.prior)
			}
			_, err := h.send(ctx, c.msgs(id)...)
			wantCode(t, err, c.code, c.msg)
			if c.info != "" {
				wantErrorInfo(t, err, c.info, c.infoSize)
			}
			h.waitHandled(pb.Greeter_UploadFile_FullMethodName)
			if c.after == none {
				h.wantNoUpload(ctx, id)
			} else {
				h.wantCommitted(ctx, id, c.after)
			}
			h.assertInvisible(ctx, "f")
			h.assertInvisible(ctx, "g")
			h.assertNoTemporaries()
		})
	}
}

func TestQueryUploadErrors(t *testing.T) {
	h := newResumableHarness(t, service.Options{})
	ctx := testCtx(t)
	for _, c := range []struct {
		id   string
		code codes.Code
		msg  string
	}{
		{"", codes.InvalidArgument, "invalid upload_id"},
		{"../etc", codes.InvalidArgument, "invalid upload_id"},
		{"a.b", codes.InvalidArgument, "invalid upload_id"},
		{strings.Repeat("z", 129), codes.InvalidArgument, "invalid upload_id"},
		{strings.Repeat("z", 128), codes.NotFound, "not found"},
		{"never-started_1", codes.NotFound, `upload "never-started_1" not found`},
	} {
		_, err := h.client.QueryUpload(ctx, &pb.QueryUploadRequest{UploadId: c.id})
		wantCode(t, err, c.code, c.msg)
	}
}

// TestResumableOtherOwner checks that incomplete uploads live in their
// owner's namespace: for anyone else the upload ID is unused.
func TestResumableOtherOwner(t *testing.T) {
	h := newResumableHarness(t, service.Options{})
	ctx := testCtx(t)
	bob := asOwner(ctx, "bob")
	data := randomBytes(t, 1000)
	h.partial(ctx, "shared-id", "f", data, 0, 600)

	_, err := h.client.QueryUpload(bob, &pb.QueryUploadRequest{UploadId: "shared-id"})
	wantCode(t, err, codes.NotFound, "not found")
	// Bob resuming at alice's offset finds no upload of his own to resume:
	// the same answer as for any unknown ID, so nothing leaks.
	_, err = h.send(bob, resumeMsgs("shared-id", "f", data, 600, 200)...)
	wantCode(t, err, codes.FailedPrecondition, "committed size of 0 bytes")
	wantErrorInfo(t, err, wire.ReasonOffsetMismatch, 0)
	h.waitHandled(pb.Greeter_UploadFile_FullMethodName)

	// Bob's own upload under the same ID does not touch alice's.
	other := randomBytes(t, 500)
	if _, err := h.send(bob, resumeMsgs("shared-id", "f", other, 0, 200)...); err != nil {
		t.Fatal(err)
	}
	h.waitHandled(pb.Greeter_UploadFile_FullMethodName)
	h.assertStored(bob, "f", other)
	h.assertInvisible(ctx, "f")
	h.wantCommitted(ctx, "shared-id", 600)

	if _, err := h.send(ctx, resumeMsgs("shared-id", "f", data, 600, 200)...); err != nil {
		t.Fatal(err)
	}
	h.assertStored(ctx, "f", data)
	h.assertStored(bob, "f", other)
}

func TestResumableNeverVisibleWhileInProgress(t *testing.T) {
	h := newResumableHarness(t, service.Options{})
	ctx := testCtx(t)
	data := randomBytes(t, 256<<10)
	reached := h.progress.at(128 << 10)
	stream, err := h.client.UploadFile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range resumeMsgs("live", "live.bin", data[:128<<10], 0, 32<<10) {
		if m.GetMetadata() != nil {
			m = resumeMeta("live", "live.bin", data, 0)
		}
		if err := stream.Send(m); err != nil {
			t.Fatal(err)
		}
	}
	<-reached
	// The stream is open and holds the upload.
	h.assertInvisible(ctx, "live.bin")
	if _, err := h.committed(ctx, "live"); err != nil {
		t.Fatalf("QueryUpload during the upload = %v, want its committed size", err)
	}
	_, err = h.send(ctx, resumeMsgs("live", "live.bin", data, 0, 32<<10)...)
	wantCode(t, err, codes.Aborted, `upload "live" is in progress on another stream`)
	h.waitHandled(pb.Greeter_UploadFile_FullMethodName)

	for off := 128 << 10; off < len(data); off += 32 << 10 {
		if err := stream.Send(chunk(data[off : off+32<<10])); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		t.Fatal(err)
	}
	h.assertStored(ctx, "live.bin", data)
}

// TestResumableCheckpoints checks that an upload saves its progress while
// bytes arrive, not only when the stream ends.
func TestResumableCheckpoints(t *testing.T) {
	const interval = 64 << 10
	h := newResumableHarness(t, service.Options{}, diskstore.WithCheckpointInterval(interval))
	ctx := testCtx(t)
	data := randomBytes(t, 1<<20)
	const reach = 300 << 10
	reached := h.progress.at(reach)
	stream, err := h.client.UploadFile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range resumeMsgs("cp", "cp.bin", data[:512<<10], 0, 16<<10) {
		if m.GetMetadata() != nil {
			m = resumeMeta("cp", "cp.bin", data, 0)
		}
		if err := stream.Send(m); err != nil {
			t.Fatal(err)
		}
	}
	<-reached
	got, err := h.committed(ctx, "cp")
	if err != nil {
		t.Fatal(err)
	}
	if got <= reach-interval || got > 512<<10 {
		t.Fatalf("committed %d bytes while the server had written at least %d, want more than %d", got, reach, reach-interval)
	}
	if _, err := stream.CloseAndRecv(); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("half-close after 512 KiB = %v, want FailedPrecondition", err)
	}
	h.wantCommitted(ctx, "cp", 512<<10)
}

func TestResumableRestart(t *testing.T) {
	h := newResumableHarness(t, service.Options{})
	ctx := testCtx(t)
	data := randomBytes(t, 512<<10)

	h.interrupted(ctx, "rs", "restart.bin", data, 0, 256<<10, 100<<10, 32<<10)
	first, err := h.committed(ctx, "rs")
	if err != nil {
		t.Fatal(err)
	}
	h.restart()
	h.wantCommitted(ctx, "rs", first)
	h.assertInvisible(ctx, "restart.bin")

	h.partial(ctx, "rs", "restart.bin", data, first, 400<<10)
	h.restart()
	h.wantCommitted(ctx, "rs", 400<<10)
	if _, err := h.send(ctx, resumeMsgs("rs", "restart.bin", data, 400<<10, 32<<10)...); err != nil {
		t.Fatal(err)
	}
	h.assertStored(ctx, "restart.bin", data)
	h.assertNoUploadState()
}

func TestResumableExpiry(t *testing.T) {
	clock := &testClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	h := newResumableHarness(t, service.Options{ResumableTTL: time.Hour}, diskstore.WithClock(clock.Now))
	ctx := testCtx(t)
	data := randomBytes(t, 1000)
	h.partial(ctx, "exp", "f", data, 0, 500)

	clock.Advance(50 * time.Minute)
	h.wantCommitted(ctx, "exp", 500)
	if n, err := h.store.CleanExpiredUploads(time.Hour); err != nil || n != 0 {
		t.Fatalf("CleanExpiredUploads(1h) after 50 min = %d, %v; want 0, nil", n, err)
	}
	clock.Advance(20 * time.Minute)
	h.wantNoUpload(ctx, "exp")
	if n, err := h.store.CleanExpiredUploads(time.Hour); err != nil || n != 1 {
		t.Fatalf("CleanExpiredUploads(1h) after 70 min = %d, %v; want 1, nil", n, err)
	}
	h.assertNoUploadState()
	_, err := h.send(ctx, resumeMsgs("exp", "f", data, 500, 250)...)
	wantCode(t, err, codes.FailedPrecondition, "committed size of 0 bytes")
	wantErrorInfo(t, err, wire.ReasonOffsetMismatch, 0)
	h.waitHandled(pb.Greeter_UploadFile_FullMethodName)
	h.assertInvisible(ctx, "f")
}

// TestResumableExpiryWithoutJanitor checks that the service's TTL holds even
// when nothing cleans up: an expired upload starts anew.
func TestResumableExpiryWithoutJanitor(t *testing.T) {
	clock := &testClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	h := newResumableHarness(t, service.Options{ResumableTTL: time.Hour}, diskstore.WithClock(clock.Now))
	ctx := testCtx(t)
	data := randomBytes(t, 1000)
	h.partial(ctx, "exp", "f", data, 0, 500)
	clock.Advance(2 * time.Hour)
	if _, err := h.send(ctx, resumeMsgs("exp", "f", data, 0, 300)...); err != nil {
		t.Fatal(err)
	}
	h.assertStored(ctx, "f", data)
	h.assertNoUploadState()
}

type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestResumablePerOwnerCap(t *testing.T) {
	h := newResumableHarness(t, service.Options{}, diskstore.WithMaxUploadsPerOwner(2))
	ctx := testCtx(t)
	data := randomBytes(t, 1000)
	h.partial(ctx, "a", "a", data, 0, 100)
	h.partial(ctx, "b", "b", data, 0, 100)
	_, err := h.send(ctx, resumeMsgs("c", "c", data, 0, 500)...)
	wantCode(t, err, codes.ResourceExhausted, "too many incomplete uploads")
	h.waitHandled(pb.Greeter_UploadFile_FullMethodName)
	h.wantNoUpload(ctx, "c")

	// The cap is per owner, and resuming does not count as a new upload.
	if _, err := h.send(asOwner(ctx, "bob"), resumeMsgs("c", "c", data, 0, 500)...); err != nil {
		t.Fatalf("bob's upload: %v", err)
	}
	if _, err := h.send(ctx, resumeMsgs("a", "a", data, 100, 500)...); err != nil {
		t.Fatalf("resuming a: %v", err)
	}
	if _, err := h.send(ctx, resumeMsgs("c", "c", data, 0, 500)...); err != nil {
		t.Fatalf("c once a completed: %v", err)
	}
	// The cap is on incomplete uploads, not on plain ones.
	if _, err := h.upload(ctx, "plain", data, 500); err != nil {
		t.Fatalf("plain upload at the cap: %v", err)
	}
}

// TestResumableCommittedNeverDecreases breaks a 16 MiB upload at five
// random points, each time resuming from what QueryUpload reports, and then
// finishes it.
func TestResumableCommittedNeverDecreases(t *testing.T) {
	h := newResumableHarness(t, service.Options{})
	ctx := testCtx(t)
	const size, chunkSize = 16 << 20, 256 << 10
	data := randomBytes(t, size)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))

	var committed, sent int64
	for i := range 5 {
		// A cut in the part not yet committed; the server has written at
		// least reach bytes when the call breaks, some more may be in
		// flight.
		cut := committed + 1 + rng.Int64N(size-committed-1)
		reach := max(committed+1, cut-chunkSize)
		h.interrupted(ctx, "big", "big.bin", data, committed, cut, reach, chunkSize)
		sent += cut - committed
		got, err := h.committed(ctx, "big")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("interruption %d: sent up to %d, committed %d", i, cut, got)
		if got < committed || got < reach || got > cut {
			t.Fatalf("interruption %d: committed %d bytes, want at least %d (before) and %d (written), at most %d (sent)",
				i, got, committed, reach, cut)
		}
		committed = got
		h.assertInvisible(ctx, "big.bin")
	}
	if _, err := h.send(ctx, resumeMsgs("big", "big.bin", data, committed, chunkSize)...); err != nil {
		t.Fatal(err)
	}
	sent += size - committed
	h.assertStored(ctx, "big.bin", data)
	if sent >= 2*size {
		t.Errorf("sent %d bytes for a %d byte file, want less than twice its size", sent, size)
	}
	h.assertNoUploadState()
}

// TestResumableNeedsResumableStore checks the answer of a server whose
// store cannot keep uploads.
func TestResumableNeedsResumableStore(t *testing.T) {
	h := newResumableHarness(t, service.Options{})
	h.wrap = func(s *diskstore.Store) service.Store { return struct{ service.Store }{s} }
	h.restart()
	ctx := testCtx(t)
	data := randomBytes(t, 10)
	_, err := h.send(ctx, resumeMsgs("x", "f", data, 0, 10)...)
	wantCode(t, err, codes.Unimplemented, "resumable uploads are not supported")
	_, err = h.client.QueryUpload(ctx, &pb.QueryUploadRequest{UploadId: "x"})
	wantCode(t, err, codes.Unimplemented, "resumable uploads are not supported")
	// Without an upload_id an offset is a client error whatever the store.
	_, err = h.send(ctx, metaWith(&pb.MetaData{Filename: "f", Offset: 3}))
	wantCode(t, err, codes.InvalidArgument, "offset requires upload_id")
}

// TestResumableDataDirLayout pins where incomplete uploads live, so that
// operators and the janitor agree: uploads/<owner>/<id>.{part,json}.
func TestResumableDataDirLayout(t *testing.T) {
	h := newResumableHarness(t, service.Options{})
	ctx := testCtx(t)
	data := randomBytes(t, 100)
	h.partial(ctx, "lay-out_1", "f", data, 0, 40)
	owners, err := os.ReadDir(filepath.Join(h.dir, "uploads"))
	if err != nil || len(owners) != 1 {
		t.Fatalf("uploads/ = %v, %v; want one owner folder", owners, err)
	}
	part, err := os.Stat(filepath.Join(h.dir, "uploads", owners[0].Name(), "lay-out_1.part"))
	if err != nil || part.Size() != 40 {
		t.Fatalf("part file: %v, %v; want 40 bytes", part, err)
	}
	if _, err := os.Stat(filepath.Join(h.dir, "uploads", owners[0].Name(), "lay-out_1.json")); err != nil {
		t.Fatalf("state file: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Join(h.dir, "objects")); len(entries) != 0 {
		t.Errorf("objects/ holds %v, want nothing", entries)
	}
}

// TestResumableIdleTimeoutKeepsBytes checks that a stream the server gives
// up on for silence is suspended, not discarded.
func TestResumableIdleTimeoutKeepsBytes(t *testing.T) {
	h := newResumableHarness(t, service.Options{IdleTimeout: 250 * time.Millisecond})
	ctx := testCtx(t)
	data := randomBytes(t, 1000)
	reached := h.progress.at(300)
	stream, err := h.client.UploadFile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []*uploadMsg{resumeMeta("idle", "f", data, 0), chunk(data[:300])} {
		if err := stream.Send(m); err != nil {
			t.Fatal(err)
		}
	}
	<-reached
	// Send nothing more: the server must give up on its own.
	err = stream.RecvMsg(new(pb.StringResponse))
	wantCode(t, err, codes.DeadlineExceeded, "idle")
	h.waitHandled(pb.Greeter_UploadFile_FullMethodName)
	h.wantCommitted(ctx, "idle", 300)
	h.assertInvisible(ctx, "f")
}
