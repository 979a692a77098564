package service_test

import (
	"bytes"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/proto/wire"
	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/servicetest"
)

func TestDownloadErrorsAndRanges(t *testing.T) {
	h := start(t, servicetest.Config{Options: service.Options{ChunkSize: 1000}})
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
				ctx = servicetest.AsOwner(ctx, "mallory")
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

// TestDownloadStalledReaderTimesOut starts a download and never reads: once
// flow control stops the server's sends, the idle timer ends the call, and
// the handler returns instead of holding the file and a transfer slot.
func TestDownloadStalledReaderTimesOut(t *testing.T) {
	h := start(t, servicetest.Config{Options: service.Options{ChunkSize: 64 << 10, IdleTimeout: 200 * time.Millisecond}})
	ctx := testCtx(t)
	// The file goes straight into the store: an upload through the service
	// would itself be subject to the 200 ms idle timeout, which a loaded
	// machine can miss between two chunks.
	h.put(ctx, "big.bin", randomBytes(t, 32<<20))
	stream, err := h.Client.DownloadFile(ctx, &pb.MetaData{Filename: "big.bin"})
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
