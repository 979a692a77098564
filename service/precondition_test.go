package service_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/service/servicetest"
)

// These tests cover the upload preconditions of issue 12 item 11:
// create_only stores only a new file, if_match replaces only the version
// the uploader saw, both checked when the upload starts and again,
// atomically, when it commits.

func createOnly(md *pb.MetaData) { md.CreateOnly = true }

func ifMatch(sum string) func(*pb.MetaData) {
	return func(md *pb.MetaData) { md.IfMatch = sum }
}

func TestUploadCreateOnly(t *testing.T) {
	h := start(t, servicetest.Config{})
	ctx := testCtx(t)
	first := randomBytes(t, 300)
	if _, err := h.send(ctx, declared("f", first, createOnly)...); err != nil {
		t.Fatalf("create_only of a new name: %v", err)
	}
	_, err := h.send(ctx, declared("f", randomBytes(t, 300), createOnly)...)
	wantCode(t, err, codes.FailedPrecondition, `file "f" already exists`)
	h.waitHandled(pb.Greeter_UploadFile_FullMethodName)
	h.waitHandled(pb.Greeter_UploadFile_FullMethodName)
	h.assertStored(ctx, "f", first)
	h.assertNoTemporaries()
}

func TestUploadIfMatch(t *testing.T) {
	h := start(t, servicetest.Config{})
	ctx := testCtx(t)
	v1, v2 := randomBytes(t, 200), randomBytes(t, 300)

	_, err := h.send(ctx, declared("f", v1, ifMatch(hexSum(v2)))...)
	wantCode(t, err, codes.FailedPrecondition, `if_match: file "f" does not exist`)
	h.assertInvisible(ctx, "f")

	if _, err := h.send(ctx, declared("f", v1, nil)...); err != nil {
		t.Fatal(err)
	}
	_, err = h.send(ctx, declared("f", v2, ifMatch(hexSum(v2)))...)
	wantCode(t, err, codes.FailedPrecondition, `if_match: file "f" has another sha256 (`+hexSum(v1)+")")
	h.assertStored(ctx, "f", v1)

	if _, err := h.send(ctx, declared("f", v2, ifMatch(hexSum(v1)))...); err != nil {
		t.Fatalf("if_match with the stored sha256: %v", err)
	}
	h.assertStored(ctx, "f", v2)
}

func TestUploadPreconditionRejections(t *testing.T) {
	h := start(t, servicetest.Config{})
	ctx := testCtx(t)
	data := []byte("x")
	for _, c := range []struct {
		name string
		edit func(*pb.MetaData)
		msg  string
	}{
		{"uppercase", ifMatch(strings.ToUpper(hexSum(data))), "if_match must be a SHA-256 in 64 lowercase hex digits, got 64 characters"},
		{"short", ifMatch("abc"), "if_match must be a SHA-256 in 64 lowercase hex digits, got 3 characters"},
		{"not hex", ifMatch(strings.Repeat("g", 64)), "lowercase hex digits"},
		{"both", func(md *pb.MetaData) { md.CreateOnly, md.IfMatch = true, hexSum(data) }, "create_only and if_match exclude each other"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := h.send(ctx, declared("f", data, c.edit)...)
			wantCode(t, err, codes.InvalidArgument, c.msg)
		})
	}
	h.assertInvisible(ctx, "f")
}

// openUpload sends every message of an upload but does not half-close, and
// returns once the server has written all of data: the upload has passed
// its checks at the start and waits to commit.
func (h *tester) openUpload(ctx context.Context, msgs []*uploadMsg, size int64) pb.Greeter_UploadFileClient {
	h.t.Helper()
	reached := h.Store.Reached(size)
	stream, err := h.Client.UploadFile(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, m := range msgs {
		if err := stream.Send(m); err != nil {
			h.t.Fatalf("Send: %v", err)
		}
	}
	select {
	case <-reached:
	case <-ctx.Done():
		h.t.Fatalf("the server never wrote %d bytes", size)
	}
	return stream
}

// Two create_only uploads of one name race past their checks at the start
// and commit at once: exactly one stores its file.
func TestUploadCreateOnlyRace(t *testing.T) {
	h := start(t, servicetest.Config{})
	ctx := testCtx(t)
	a, b := randomBytes(t, 500), randomBytes(t, 500)
	sa := h.openUpload(ctx, declared("f", a, createOnly), 500)
	sb := h.openUpload(ctx, declared("f", b, createOnly), 500)

	errs := make(chan error, 2)
	for _, s := range []pb.Greeter_UploadFileClient{sa, sb} {
		go func() {
			_, err := s.CloseAndRecv()
			errs <- err
		}()
	}
	wins := 0
	for range 2 {
		if err := <-errs; err == nil {
			wins++
		} else {
			wantCode(t, err, codes.FailedPrecondition, `file "f" already exists`)
		}
	}
	if wins != 1 {
		t.Fatalf("%d of two racing create_only uploads succeeded, want exactly 1", wins)
	}
	<-h.Idle(pb.Greeter_UploadFile_FullMethodName)
	h.assertNoTemporaries()
	info, err := h.Client.StatFile(ctx, &pb.MetaData{Filename: "f"})
	if err != nil || (info.GetSha256() != hexSum(a) && info.GetSha256() != hexSum(b)) {
		t.Fatalf("StatFile(f) = %v, %v; want one of the two uploads", info, err)
	}
}

// Two uploads with the same if_match pass their checks at the start; the
// first to commit replaces the file, the second then fails: no update is
// lost.
func TestUploadIfMatchLostUpdate(t *testing.T) {
	h := start(t, servicetest.Config{})
	ctx := testCtx(t)
	v1, a, b := randomBytes(t, 100), randomBytes(t, 500), randomBytes(t, 600)
	if _, err := h.send(ctx, declared("f", v1, nil)...); err != nil {
		t.Fatal(err)
	}
	sa := h.openUpload(ctx, declared("f", a, ifMatch(hexSum(v1))), 500)
	sb := h.openUpload(ctx, declared("f", b, ifMatch(hexSum(v1))), 600)
	if _, err := sa.CloseAndRecv(); err != nil {
		t.Fatalf("the first if_match upload: %v", err)
	}
	_, err := sb.CloseAndRecv()
	wantCode(t, err, codes.FailedPrecondition, `file "f" no longer matches if_match`)
	<-h.Idle(pb.Greeter_UploadFile_FullMethodName)
	h.assertStored(ctx, "f", a)
	h.assertNoTemporaries()
}

// A resumable upload with create_only is checked when each stream starts
// and when it completes; a file created meanwhile makes it fail, and the
// upload is discarded, since resuming cannot change the answer.
func TestResumableCreateOnly(t *testing.T) {
	h := start(t, servicetest.Config{})
	ctx := testCtx(t)
	data := randomBytes(t, 500)
	msgs := resumeMsgs("up", "f", data, 0, 100)
	msgs[0].GetMetadata().CreateOnly = true
	stream := h.openUpload(ctx, msgs, 500)
	if _, err := h.send(ctx, declared("f", []byte("someone else"), nil)...); err != nil {
		t.Fatal(err)
	}
	_, err := stream.CloseAndRecv()
	wantCode(t, err, codes.FailedPrecondition, `file "f" already exists`)
	<-h.Idle(pb.Greeter_UploadFile_FullMethodName)
	h.wantNoUpload(ctx, "up")
	h.assertNoUploadState()

	// At the start of a stream, the check fails before anything is kept.
	msgs = resumeMsgs("up2", "f", data, 0, 100)
	msgs[0].GetMetadata().CreateOnly = true
	_, err = h.send(ctx, msgs...)
	wantCode(t, err, codes.FailedPrecondition, `file "f" already exists`)
	<-h.Idle(pb.Greeter_UploadFile_FullMethodName)
	h.wantNoUpload(ctx, "up2")
}
