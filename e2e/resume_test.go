package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/greeter/greeter/e2e/e2etest"
)

// bigFile is the size of the files the resume tests move.
const bigFile = 64 << 20

// transferResult is one element of greeter's --json output for upload and
// download.
type transferResult struct {
	Name          string `json:"name"`
	Path          string `json:"path"`
	Size          int64  `json:"size"`
	SHA256        string `json:"sha256"`
	BytesSent     int64  `json:"bytes_sent"`
	BytesReceived int64  `json:"bytes_received"`
	Attempts      int    `json:"attempts"`
	Error         string `json:"error"`
}

// manyTransfers lifts the server's per-identity transfer rate limit, for
// tests that start many transfers (every retry is one).
var manyTransfers = []string{"--rate-transfer", "1000", "--rate-transfer-burst", "1000"}

// writeBig writes n random bytes to path and returns their sha256.
func writeBig(t *testing.T, path string, n int) string {
	t.Helper()
	return sum(writeRandom(t, path, n))
}

func fileSum(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// oneResult parses greeter's --json output for a single file.
func oneResult(t *testing.T, res e2etest.Result) transferResult {
	t.Helper()
	var r transferResult
	if err := json.Unmarshal([]byte(res.Stdout), &r); err != nil {
		t.Fatalf("--json printed %q: %v\nstderr: %s", res.Stdout, err, res.Stderr)
	}
	return r
}

func TestResumeThroughCuttingProxy(t *testing.T) {
	srv, state := devServer(t, manyTransfers...)
	work := t.TempDir()
	src := filepath.Join(work, "big.bin")
	want := writeBig(t, src, bigFile)
	opts := e2etest.ProxyOptions{Seed: 6, CutMin: 4 << 20, CutMax: 24 << 20, MaxCuts: 4}

	up := e2etest.StartProxy(t, srv.Addr, opts)
	res := bins.CLI(t, nil, "--addr", up.Addr, "--state-dir", state, "--json", "upload", src, "--as", "big.bin")
	if res.Code != 0 {
		t.Fatalf("upload through the cutting proxy: exit %d\nstdout: %s\nstderr: %s", res.Code, res.Stdout, res.Stderr)
	}
	r := oneResult(t, res)
	t.Logf("upload: %d cuts, %d attempts, client sent %d bytes, proxy forwarded %d bytes upstream for a %d-byte file",
		up.Cuts(), r.Attempts, r.BytesSent, up.Upstream(), bigFile)
	if r.SHA256 != want || r.Size != bigFile {
		t.Fatalf("upload reported %+v, want size %d sha256 %s", r, bigFile, want)
	}
	if up.Cuts() == 0 || r.Attempts < 2 {
		t.Fatalf("the proxy cut %d connections and the upload took %d attempts: the test did not break the upload", up.Cuts(), r.Attempts)
	}
	if limit := int64(bigFile) * 3 / 2; up.Upstream() >= limit || r.BytesSent >= limit {
		t.Errorf("the proxy forwarded %d bytes upstream and the client sent %d for a %d-byte file, want both below %d: the upload must resume, not start over",
			up.Upstream(), r.BytesSent, bigFile, limit)
	}

	down := e2etest.StartProxy(t, srv.Addr, opts)
	dst := filepath.Join(work, "copy.bin")
	res = bins.CLI(t, nil, "--addr", down.Addr, "--state-dir", state, "--json", "download", "big.bin", "-o", dst)
	if res.Code != 0 {
		t.Fatalf("download through the cutting proxy: exit %d\nstdout: %s\nstderr: %s", res.Code, res.Stdout, res.Stderr)
	}
	r = oneResult(t, res)
	t.Logf("download: %d cuts, %d attempts, client received %d bytes, proxy forwarded %d bytes downstream for a %d-byte file",
		down.Cuts(), r.Attempts, r.BytesReceived, down.Downstream(), bigFile)
	if got := fileSum(t, dst); got != want || r.SHA256 != want {
		t.Fatalf("downloaded a file with sha256 %s (reported %s), want %s", got, r.SHA256, want)
	}
	if down.Cuts() == 0 || r.Attempts < 2 {
		t.Fatalf("the proxy cut %d connections and the download took %d attempts: the test did not break the download", down.Cuts(), r.Attempts)
	}
	if limit := int64(bigFile) * 3 / 2; r.BytesReceived >= limit || down.Downstream() >= limit {
		t.Errorf("the client received %d bytes and the proxy forwarded %d downstream for a %d-byte file, want both below %d",
			r.BytesReceived, down.Downstream(), bigFile, limit)
	}
	if _, err := os.Stat(filepath.Join(work, ".copy.bin.greeter-part")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the partial file is still there after the download: %v", err)
	}
}

func TestResumeAcrossServerRestart(t *testing.T) {
	state, data := t.TempDir(), t.TempDir()
	// A short idle timeout lets the server notice the stalled upload and
	// save what it received before it is killed.
	args := append([]string{"--state-dir", state, "--data-dir", data, "--idle-timeout", "2s"}, manyTransfers...)
	first := bins.StartServer(t, nil, args...)
	work := t.TempDir()
	src := filepath.Join(work, "big.bin")
	want := writeBig(t, src, bigFile)

	// The proxy lets 24 MiB through, then holds the client's bytes.
	proxy := e2etest.StartProxy(t, first.Addr, e2etest.ProxyOptions{StallAfter: 24 << 20})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	running := startCLI(ctx, "--addr", proxy.Addr, "--state-dir", state, "--json", "upload", src, "--as", "big.bin", "--retries", "1")
	select {
	case <-proxy.Stalled():
	case res := <-running:
		t.Fatalf("the upload ended before the proxy stalled it: exit %d\nstdout: %s\nstderr: %s", res.Code, res.Stdout, res.Stderr)
	case <-ctx.Done():
		t.Fatal("the upload did not reach the stall point")
	}
	waitForLog(ctx, t, first, `"msg":"resumable upload suspended"`)
	first.Kill()

	res := <-running
	if res.Code != 6 {
		t.Fatalf("upload to a killed server: exit %d, want 6 (unavailable)\nstdout: %s\nstderr: %s", res.Code, res.Stdout, res.Stderr)
	}
	r := oneResult(t, res)
	if r.Error == "" || r.BytesSent == 0 {
		t.Fatalf("the interrupted upload reported %+v, want an error and some bytes sent", r)
	}

	second := bins.StartServer(t, nil, args...)
	res = bins.CLI(t, nil, "--addr", second.Addr, "--state-dir", state, "--json", "upload", src, "--as", "big.bin")
	if res.Code != 0 {
		t.Fatalf("upload after the restart: exit %d\nstdout: %s\nstderr: %s", res.Code, res.Stdout, res.Stderr)
	}
	r = oneResult(t, res)
	t.Logf("after the restart the upload sent %d of %d bytes in %d attempts", r.BytesSent, bigFile, r.Attempts)
	if r.BytesSent >= bigFile || r.SHA256 != want {
		t.Fatalf("the upload after the restart reported %+v, want fewer than %d bytes sent (resumed) and sha256 %s", r, bigFile, want)
	}

	dst := filepath.Join(work, "copy.bin")
	cli(t, second, state, 0, "download", "big.bin", "-o", dst)
	if got := fileSum(t, dst); got != want {
		t.Fatalf("the stored file has sha256 %s, want %s", got, want)
	}
}

func TestParallelUploadNamesEveryFailure(t *testing.T) {
	srv, state := devServer(t, manyTransfers...)
	work := t.TempDir()
	var paths []string
	sums := map[string]string{}
	for i := 1; i <= 4; i++ {
		p := filepath.Join(work, "f"+string(rune('0'+i)))
		if i != 3 {
			sums[filepath.Base(p)] = sum(writeRandom(t, p, 1<<20+i))
		}
		paths = append(paths, p)
	}
	res := cli(t, srv, state, 1, append([]string{"--json", "upload", "-j", "3"}, paths...)...)
	if !strings.Contains(res.Stderr, "1 of 4 uploads failed") || !strings.Contains(res.Stderr, paths[2]) {
		t.Errorf("stderr %q, want a summary naming %s", res.Stderr, paths[2])
	}
	var results []transferResult
	if err := json.Unmarshal([]byte(res.Stdout), &results); err != nil || len(results) != 4 {
		t.Fatalf("--json printed %q (%v), want 4 results", res.Stdout, err)
	}
	if results[2].Error == "" {
		t.Errorf("the missing file's result %+v has no error", results[2])
	}
	for name, want := range sums {
		st := cli(t, srv, state, 0, "--json", "stat", name)
		var info struct{ SHA256 string }
		if err := json.Unmarshal([]byte(st.Stdout), &info); err != nil || info.SHA256 != want {
			t.Errorf("stat %s: %q (%v), want sha256 %s", name, st.Stdout, err, want)
		}
	}
}

// startCLI runs greeter with args in the background and delivers its
// result when it exits.
func startCLI(ctx context.Context, args ...string) <-chan e2etest.Result {
	done := make(chan e2etest.Result, 1)
	cmd := exec.CommandContext(ctx, bins.Greeter, args...)
	cmd.Env = testEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	go func() {
		err := cmd.Run()
		res := e2etest.Result{Stdout: stdout.String(), Stderr: stderr.String()}
		var exit *exec.ExitError
		switch {
		case errors.As(err, &exit):
			res.Code = exit.ExitCode()
		case err != nil:
			res.Code, res.Stderr = -1, err.Error()
		}
		done <- res
	}()
	return done
}

// testEnv is the environment without GREETER_* and OTEL_* settings, as
// e2etest runs the binaries.
func testEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GREETER_") && !strings.HasPrefix(kv, "OTEL_") {
			env = append(env, kv)
		}
	}
	return env
}

// waitForLog waits until srv has logged a line containing s.
func waitForLog(ctx context.Context, t *testing.T, srv *e2etest.Server, s string) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !strings.Contains(srv.Log.String(), s) {
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("greeterd did not log %s\n%s", s, srv.Log.String())
		}
	}
}
