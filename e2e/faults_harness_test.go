package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/greeter/greeter/e2e/e2etest"
)

// These tests break things under a real greeterd (RELIABILITY.md F8-F10,
// U6-U10, R2-R4, T5): they kill it, kill its clients, stall them, fill
// and remove its disk, and rotate its keys under load, then check what
// users and the disk see afterwards. Every loop and wait is bounded; all
// traffic stays on loopback. None of them runs in parallel: each checks
// that the test process's goroutines and file descriptors are back to
// where they were when it started.

// faultLimits relaxes the rate limits so that the tests' own traffic is
// never throttled or refused, which would hide the fault under test.
var faultLimits = []string{
	"--rate-peer", "100000", "--rate-peer-burst", "100000",
	"--rate-unary", "100000", "--rate-unary-burst", "100000",
	"--rate-transfer", "1000", "--rate-transfer-burst", "1000",
	"--max-transfers-per-identity", "64",
}

// faultWait bounds every wait for another process.
const faultWait = 60 * time.Second

// faultNoLeaks checks, when the test ends (after its servers stopped),
// that the test process has no goroutine and no open file descriptor more
// than now (RELIABILITY.md R4).
func faultNoLeaks(t *testing.T) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	fds := faultCountFDs(t, os.Getpid())
	t.Cleanup(func() {
		goleak.VerifyNone(t, ignore)
		// Descriptors close with their goroutines; a few may lag a little.
		var now int
		if !faultPoll(10*time.Second, func() bool { now = faultCountFDs(t, os.Getpid()); return now <= fds }) {
			t.Errorf("the test process has %d open file descriptors, %d when the test started", now, fds)
		}
	})
}

// faultPoll checks cond every 20ms until it holds or timeout passes, and
// reports whether it held. It is for conditions of another process (a
// file on disk, /proc) that nothing announces.
func faultPoll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}

func faultWaitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if !faultPoll(faultWait, cond) {
		t.Fatalf("waited %v for %s", faultWait, what)
	}
}

// faultCountFDs counts the open file descriptors of process pid.
func faultCountFDs(t *testing.T, pid int) int {
	t.Helper()
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatalf("listing the descriptors of pid %d: %v", pid, err)
	}
	return len(entries)
}

// faultFDTargets returns what process pid's open descriptors refer to:
// paths, "socket:[inode]", "pipe:[inode]" and the like.
func faultFDTargets(t *testing.T, pid int) []string {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("listing the descriptors of pid %d: %v", pid, err)
	}
	var out []string
	for _, e := range entries {
		if target, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil {
			out = append(out, target)
		}
	}
	return out
}

// faultCountTargets counts pid's descriptors whose target contains s.
func faultCountTargets(t *testing.T, pid int, s string) int {
	t.Helper()
	n := 0
	for _, target := range faultFDTargets(t, pid) {
		if strings.Contains(target, s) {
			n++
		}
	}
	return n
}

// faultRSS reads the resident set size of process pid.
func faultRSS(t *testing.T, pid int) int64 {
	t.Helper()
	n, err := e2etest.RSS(pid)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func faultSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// faultRig is one greeterd in dev mode with its own state and data dirs,
// and what the tests need to reach it.
type faultRig struct {
	t     *testing.T
	state string
	data  string
	args  []string
	srv   *e2etest.Server
	work  string // scratch space for the CLI's files
}

// newFaultRig starts greeterd on a fresh state dir and on data (a fresh
// dir when empty), with the relaxed limits and args.
func newFaultRig(t *testing.T, data string, args ...string) *faultRig {
	t.Helper()
	if data == "" {
		data = filepath.Join(t.TempDir(), "data")
	}
	r := &faultRig{t: t, state: t.TempDir(), data: data, args: args, work: t.TempDir()}
	r.start()
	return r
}

func (r *faultRig) start() {
	r.t.Helper()
	args := append([]string{"--state-dir", r.state, "--data-dir", r.data}, faultLimits...)
	r.srv = bins.StartServer(r.t, nil, append(args, r.args...)...)
}

// pid is the running greeterd's process id.
func (r *faultRig) pid() int { return r.srv.PID() }

// idleFDs waits until greeterd pid has no client connection left, only
// its listening socket, and returns how many descriptors it holds then.
// Tests that count descriptors run with a long --health-interval, so that
// no health probe holds a file meanwhile.
func (r *faultRig) idleFDs(pid int) int {
	r.t.Helper()
	faultWaitFor(r.t, "greeterd to have no client connection", func() bool { return faultCountTargets(r.t, pid, "socket:") == 1 })
	return faultCountFDs(r.t, pid)
}

func (r *faultRig) cliArgs(args []string) []string {
	return append([]string{"--addr", r.srv.Addr, "--state-dir", r.state}, args...)
}

// cli runs greeter to the end and fails the test unless it exits with want.
func (r *faultRig) cli(want int, args ...string) e2etest.Result {
	r.t.Helper()
	res := bins.CLI(r.t, nil, r.cliArgs(args)...)
	if res.Code != want {
		r.t.Fatalf("greeter %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), res.Code, want, res.Stdout, res.Stderr)
	}
	return res
}

// file writes n random bytes to a new file in the scratch dir.
func (r *faultRig) file(name string, n int) (path string, data []byte) {
	r.t.Helper()
	path = filepath.Join(r.work, name)
	return path, writeRandom(r.t, path, n)
}

// ls lists the caller's files as name → sha256.
func (r *faultRig) ls() map[string]string {
	r.t.Helper()
	res := r.cli(0, "--json", "ls")
	var rows []struct {
		Name   string `json:"name"`
		SHA256 string `json:"sha256"`
	}
	if err := json.Unmarshal([]byte(res.Stdout), &rows); err != nil {
		r.t.Fatalf("ls --json printed %q: %v", res.Stdout, err)
	}
	out := map[string]string{}
	for _, row := range rows {
		out[row.Name] = row.SHA256
	}
	return out
}

// temps returns the upload temporaries in the data dir's tmp/ and their
// sizes.
func (r *faultRig) temps() map[string]int64 {
	r.t.Helper()
	return faultFiles(r.t, filepath.Join(r.data, "tmp"), ".tmp")
}

// parts returns the resumable uploads' part files and their sizes.
func (r *faultRig) parts() map[string]int64 {
	r.t.Helper()
	out := map[string]int64{}
	owners, err := os.ReadDir(filepath.Join(r.data, "uploads"))
	if err != nil {
		r.t.Fatal(err)
	}
	for _, o := range owners {
		for name, size := range faultFiles(r.t, filepath.Join(r.data, "uploads", o.Name()), ".part") {
			out[o.Name()+"/"+name] = size
		}
	}
	return out
}

// faultFiles lists the files in dir whose names end in suffix, with sizes.
// Files that vanish while it looks are left out.
func faultFiles(t *testing.T, dir, suffix string) map[string]int64 {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("listing %s: %v", dir, err)
	}
	out := map[string]int64{}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), suffix) {
			continue
		}
		if fi, err := e.Info(); err == nil {
			out[e.Name()] = fi.Size()
		}
	}
	return out
}

// faultCountAtLeast counts the files in m holding at least min bytes.
func faultCountAtLeast(m map[string]int64, min int64) int {
	n := 0
	for _, size := range m {
		if size >= min {
			n++
		}
	}
	return n
}

// faultProc is a greeter CLI running in the background.
type faultProc struct {
	cmd  *exec.Cmd
	out  bytes.Buffer
	done chan struct{}
	err  error
}

// startCLI starts greeter in the background. The test kills it if it is
// still running when the test ends.
func (r *faultRig) startCLI(args ...string) *faultProc {
	r.t.Helper()
	p := &faultProc{cmd: exec.Command(bins.Greeter, r.cliArgs(args)...), done: make(chan struct{})}
	p.cmd.Env = faultEnv()
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	if err := p.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	r.t.Cleanup(p.kill)
	return p
}

// kill SIGKILLs the CLI and waits for it to go.
func (p *faultProc) kill() {
	p.cmd.Process.Kill()
	<-p.done
}

// running reports whether the CLI has not exited yet.
func (p *faultProc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// wait waits for the CLI to exit and returns its exit code and output.
func (p *faultProc) wait(t *testing.T) (int, string) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(2 * time.Minute):
		p.kill()
		t.Fatalf("greeter %v did not finish within 2 minutes; output:\n%s", p.cmd.Args[1:], p.out.String())
	}
	var exit *exec.ExitError
	switch {
	case p.err == nil:
		return 0, p.out.String()
	case errors.As(p.err, &exit):
		return exit.ExitCode(), p.out.String()
	default:
		t.Fatalf("greeter %v: %v", p.cmd.Args[1:], p.err)
		return 0, ""
	}
}

// faultEnv is the environment without GREETER_* and OTEL_* settings, as
// the harness gives the binaries it runs.
func faultEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GREETER_") && !strings.HasPrefix(kv, "OTEL_") {
			env = append(env, kv)
		}
	}
	return env
}

// logCount counts the server's log records with message msg.
func (r *faultRig) logCount(msg string) int {
	return strings.Count(r.srv.Log.String(), `"msg":"`+msg+`"`)
}
