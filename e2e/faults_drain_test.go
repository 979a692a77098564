package e2e

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFaultGracefulShutdownFinishesTransfers sends SIGTERM while a large
// download and a large upload run (RELIABILITY.md R3): with time enough,
// both finish intact and greeterd exits 0.
func TestFaultGracefulShutdownFinishesTransfers(t *testing.T) {
	faultNoLeaks(t)
	r := newFaultRig(t, "", "--bandwidth-per-identity", "8MiB", "--shutdown-timeout", "90s")
	const size = 16 << 20
	bigPath, big := r.file("big.bin", size)
	r.cli(0, "upload", "--no-resume", bigPath)
	upPath, up := r.file("up.bin", size)

	dst := filepath.Join(r.work, "out", "big.bin")
	if err := os.Mkdir(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	down := r.startCLI("download", "--no-resume", "--retries", "0", "big.bin", "-o", dst)
	upload := r.startCLI("upload", "--no-resume", "--retries", "0", upPath)
	faultWaitFor(t, "the download and the upload to be under way", func() bool {
		return faultCountAtLeast(r.temps(), 1) == 1 && faultCountAtLeast(faultFiles(t, filepath.Dir(dst), "greeter-part"), 1) == 1
	})
	if err := r.srv.Stop(2 * time.Minute); err != nil {
		t.Errorf("greeterd after SIGTERM: %v, want exit 0\n%s", err, r.srv.Log.String())
	}
	if code, out := down.wait(t); code != 0 {
		t.Errorf("the download in flight at SIGTERM failed (exit %d): %s", code, out)
	}
	if code, out := upload.wait(t); code != 0 {
		t.Errorf("the upload in flight at SIGTERM failed (exit %d): %s", code, out)
	}
	if b, err := os.ReadFile(dst); err != nil || !bytes.Equal(b, big) {
		t.Errorf("the download finished during the drain is not the file (%d bytes, %v)", len(b), err)
	}
	r.start()
	if got := r.ls(); got["up.bin"] != faultSum(up) {
		t.Errorf("the upload finished during the drain: ls %v, want up.bin with sha256 %s", got, faultSum(up))
	}
}

// TestFaultShortShutdownLeavesNothingHalfWritten sends SIGTERM with a
// --shutdown-timeout too short for the transfers in flight (RELIABILITY.md
// R3): they fail with Unavailable or Canceled, greeterd exits 0 soon after
// the timeout, and neither a final file nor a temporary is left of the
// upload, nor a final file of the download.
func TestFaultShortShutdownLeavesNothingHalfWritten(t *testing.T) {
	faultNoLeaks(t)
	// big.bin goes up at full speed; then the server restarts throttled,
	// so that both transfers are surely in flight when the drain ends.
	r := newFaultRig(t, "", "--shutdown-timeout", "500ms")
	const size = 16 << 20
	bigPath, _ := r.file("big.bin", size)
	r.cli(0, "upload", "--no-resume", bigPath)
	if err := r.srv.Stop(time.Minute); err != nil {
		t.Fatal(err)
	}
	r.args = append(r.args, "--bandwidth-per-identity", "2MiB")
	r.start()

	upPath, _ := r.file("up.bin", size)
	dst := filepath.Join(r.work, "out", "big.bin")
	if err := os.Mkdir(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	down := r.startCLI("download", "--no-resume", "--retries", "0", "big.bin", "-o", dst)
	upload := r.startCLI("upload", "--no-resume", "--retries", "0", upPath)
	faultWaitFor(t, "the download and the upload to be under way", func() bool {
		return faultCountAtLeast(r.temps(), 1) == 1 && faultCountAtLeast(faultFiles(t, filepath.Dir(dst), "greeter-part"), 1) == 1
	})
	if err := r.srv.Stop(30 * time.Second); err != nil {
		t.Errorf("greeterd after SIGTERM with a short drain: %v, want exit 0\n%s", err, r.srv.Log.String())
	}
	// The process is gone: what it left on disk is final.
	if temps := r.temps(); len(temps) != 0 {
		t.Errorf("greeterd exited leaving the temporaries %v (an upload cut off by the drain timeout must remove its temporary)", temps)
	}
	for _, p := range []*faultProc{down, upload} {
		code, out := p.wait(t)
		if code == 0 || !(strings.Contains(out, "Unavailable") || strings.Contains(out, "Canceled")) {
			t.Errorf("greeter %v cut off by shutdown: exit %d, output %q; want a failure saying Unavailable or Canceled", p.cmd.Args[5:], code, out)
		}
	}
	if _, err := os.Stat(dst); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the cut-off download left %s (Stat err %v)", dst, err)
	}
	r.start()
	if got := r.ls(); len(got) != 1 || got["big.bin"] == "" {
		t.Errorf("after the cut-off upload: ls %v, want only big.bin", got)
	}
}
