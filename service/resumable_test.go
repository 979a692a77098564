package service_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/proto/wire"
	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/diskstore"
	"github.com/greeter/greeter/service/servicetest"
)

func TestResumableInterruptAndResume(t *testing.T) {
	h := start(t, servicetest.Config{})
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
	h := start(t, servicetest.Config{})
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
	h := start(t, servicetest.Config{Options: service.Options{MaxFileSize: 1 << 20}})
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
		}, codes.InvalidArgument, "resumable uploads must declare their size", "", 0, none},
		{"no sha256 up front nor in a trailer", 0, func(id string) []*uploadMsg {
			return []*uploadMsg{metaWith(&pb.MetaData{Filename: "f", Size: size(1000), UploadId: id}), chunk(data)}
		}, codes.InvalidArgument, "declared no sha256: resume it at offset 1000", wire.ReasonDigestRequired, 1000, 1000},
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
		}, codes.DataLoss, "do not match the declared sha256; the upload was discarded", "", 0, none},
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

// TestResumableOtherOwner checks that incomplete uploads live in their
// owner's namespace: for anyone else the upload ID is unused.
func TestResumableOtherOwner(t *testing.T) {
	h := start(t, servicetest.Config{})
	ctx := testCtx(t)
	bob := servicetest.AsOwner(ctx, "bob")
	data := randomBytes(t, 1000)
	h.partial(ctx, "shared-id", "f", data, 0, 600)

	_, err := h.Client.QueryUpload(bob, &pb.QueryUploadRequest{UploadId: "shared-id"})
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
	h := start(t, servicetest.Config{})
	ctx := testCtx(t)
	data := randomBytes(t, 256<<10)
	reached := h.Store.Reached(128 << 10)
	stream, err := h.Client.UploadFile(ctx)
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
	h := start(t, servicetest.Config{StoreOptions: []diskstore.Option{diskstore.WithCheckpointInterval(interval)}})
	ctx := testCtx(t)
	data := randomBytes(t, 1<<20)
	const reach = 300 << 10
	reached := h.Store.Reached(reach)
	stream, err := h.Client.UploadFile(ctx)
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

// TestResumableIdleTimeoutKeepsBytes checks that a stream the server gives
// up on for silence is suspended, not discarded.
func TestResumableIdleTimeoutKeepsBytes(t *testing.T) {
	h := start(t, servicetest.Config{Options: service.Options{IdleTimeout: 250 * time.Millisecond}})
	ctx := testCtx(t)
	data := randomBytes(t, 1000)
	reached := h.Store.Reached(300)
	stream, err := h.Client.UploadFile(ctx)
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

// TestResumableNeedsResumableStore checks the answer of a server whose
// store cannot keep uploads.
func TestResumableNeedsResumableStore(t *testing.T) {
	h := start(t, servicetest.Config{Plain: true})
	ctx := testCtx(t)
	data := randomBytes(t, 10)
	_, err := h.send(ctx, resumeMsgs("x", "f", data, 0, 10)...)
	wantCode(t, err, codes.Unimplemented, "resumable uploads are not supported")
	_, err = h.Client.QueryUpload(ctx, &pb.QueryUploadRequest{UploadId: "x"})
	wantCode(t, err, codes.Unimplemented, "resumable uploads are not supported")
	// Without an upload_id an offset is a client error whatever the store.
	_, err = h.send(ctx, metaWith(&pb.MetaData{Filename: "f", Offset: 3}))
	wantCode(t, err, codes.InvalidArgument, "offset requires upload_id")
}
