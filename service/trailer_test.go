package service_test

import (
	"testing"

	"google.golang.org/grpc/codes"

	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/proto/wire"
	"github.com/greeter/greeter/service/servicetest"
)

// trailer is the UploadTrailer message declaring sha256 and, when size is
// not negative, the size.
func trailer(sha256 string, size int64) *uploadMsg {
	t := &pb.UploadTrailer{Sha256: sha256}
	if size >= 0 {
		t.Size = &size
	}
	return &uploadMsg{Request: &pb.UploadFileRequest_Trailer{Trailer: t}}
}

// noDigestMsgs is a resumable upload of data[offset:] that declares its
// size but leaves the sha256 to a trailer, in chunks, without the trailer.
func noDigestMsgs(id, name string, data []byte, offset int64, chunkSize int) []*uploadMsg {
	msgs := resumeMsgs(id, name, data, offset, chunkSize)
	msgs[0].GetMetadata().Sha256 = ""
	return msgs
}

func TestTrailerCompletesUploads(t *testing.T) {
	h := start(t, servicetest.Config{})
	ctx := testCtx(t)
	data := randomBytes(t, 1000)

	// A plain upload whose digest and size come last.
	resp, err := h.send(ctx, meta("plain"), chunk(data[:600]), chunk(data[600:]), trailer(hexSum(data), 1000))
	if err != nil {
		t.Fatalf("plain upload with a trailer: %v", err)
	}
	if resp.GetSize() != 1000 || resp.GetSha256() != hexSum(data) {
		t.Fatalf("plain upload with a trailer stored %d bytes, sha256 %s", resp.GetSize(), resp.GetSha256())
	}
	h.assertStored(ctx, "plain", data)

	// The same digest up front and in the trailer.
	if _, err := h.send(ctx, append(resumeMsgs("both", "both", data, 0, 300), trailer(hexSum(data), -1))...); err != nil {
		t.Fatalf("resumable upload declaring its digest twice: %v", err)
	}
	h.assertStored(ctx, "both", data)

	// A resumable upload without a digest: the first stream breaks off,
	// the second sends the rest and the trailer; the whole file is checked.
	first := noDigestMsgs("nd", "nd", data[:400], 0, 100)
	first[0] = noDigestMsgs("nd", "nd", data, 0, 100)[0]
	_, err = h.send(ctx, first...)
	wantCode(t, err, codes.FailedPrecondition, "upload incomplete: 400 of 1000 bytes")
	h.waitHandled(pb.Greeter_UploadFile_FullMethodName)
	h.wantCommitted(ctx, "nd", 400)
	resp, err = h.send(ctx, append(noDigestMsgs("nd", "nd", data, 400, 250), trailer(hexSum(data), -1))...)
	if err != nil {
		t.Fatalf("resumed upload ending with a trailer: %v", err)
	}
	if resp.GetSha256() != hexSum(data) {
		t.Fatalf("resumed upload stored sha256 %s, want %s", resp.GetSha256(), hexSum(data))
	}
	h.assertStored(ctx, "nd", data)
	h.waitHandled(pb.Greeter_UploadFile_FullMethodName)
	h.wantNoUpload(ctx, "nd")

	// A stream that sent every byte but no trailer keeps the upload; a
	// stream with just the trailer completes it.
	_, err = h.send(ctx, noDigestMsgs("late", "late", data, 0, 500)...)
	wantCode(t, err, codes.InvalidArgument, "declared no sha256")
	wantErrorInfo(t, err, wire.ReasonDigestRequired, 1000)
	h.waitHandled(pb.Greeter_UploadFile_FullMethodName)
	h.wantCommitted(ctx, "late", 1000)
	_, err = h.Client.StatFile(ctx, &pb.MetaData{Filename: "late"})
	wantCode(t, err, codes.NotFound, "not found")
	if _, err := h.send(ctx, noDigestMsgs("late", "late", data, 1000, 500)[0], trailer(hexSum(data), 1000)); err != nil {
		t.Fatalf("trailer-only stream: %v", err)
	}
	h.assertStored(ctx, "late", data)
	h.assertNoTemporaries()
}

func TestTrailerRejections(t *testing.T) {
	h := start(t, servicetest.Config{})
	ctx := testCtx(t)
	data := randomBytes(t, 1000)
	other := randomBytes(t, 1000)
	const none = -1 // no upload state afterwards
	negativeSize := trailer(hexSum(data), 0)
	*negativeSize.GetTrailer().Size = -2
	for _, c := range []struct {
		name string
		// id names a resumable upload; "" sends a plain one.
		id    string
		msgs  []*uploadMsg
		code  codes.Code
		msg   string
		after int64 // committed size of upload id afterwards, or none
	}{
		{"plain: digest mismatch", "", []*uploadMsg{meta("f"), chunk(data), trailer(hexSum(other), -1)},
			codes.InvalidArgument, "sha256 does not match", none},
		{"plain: size mismatch", "", []*uploadMsg{meta("f"), chunk(data), trailer(hexSum(data), 999)},
			codes.InvalidArgument, "size does not match", none},
		{"plain: trailer disagrees with metadata's sha256", "", []*uploadMsg{metaWith(&pb.MetaData{Filename: "f", Sha256: hexSum(data)}), chunk(data), trailer(hexSum(other), -1)},
			codes.InvalidArgument, "trailer sha256 differs from the sha256 declared in metadata", none},
		{"plain: trailer disagrees with metadata's size", "", append(resumeMsgs("", "f", data, 0, 1000)[:1:1], chunk(data), trailer(hexSum(data), 999)),
			codes.InvalidArgument, "trailer size 999 differs from the size 1000 declared in metadata", none},
		{"plain: chunk after the trailer", "", []*uploadMsg{meta("f"), chunk(data[:10]), trailer(hexSum(data[:10]), -1), chunk(data[10:20])},
			codes.InvalidArgument, "the trailer must be the last message", none},
		{"plain: second trailer", "", []*uploadMsg{meta("f"), chunk(data[:10]), trailer(hexSum(data[:10]), -1), trailer(hexSum(data[:10]), -1)},
			codes.InvalidArgument, "the trailer must be the last message", none},
		{"plain: short sha256", "", []*uploadMsg{meta("f"), chunk(data), trailer("abc", -1)},
			codes.InvalidArgument, "trailer sha256 must be 64 hex digits, got 3 characters", none},
		{"plain: sha256 not hex", "", []*uploadMsg{meta("f"), chunk(data), trailer(string(make([]byte, 64)), -1)},
			codes.InvalidArgument, "trailer sha256 must be hex digits", none},
		{"plain: negative size", "", []*uploadMsg{meta("f"), chunk(data), negativeSize},
			codes.InvalidArgument, "trailer size must not be negative", none},
		{"resumable: digest mismatch discards", "m", append(noDigestMsgs("m", "f", data, 0, 300)[:1:1], chunk(other), trailer(hexSum(data), -1)),
			codes.DataLoss, "do not match the declared sha256; the upload was discarded", none},
		{"resumable: trailer disagrees with metadata keeps", "d", append(resumeMsgs("d", "f", data, 0, 500), trailer(hexSum(other), -1)),
			codes.InvalidArgument, "trailer sha256 differs", 1000},
		{"resumable: chunk after the trailer keeps", "a", []*uploadMsg{noDigestMsgs("a", "f", data, 0, 10)[0], chunk(data[:500]), trailer(hexSum(data), -1), chunk(data[500:])},
			codes.InvalidArgument, "the trailer must be the last message", 500},
		{"resumable: trailer before every byte", "s", []*uploadMsg{noDigestMsgs("s", "f", data, 0, 10)[0], chunk(data[:500]), trailer(hexSum(data), -1)},
			codes.InvalidArgument, "size does not match", 500},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := h.send(ctx, c.msgs...)
			wantCode(t, err, c.code, c.msg)
			h.waitHandled(pb.Greeter_UploadFile_FullMethodName)
			h.assertInvisible(ctx, "f")
			if c.id != "" {
				if c.after == none {
					h.wantNoUpload(ctx, c.id)
				} else {
					h.wantCommitted(ctx, c.id, c.after)
				}
			}
		})
	}
	h.assertNoTemporaries()
}
