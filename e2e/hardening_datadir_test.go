package e2e

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/greeter/greeter/proto/greeterpb"
)

// TestHardeningDataDirLocked starts a second greeterd on the data dir of
// a running one while an upload is in flight (RELIABILITY.md R7): the
// second exits non-zero naming the first one's pid and lock file, removes
// none of its temporaries, and the upload then completes intact.
func TestHardeningDataDirLocked(t *testing.T) {
	faultNoLeaks(t)
	// A long idle timeout: the upload waits while the second server runs.
	a := newFaultRig(t, "", "--idle-timeout", "10m")
	c := greeterpb.NewGreeterClient(a.conn())
	ctx := faultCtx(t)

	const size, first = 1 << 20, 64 << 10
	data := make([]byte, size)
	rand.Read(data)
	st, err := faultBeginUpload(ctx, c, "inflight.bin", data)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&greeterpb.UploadFileRequest{Request: &greeterpb.UploadFileRequest_ChunkData{ChunkData: data[:first]}}); err != nil {
		t.Fatal(err)
	}
	faultWaitFor(t, "the upload's first chunk in a temporary", func() bool { return faultCountAtLeast(a.temps(), first) == 1 })
	before := slices.Sorted(maps.Keys(a.temps()))

	b := bins.RunServer(t, nil, "--listen", "127.0.0.1:0", "--log-format", "json",
		"--state-dir", t.TempDir(), "--data-dir", a.data)
	if b.Code == 0 {
		t.Fatalf("a second greeterd on a data dir in use exited 0\nstderr: %s", b.Stderr)
	}
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("data directory %s is in use by pid %d on host %s (lock file %s)",
		a.data, a.pid(), host, filepath.Join(a.data, ".lock"))
	if !strings.Contains(b.Stderr, want) {
		t.Errorf("the second greeterd exited %d without naming the holder; want %q in its stderr:\n%s", b.Code, want, b.Stderr)
	}
	if after := slices.Sorted(maps.Keys(a.temps())); !slices.Equal(after, before) {
		t.Errorf("tmp/ held %q before the second greeterd ran and %q after, want them untouched", before, after)
	}

	for chunk := range slices.Chunk(data[first:], 64<<10) {
		err := st.Send(&greeterpb.UploadFileRequest{Request: &greeterpb.UploadFileRequest_ChunkData{ChunkData: chunk}})
		if errors.Is(err, io.EOF) {
			break // the server ended the stream; CloseAndRecv says why
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	resp, err := st.CloseAndRecv()
	if err != nil {
		t.Fatalf("the upload in flight failed after the second greeterd ran: %v", err)
	}
	if resp.GetSize() != size || resp.GetSha256() != faultSum(data) {
		t.Errorf("the upload stored %d bytes with sha256 %s, want %d with %s", resp.GetSize(), resp.GetSha256(), size, faultSum(data))
	}
	if got := a.ls()["inflight.bin"]; got != faultSum(data) {
		t.Errorf("ls shows inflight.bin with sha256 %q, want %s", got, faultSum(data))
	}
}
