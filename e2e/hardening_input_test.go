package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/greeter/greeter/proto/greeterpb"
)

// meteredServer is greeterd in dev mode whose stderr is counted byte for
// byte. e2etest.Server keeps only lines up to 1 MiB, which would hide the
// very lines these tests measure.
type meteredServer struct {
	addr, state string
	bytes       atomic.Int64 // stderr bytes so far
	rejected    atomic.Int64 // complete "rpc" records with code InvalidArgument
	longest     atomic.Int64 // the longest such record, in bytes
}

// startMetered starts greeterd with args and waits until it listens; it is
// stopped when the test ends.
func startMetered(t *testing.T, args ...string) *meteredServer {
	t.Helper()
	m := &meteredServer{state: t.TempDir()}
	args = append([]string{"--listen", "127.0.0.1:0", "--log-format", "json", "--state-dir", m.state,
		"--data-dir", filepath.Join(t.TempDir(), "data")}, append(faultLimits, args...)...)
	cmd := exec.Command(bins.Greeterd, args...)
	cmd.Env = faultEnv()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.read(stderr, addr)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(faultWait):
			cmd.Process.Kill()
			<-done
		}
		cmd.Wait()
	})
	select {
	case m.addr = <-addr:
	case <-done:
		t.Fatal("greeterd exited before listening")
	case <-time.After(faultWait):
		t.Fatal("greeterd did not start listening")
	}
	return m
}

// read counts stderr until it closes, sending the listening address once.
// Only the first 4 KiB of a line are kept to recognise it.
func (m *meteredServer) read(r interface{ Read([]byte) (int, error) }, addr chan<- string) {
	br := bufio.NewReaderSize(r, 64<<10)
	var head []byte
	var n int64
	for {
		chunk, err := br.ReadSlice('\n')
		m.bytes.Add(int64(len(chunk)))
		n += int64(len(chunk))
		if len(head) < 4<<10 {
			head = append(head, chunk[:min(len(chunk), 4<<10-len(head))]...)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			return
		}
		m.line(head, n, addr)
		head, n = head[:0], 0
	}
}

// line looks at one complete stderr line of n bytes starting with head.
func (m *meteredServer) line(head []byte, n int64, addr chan<- string) {
	switch {
	case bytes.Contains(head, []byte(`"msg":"greeterd listening"`)):
		var rec struct{ Addr string }
		if json.Unmarshal(head, &rec) == nil {
			select {
			case addr <- rec.Addr:
			default:
			}
		}
	case bytes.Contains(head, []byte(`"msg":"rpc"`)) && bytes.Contains(head, []byte(`"code":"InvalidArgument"`)):
		for old := m.longest.Load(); n > old && !m.longest.CompareAndSwap(old, n); old = m.longest.Load() {
		}
		m.rejected.Add(1)
	}
}

// TestHardeningEchoedInputLogBytes sends 1 MiB names and prefixes of
// control bytes to the real greeterd (RELIABILITY.md R4) and measures what
// each rejection costs in log bytes: the status is InvalidArgument naming
// the rule in under 512 bytes, and greeterd writes under 2 KiB to stderr
// per rejected call (before the fix: about 5 MiB, one token at the default
// rate writing some 100 MiB/s).
func TestHardeningEchoedInputLogBytes(t *testing.T) {
	faultNoLeaks(t)
	m := startMetered(t)
	conn := faultDial(t, m.addr, filepath.Join(m.state, "ca.pem"), strings.TrimSpace(string(devFile(t, m.state, "token"))))
	c := greeterpb.NewGreeterClient(conn)
	ctx := faultCtx(t)
	huge := strings.Repeat("\x01", 1<<20)

	calls := []struct {
		what string
		call func() error
	}{
		{"StatFile name", func() error { _, err := c.StatFile(ctx, &greeterpb.MetaData{Filename: huge}); return err }},
		{"DeleteFile name", func() error { _, err := c.DeleteFile(ctx, &greeterpb.MetaData{Filename: huge}); return err }},
		{"ListFiles prefix", func() error { _, err := c.ListFiles(ctx, &greeterpb.ListFilesRequest{Prefix: huge}); return err }},
		{"StatFile name again", func() error { _, err := c.StatFile(ctx, &greeterpb.MetaData{Filename: huge}); return err }},
	}
	start := m.bytes.Load()
	for i, call := range calls {
		before := m.bytes.Load()
		st := status.Convert(call.call())
		faultWaitFor(t, "the rejection's log record", func() bool { return m.rejected.Load() == int64(i+1) })
		if n := m.bytes.Load() - before; n >= 2<<10 {
			t.Errorf("%s: greeterd wrote %d log bytes for one rejected 1 MiB input, want under 2 KiB", call.what, n)
		}
		if st.Code() != codes.InvalidArgument || len(st.Message()) >= 512 || !strings.Contains(st.Message(), "(rule too_long)") {
			t.Errorf("%s: got %v with a %d-byte message %.200q, want InvalidArgument naming rule too_long in under 512 bytes",
				call.what, st.Code(), len(st.Message()), st.Message())
		}
	}
	per := (m.bytes.Load() - start) / int64(len(calls))
	t.Logf("log bytes per rejected 1 MiB input: %d (longest rpc record %d bytes)", per, m.longest.Load())
}

// TestHardeningDurationFlags runs the real greeterd with meaningless
// durations, on the command line and in the environment (RELIABILITY.md
// R6): each is a usage error, exit 2, naming the flag, before anything is
// started or written.
func TestHardeningDurationFlags(t *testing.T) {
	tests := []struct {
		env  []string
		args []string
		want string
	}{
		{nil, []string{"--resumable-ttl", "0"}, "greeterd: --resumable-ttl must be positive, got 0s"},
		{nil, []string{"--health-interval", "-1s"}, "greeterd: --health-interval must be positive, got -1s"},
		{nil, []string{"--health-interval", "1ns"}, "greeterd: --health-interval must be at least 100ms, got 1ns"},
		{[]string{"GREETER_IDLE_TIMEOUT=0"}, nil, "greeterd: --idle-timeout must be positive, got 0s"},
		{[]string{"GREETER_TLS_RELOAD_INTERVAL=-5m"}, nil, "greeterd: --tls-reload-interval must be positive, got -5m0s"},
		{nil, []string{"--max-connection-age", "-1s"}, "greeterd: --max-connection-age must not be negative (0 means never), got -1s"},
		{nil, []string{"token", "--sub", "ada", "--ttl", "0"}, "greeterd: --ttl must be positive, got 0s"},
	}
	for _, tc := range tests {
		state := t.TempDir()
		args := append(slices.Clone(tc.args), "--state-dir", state)
		res := bins.RunServer(t, tc.env, args...)
		if res.Code != 2 || !strings.Contains(res.Stderr, tc.want) {
			t.Errorf("greeterd %v %s: exit %d, stderr %q; want 2 and %q", tc.env, strings.Join(args, " "), res.Code, res.Stderr, tc.want)
		}
		if entries, err := os.ReadDir(state); err != nil || len(entries) != 0 {
			t.Errorf("greeterd %v %s wrote %v into its state dir (%v), want nothing", tc.env, strings.Join(args, " "), entries, err)
		}
	}
}
