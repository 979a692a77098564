// Package e2etest builds the real greeterd and greeter binaries once per test
// binary and runs them as separate processes over loopback, so end-to-end
// tests exercise exactly what users run. It also runs a real MinIO, the S3
// server that greeterd's S3 store is tested against.
package e2etest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Binaries are the paths of the built commands.
type Binaries struct {
	Greeterd string
	Greeter  string
}

// Build compiles greeterd and greeter into dir. Call it from TestMain.
func Build(dir string) (Binaries, error) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	b := Binaries{Greeterd: filepath.Join(dir, "greeterd"), Greeter: filepath.Join(dir, "greeter")}
	for out, pkg := range map[string]string{b.Greeterd: "./cmd/greeterd", b.Greeter: "./cmd/greeter"} {
		cmd := exec.Command("go", "build", "-race", "-o", out, pkg)
		cmd.Dir = root
		if msg, err := cmd.CombinedOutput(); err != nil {
			return b, fmt.Errorf("building %s: %v\n%s", pkg, err, msg)
		}
	}
	return b, nil
}

// Server is a running greeterd.
type Server struct {
	t       testing.TB
	cmd     *exec.Cmd
	Addr    string
	Stdout  *SyncBuffer
	Log     *SyncBuffer // everything greeterd wrote to stderr (JSON logs)
	exited  chan struct{}
	exitErr error
}

// SyncBuffer is a bytes.Buffer safe for concurrent use.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// StartServer runs greeterd with args plus "--listen 127.0.0.1:0
// --log-format json --drain-delay 0" (args may override them) and waits until it listens (its INFO line "greeterd
// listening", so args must not raise --log-level above info). The server is stopped
// (SIGTERM, then SIGKILL) when the test ends.
func (b Binaries) StartServer(t testing.TB, env []string, args ...string) *Server {
	t.Helper()
	// No drain delay unless a test asks for one (a later flag wins): the
	// 2 s default would add to every server stop in the suite.
	args = append([]string{"--listen", "127.0.0.1:0", "--log-format", "json", "--drain-delay", "0"}, args...)
	cmd := exec.Command(b.Greeterd, args...)
	cmd.Env = append(cleanEnv(), env...)
	setParentDeathSignal(cmd) // a test binary that dies leaves no greeterd behind
	s := &Server{t: t, cmd: cmd, Stdout: &SyncBuffer{}, Log: &SyncBuffer{}, exited: make(chan struct{})}
	cmd.Stdout = s.Stdout
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			s.Log.Write(append(line, '\n'))
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal(line, &rec) == nil && rec.Msg == "greeterd listening" {
				select {
				case addr <- rec.Addr:
				default:
				}
			}
		}
		io.Copy(io.Discard, pr)
	}()
	go func() {
		s.exitErr = cmd.Wait()
		pw.Close()
		close(s.exited)
	}()
	t.Cleanup(func() { s.Stop(10 * time.Second) })
	select {
	case s.Addr = <-addr:
		return s
	case <-s.exited:
		t.Fatalf("greeterd exited before listening: %v\n%s", s.exitErr, s.Log.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("greeterd did not start listening within 60s\n%s", s.Log.String())
	}
	return nil
}

// Stop sends SIGTERM and waits up to grace for a clean exit, then kills.
// It returns the process's exit error (nil for a clean exit).
func (s *Server) Stop(grace time.Duration) error {
	select {
	case <-s.exited:
		return s.exitErr
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(grace):
		s.cmd.Process.Kill()
		<-s.exited
		return errors.New("greeterd did not stop after SIGTERM")
	}
	return s.exitErr
}

// Kill sends SIGKILL and waits for the process to go.
func (s *Server) Kill() {
	s.cmd.Process.Kill()
	<-s.exited
}

// Result is what one CLI run produced.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// CLI runs greeter with args (and env added to a clean environment).
func (b Binaries) CLI(t testing.TB, env []string, args ...string) Result {
	t.Helper()
	return runToEnd(t, b.Greeter, env, args)
}

// cleanEnv is the test's environment without GREETER_* and OTEL_* settings,
// so a developer's shell cannot change what the tests see.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GREETER_") && !strings.HasPrefix(kv, "OTEL_") {
			env = append(env, kv)
		}
	}
	return env
}

// RunServer runs greeterd with args to completion (for flag errors and
// subcommands such as init and token) and returns what it printed.
func (b Binaries) RunServer(t testing.TB, env []string, args ...string) Result {
	t.Helper()
	return runToEnd(t, b.Greeterd, env, args)
}

func runToEnd(t testing.TB, bin string, env, args []string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(cleanEnv(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := Result{Stdout: stdout.String(), Stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		res.Code = exit.ExitCode()
	default:
		t.Fatalf("running %s %s: %v", filepath.Base(bin), strings.Join(args, " "), err)
	}
	return res
}

// Main builds the binaries into a temporary directory, stores their paths
// in bins, runs the tests and removes the directory. Call it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(e2etest.Main(m, &bins)) }
func Main(m *testing.M, bins *Binaries) int {
	dir, err := os.MkdirTemp("", "greeter-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if *bins, err = Build(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// PID returns greeterd's process id, for reading /proc/PID/status.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// RSS returns a process's resident set size in bytes, from /proc/PID/status.
func RSS(pid int) (int64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS line %q: %v", line, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no VmRSS", pid)
}
