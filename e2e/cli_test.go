// Package e2e runs the real greeterd and greeter binaries against each other
// over TLS on loopback. It imports nothing of the project but the test
// harness that builds and starts them.
package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/greeter/greeter/e2e/e2etest"
)

var bins e2etest.Binaries

func TestMain(m *testing.M) { os.Exit(e2etest.Main(m, &bins)) }

func writeRandom(t *testing.T, path string, n int) []byte {
	t.Helper()
	data := make([]byte, n)
	rand.Read(data)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return data
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// devServer starts greeterd in zero-config dev mode in a fresh state dir.
func devServer(t *testing.T, args ...string) (*e2etest.Server, string) {
	t.Helper()
	state := t.TempDir()
	srv := bins.StartServer(t, nil, append([]string{"--state-dir", state}, args...)...)
	return srv, state
}

// cli runs greeter against srv with the dev state dir and fails the test
// unless the exit code is want.
func cli(t *testing.T, srv *e2etest.Server, state string, want int, args ...string) e2etest.Result {
	t.Helper()
	res := bins.CLI(t, nil, append([]string{"--addr", srv.Addr, "--state-dir", state}, args...)...)
	if res.Code != want {
		t.Fatalf("greeter %s: exit code %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), res.Code, want, res.Stdout, res.Stderr)
	}
	return res
}

func TestDevModeCLIRoundTrip(t *testing.T) {
	srv, state := devServer(t)
	// greeterd prints the hint before it logs that it listens, but the two
	// pipes are copied by different goroutines: give stdout a moment.
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(srv.Stdout.String(), "--state-dir "+state) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(srv.Stdout.String(), "--state-dir "+state) {
		t.Errorf("greeterd did not print the command that connects to it; stdout:\n%s", srv.Stdout.String())
	}
	for _, f := range []string{"ca.pem", "server.pem", "server-key.pem", "client.pem", "client-key.pem", "jwt-signing-key.pem", "jwt-public-key.pem", "token"} {
		if _, err := os.Stat(filepath.Join(state, f)); err != nil {
			t.Errorf("dev mode did not create %s: %v", f, err)
		}
	}

	res := cli(t, srv, state, 0, "hello", "--name", "Ada", "--age", "36")
	if got := strings.TrimSpace(res.Stdout); got != "Hello, Ada! Your age is 36" {
		t.Fatalf("hello printed %q", got)
	}

	work := t.TempDir()
	src := filepath.Join(work, "report.pdf")
	data := writeRandom(t, src, 3<<20+123)
	res = cli(t, srv, state, 0, "--json", "upload", src, "--as", "docs/report.pdf")
	var up struct {
		Name   string
		Size   int64
		SHA256 string
	}
	if err := json.Unmarshal([]byte(res.Stdout), &up); err != nil {
		t.Fatalf("upload --json printed %q: %v", res.Stdout, err)
	}
	if up.Size != int64(len(data)) || up.SHA256 != sum(data) {
		t.Fatalf("upload reported %+v, want size %d sha256 %s", up, len(data), sum(data))
	}

	dst := filepath.Join(work, "copy.pdf")
	cli(t, srv, state, 0, "download", "docs/report.pdf", "-o", dst)
	got, err := os.ReadFile(dst)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("downloaded %d bytes (%v), want the %d uploaded", len(got), err, len(data))
	}

	res = cli(t, srv, state, 0, "ls", "docs/")
	if !strings.Contains(res.Stdout, "docs/report.pdf") {
		t.Fatalf("ls docs/ printed %q", res.Stdout)
	}
	res = cli(t, srv, state, 0, "--json", "stat", "docs/report.pdf")
	var st map[string]any
	if err := json.Unmarshal([]byte(res.Stdout), &st); err != nil || st["sha256"] != sum(data) {
		t.Fatalf("stat --json printed %q (%v), want sha256 %s", res.Stdout, err, sum(data))
	}

	cli(t, srv, state, 0, "rm", "docs/report.pdf")
	res = cli(t, srv, state, 3, "stat", "docs/report.pdf")
	if !strings.Contains(res.Stderr, "NotFound") {
		t.Fatalf("stat after rm: stderr %q, want NotFound", res.Stderr)
	}
	res = cli(t, srv, state, 3, "download", "docs/report.pdf", "-o", filepath.Join(work, "gone.pdf"))
	if _, err := os.Stat(filepath.Join(work, "gone.pdf")); !os.IsNotExist(err) {
		t.Fatalf("a failed download left a file behind: %v", err)
	}
	entries, _ := os.ReadDir(work)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".part") {
			t.Errorf("a failed download left the temporary %s", e.Name())
		}
	}
}

func TestCLIRejectsBadInputWithClearErrors(t *testing.T) {
	srv, state := devServer(t)
	work := t.TempDir()
	src := filepath.Join(work, "x.bin")
	writeRandom(t, src, 10)
	for _, c := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"traversal name", []string{"upload", src, "--as", "../../etc/passwd"}, 5, "InvalidArgument"},
		{"missing file", []string{"download", "nope.bin", "-o", filepath.Join(work, "nope")}, 3, "NotFound"},
		{"unknown command", []string{"frobnicate"}, 2, "unknown command"},
		{"upload without file", []string{"upload"}, 2, "upload takes one FILE"},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := cli(t, srv, state, c.code, c.args...)
			if !strings.Contains(res.Stderr, c.msg) {
				t.Fatalf("stderr %q, want it to mention %q", res.Stderr, c.msg)
			}
		})
	}
}

func TestPlaintextRequiresLoopback(t *testing.T) {
	res := bins.RunServer(t, nil, "--plaintext", "--listen", "0.0.0.0:0", "--state-dir", t.TempDir())
	if res.Code != 2 || !strings.Contains(res.Stderr, "loopback") {
		t.Fatalf("greeterd --plaintext on 0.0.0.0: exit %d, stderr %q; want exit 2 mentioning loopback", res.Code, res.Stderr)
	}
}
