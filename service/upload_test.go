package service_test

import (
	"bytes"
	"context"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/proto/wire"
	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/servicetest"
)

func TestUploadDownloadRoundTrip(t *testing.T) {
	h := start(t, servicetest.Config{Options: service.Options{ChunkSize: 64 << 10}})
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
	h := start(t, servicetest.Config{})
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
	h := start(t, servicetest.Config{Options: service.Options{MaxFileSize: max}})
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
	h := start(t, servicetest.Config{})
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
	h := start(t, servicetest.Config{})
	ctx, cancel := context.WithCancel(testCtx(t))
	stream, err := h.Client.UploadFile(ctx)
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
	h := start(t, servicetest.Config{Options: service.Options{IdleTimeout: 100 * time.Millisecond}})
	stream, err := h.Client.UploadFile(testCtx(t))
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
	h := start(t, servicetest.Config{})
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

// TestUploadMemoryIsBounded uploads 256 MiB and samples the heap that survives each garbage collection: it
// must stay far below the file size, proving the upload streams to disk.
func TestUploadMemoryIsBounded(t *testing.T) {
	h := start(t, servicetest.Config{})
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

	stream, err := h.Client.UploadFile(ctx)
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
