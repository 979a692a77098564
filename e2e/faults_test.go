package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/greeter/greeter/e2e/e2etest"
	"github.com/greeter/greeter/proto/greeterpb"
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

// faultMountTmpfs mounts a tmpfs of size bytes on dir and unmounts it when
// the test ends. Call it before starting a server on it, so that the
// server has stopped by the time it is unmounted. It reports false when
// this process may not mount.
func faultMountTmpfs(t *testing.T, dir string, size int64) bool {
	t.Helper()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		t.Logf("cannot mount a tmpfs on %s: %v", dir, err)
		return false
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmounting %s: %v", dir, err)
		}
	})
	return true
}

// faultRemount remounts the tmpfs on dir read-only or read-write. A
// remount to read-only fails with EBUSY while a file is open for writing
// (a health probe, say), so it is retried a bounded number of times.
func faultRemount(t *testing.T, dir string, readOnly bool) {
	t.Helper()
	flags := uintptr(unix.MS_REMOUNT)
	if readOnly {
		flags |= unix.MS_RDONLY
	}
	var err error
	faultPoll(10*time.Second, func() bool {
		err = unix.Mount("", dir, "", flags, "")
		return !errors.Is(err, unix.EBUSY)
	})
	if err != nil {
		t.Fatalf("remounting %s (read-only %v): %v", dir, readOnly, err)
	}
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

// faultBearer sends a bearer token with every call, over TLS only.
type faultBearer string

func (b faultBearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (faultBearer) RequireTransportSecurity() bool { return true }

// faultTLS is a TLS 1.3 client configuration trusting the CA in caFile.
func faultTLS(t *testing.T, caFile string) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("%s holds no certificate", caFile)
	}
	return &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS13}
}

// faultDial returns a gRPC connection to addr over TLS trusting caFile,
// sending token; it is closed when the test ends.
func faultDial(t *testing.T, addr, caFile, token string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(credentials.NewTLS(faultTLS(t, caFile))),
		grpc.WithPerRPCCredentials(faultBearer(token)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// conn dials the rig's server with the dev CA and dev token.
func (r *faultRig) conn() *grpc.ClientConn {
	r.t.Helper()
	token, err := os.ReadFile(filepath.Join(r.state, "token"))
	if err != nil {
		r.t.Fatal(err)
	}
	return faultDial(r.t, r.srv.Addr, filepath.Join(r.state, "ca.pem"), strings.TrimSpace(string(token)))
}

// faultCtx is a context bounded by faultWait.
func faultCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), faultWait)
	t.Cleanup(cancel)
	return ctx
}

// faultUpload uploads data as name over a plain (non-resumable) stream,
// declaring size and sha256, and checks the server's answer.
func faultUpload(ctx context.Context, c greeterpb.GreeterClient, name string, data []byte) error {
	st, err := faultBeginUpload(ctx, c, name, data)
	if err != nil {
		return err
	}
	return faultFinishUpload(st, data)
}

func faultBeginUpload(ctx context.Context, c greeterpb.GreeterClient, name string, data []byte) (greeterpb.Greeter_UploadFileClient, error) {
	st, err := c.UploadFile(ctx)
	if err != nil {
		return nil, err
	}
	size := int64(len(data))
	md := &greeterpb.MetaData{Filename: name, Size: &size, Sha256: faultSum(data)}
	if err := st.Send(&greeterpb.UploadFileRequest{Request: &greeterpb.UploadFileRequest_Metadata{Metadata: md}}); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return st, nil
}

// faultFinishUpload sends data in 64 KiB chunks and waits for the answer.
func faultFinishUpload(st greeterpb.Greeter_UploadFileClient, data []byte) error {
	for chunk := range slices.Chunk(data, 64<<10) {
		err := st.Send(&greeterpb.UploadFileRequest{Request: &greeterpb.UploadFileRequest_ChunkData{ChunkData: chunk}})
		if errors.Is(err, io.EOF) {
			break // the server ended the stream; CloseAndRecv says why
		}
		if err != nil {
			return err
		}
	}
	resp, err := st.CloseAndRecv()
	if err != nil {
		return err
	}
	if resp.GetSha256() != faultSum(data) || resp.GetSize() != int64(len(data)) {
		return fmt.Errorf("the server stored %d bytes with sha256 %s, want %d bytes with %s", resp.GetSize(), resp.GetSha256(), len(data), faultSum(data))
	}
	return nil
}

// waitHealth waits, watching grpc.health.v1, until both the server ("")
// and "Greeter" report want, and checks that a unary Check agrees.
func waitHealth(t *testing.T, conn *grpc.ClientConn, want healthpb.HealthCheckResponse_ServingStatus) {
	t.Helper()
	hc := healthpb.NewHealthClient(conn)
	for _, svc := range []string{"", "Greeter"} {
		ctx, cancel := context.WithTimeout(t.Context(), faultWait)
		w, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil {
			cancel()
			t.Fatalf("health Watch(%q): %v", svc, err)
		}
		var last healthpb.HealthCheckResponse_ServingStatus
		for last != want {
			resp, err := w.Recv()
			if err != nil {
				cancel()
				t.Fatalf("health Watch(%q) while waiting for %v (last %v): %v", svc, want, last, err)
			}
			last = resp.GetStatus()
		}
		cancel()
		resp, err := hc.Check(faultCtx(t), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || resp.GetStatus() != want {
			t.Fatalf("health Check(%q) = %v, %v; Watch said %v", svc, resp.GetStatus(), err, want)
		}
	}
}

// logCount counts the server's log records with message msg.
func (r *faultRig) logCount(msg string) int {
	return strings.Count(r.srv.Log.String(), `"msg":"`+msg+`"`)
}

// TestFaultHealthFollowsStorage makes the data dir read-only and then
// removes it under a running greeterd: grpc.health.v1 must turn
// NOT_SERVING for "" and "Greeter" each time, uploads must fail with
// Unavailable (exit 6; the store answered Internal before issue 13), and once
// the directory is writable (or back) the server must report SERVING and
// store uploads in it again, logging each change once (RELIABILITY.md F9).
func TestFaultHealthFollowsStorage(t *testing.T) {
	faultNoLeaks(t)
	mnt := t.TempDir()
	mounted := faultMountTmpfs(t, mnt, 64<<20)
	r := newFaultRig(t, filepath.Join(mnt, "data"), "--health-interval", "100ms")
	conn := r.conn()
	waitHealth(t, conn, healthpb.HealthCheckResponse_SERVING)
	src, _ := r.file("probe.bin", 64<<10)
	episodes := 0

	// Read-only. As root, chmod does not stop writes; a read-only remount
	// does. Without mount permission, root cannot make the directory
	// read-only at all, so only the removal below is tested.
	var makeReadOnly, makeWritable func()
	switch {
	case mounted:
		makeReadOnly = func() { faultRemount(t, mnt, true) }
		makeWritable = func() { faultRemount(t, mnt, false) }
	case os.Geteuid() != 0:
		tmp := filepath.Join(r.data, "tmp")
		makeReadOnly = func() { os.Chmod(tmp, 0o500) }
		makeWritable = func() { os.Chmod(tmp, 0o750) }
	default:
		t.Log("root without mount permission: the read-only case is not tested here (diskstore's TestCheckUnwritable covers a broken tmp/)")
	}
	if makeReadOnly != nil {
		makeReadOnly()
		episodes++
		waitHealth(t, conn, healthpb.HealthCheckResponse_NOT_SERVING)
		if res := bins.CLI(t, nil, r.cliArgs([]string{"upload", "--no-resume", "--retries", "0", src, "--as", "ro.bin"})...); res.Code != 6 {
			t.Errorf("an upload to a read-only data dir: exit %d, want 6 (Unavailable)\nstdout: %s\nstderr: %s", res.Code, res.Stdout, res.Stderr)
		}
		makeWritable()
		waitHealth(t, conn, healthpb.HealthCheckResponse_SERVING)
		r.cli(0, "upload", "--no-resume", src, "--as", "after-ro.bin")
	}

	// Removed, then created again: the store reopens the new directory.
	faultWaitFor(t, "the data dir to be removed", func() bool { return os.RemoveAll(r.data) == nil })
	episodes++
	waitHealth(t, conn, healthpb.HealthCheckResponse_NOT_SERVING)
	if res := bins.CLI(t, nil, r.cliArgs([]string{"upload", "--no-resume", "--retries", "0", src, "--as", "gone.bin"})...); res.Code != 6 {
		t.Errorf("an upload with the data dir removed: exit %d, want 6 (Unavailable)\nstdout: %s\nstderr: %s", res.Code, res.Stdout, res.Stderr)
	}
	if err := os.Mkdir(r.data, 0o750); err != nil {
		t.Fatal(err)
	}
	waitHealth(t, conn, healthpb.HealthCheckResponse_SERVING)
	r.cli(0, "upload", "--no-resume", src, "--as", "back.bin")
	if got := r.ls(); len(got) != 1 || got["back.bin"] == "" {
		t.Errorf("files after the data dir came back: %v, want only back.bin", got)
	}
	found := false
	filepath.WalkDir(filepath.Join(r.data, "objects"), func(p string, d fs.DirEntry, err error) error {
		found = found || (err == nil && d.Name() == "back.bin")
		return nil
	})
	if !found {
		t.Errorf("back.bin is not in the recreated %s", r.data)
	}

	// Each change of status is logged once, not once per probe.
	faultWaitFor(t, "the recovery log records", func() bool { return r.logCount("storage healthy again: health reports SERVING") >= episodes })
	if got := r.logCount("storage unhealthy: health reports NOT_SERVING"); got != episodes {
		t.Errorf("%d unhealthy records for %d episodes:\n%s", got, episodes, r.srv.Log.String())
	}
	if got := r.logCount("storage healthy again: health reports SERVING"); got != episodes {
		t.Errorf("%d recovery records for %d episodes", got, episodes)
	}
}

// TestFaultKillServerDuringUploads SIGKILLs greeterd while plain and
// resumable uploads run (RELIABILITY.md F10, U7). After a restart on the
// same dirs: only files complete before the kill are visible, each with
// its digest; the janitor removed every temporary; the server serves; and
// the resumable uploads continue from what was stored.
func TestFaultKillServerDuringUploads(t *testing.T) {
	faultNoLeaks(t)
	// Throttled, so that the uploads are surely in flight when killed.
	r := newFaultRig(t, "", "--bandwidth-per-identity", "8MiB")
	want := map[string]string{}
	for i := range 3 {
		path, data := r.file(fmt.Sprintf("done-%d.bin", i), 256<<10+i)
		r.cli(0, "upload", path)
		want[filepath.Base(path)] = faultSum(data)
	}

	const size = 16 << 20
	type inflight struct {
		name, path, sum string
		resumable       bool
		proc            *faultProc
	}
	var ups []inflight
	for i := range 4 {
		path, data := r.file(fmt.Sprintf("inflight-%d.bin", i), size)
		up := inflight{name: filepath.Base(path), path: path, sum: faultSum(data), resumable: i%2 == 1}
		args := []string{"upload", "--retries", "0", path}
		if !up.resumable {
			args = append(args, "--no-resume")
		}
		up.proc = r.startCLI(args...)
		ups = append(ups, up)
	}
	// Kill once every upload has bytes on the server's disk.
	faultWaitFor(t, "4 uploads to be under way", func() bool {
		return faultCountAtLeast(r.temps(), 1) == 2 && faultCountAtLeast(r.parts(), 1) == 2
	})
	r.srv.Kill()
	for _, up := range ups {
		up.proc.kill()
	}
	if n := len(r.temps()); n != 2 {
		t.Errorf("after SIGKILL tmp/ holds %d temporaries, want the 2 of the plain uploads", n)
	}
	// The janitor keeps temporaries younger than diskstore.MinTemporaryAge
	// (1 h; another process might still be writing them, R7): age these as a
	// restart an hour or more later would find them.
	old := time.Now().Add(-2 * time.Hour) // twice diskstore.MinTemporaryAge
	for name := range r.temps() {
		if err := os.Chtimes(filepath.Join(r.data, "tmp", name), old, old); err != nil {
			t.Fatal(err)
		}
	}

	r.start()
	if n := len(r.temps()); n != 0 {
		t.Errorf("after restart tmp/ still holds %d temporaries: %v", n, r.temps())
	}
	if !strings.Contains(r.srv.Log.String(), "janitor removed stale temporaries") {
		t.Errorf("the janitor did not report removing the temporaries:\n%s", r.srv.Log.String())
	}
	got := r.ls()
	for name, sum := range got {
		if want[name] != sum {
			t.Errorf("after restart %s is visible with sha256 %q; want only the files completed before the kill: %v", name, sum, want)
		}
	}
	for name := range want {
		if _, ok := got[name]; !ok {
			t.Errorf("%s, completed before the kill, is missing after restart", name)
		}
	}
	dst := filepath.Join(r.work, "copy.bin")
	r.cli(0, "download", "done-1.bin", "-o", dst)
	if b, err := os.ReadFile(dst); err != nil || faultSum(b) != want["done-1.bin"] {
		t.Errorf("done-1.bin downloaded after restart does not match (%v)", err)
	}
	r.cli(0, "hello", "--name", "after-kill")

	// The resumable uploads kept their bytes and finish now.
	for _, up := range ups {
		if !up.resumable {
			continue
		}
		r.cli(0, "upload", "--retries", "0", up.path)
		res := r.cli(0, "--json", "stat", up.name)
		if !strings.Contains(res.Stdout, up.sum) {
			t.Errorf("resumed %s: stat %s, want sha256 %s", up.name, res.Stdout, up.sum)
		}
	}
	if n := len(r.parts()); n != 0 {
		t.Errorf("%d part files remain after the resumed uploads completed", n)
	}
}

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

// TestFaultClientsVanish SIGKILLs CLI uploads at random points, from
// before the connection to the last bytes (RELIABILITY.md U6, U7). Once
// the server has noticed, no temporary remains, no partial file is
// visible, greeterd's open descriptors are back to where they were, and it
// still serves.
func TestFaultClientsVanish(t *testing.T) {
	faultNoLeaks(t)
	r := newFaultRig(t, "", "--bandwidth-per-identity", "16MiB", "--health-interval", "1h")
	r.cli(0, "hello")
	pid := r.pid()
	fds := r.idleFDs(pid)

	const seed, kills, size = 7, 10, 8 << 20
	rng := rand.New(rand.NewPCG(seed, seed))
	t.Logf("seed %d", seed)
	path, data := r.file("victim.bin", size)
	succeeded := map[string]bool{} // uploads whose CLI exited 0 before it was killed
	for i := range kills {
		point := rng.Int64N(size)
		name := fmt.Sprintf("victim-%d.bin", i)
		p := r.startCLI("upload", "--no-resume", "--retries", "0", path, "--as", name)
		if point < 1<<20 {
			point = 0 // kill at once: during start-up, hashing or the handshake
		} else {
			faultWaitFor(t, fmt.Sprintf("upload %d to reach byte %d", i, point), func() bool {
				return !p.running() || faultCountAtLeast(r.temps(), point) > 0
			})
		}
		p.kill()
		succeeded[name] = p.err == nil
		t.Logf("upload %d killed once its temporary held %d bytes or more (had exited already: %v)", i, point, succeeded[name])
		faultWaitFor(t, fmt.Sprintf("the server to drop upload %d's temporary", i), func() bool { return len(r.temps()) == 0 })
	}
	// A client killed after its last byte may or may not have had its
	// upload committed; whatever is visible must be the whole file.
	got := r.ls()
	for name, sum := range got {
		if sum != faultSum(data) {
			t.Errorf("%s is visible with sha256 %s: a partial upload", name, sum)
		}
	}
	for name, ok := range succeeded {
		if _, visible := got[name]; ok && !visible {
			t.Errorf("%s was reported stored but is not visible", name)
		}
	}
	t.Logf("%d of %d uploads killed at random points were committed whole", len(got), kills)
	if now := r.idleFDs(pid); now != fds {
		t.Errorf("greeterd holds %d descriptors after the clients vanished, %d before: %q", now, fds, faultFDTargets(t, pid))
	}
	r.cli(0, "upload", "--no-resume", path, "--as", "after.bin")
}

// TestFaultSlowReader starts a download of a large file and never reads
// it (RELIABILITY.md U10): greeterd must not buffer the file (its RSS
// stays well below the file's size) and must end the handler, closing the
// file, when the client cancels.
func TestFaultSlowReader(t *testing.T) {
	faultNoLeaks(t)
	r := newFaultRig(t, "", "--health-interval", "1h")
	const size = 96 << 20
	path, _ := r.file("big.bin", size)
	r.cli(0, "upload", "--no-resume", path)

	conn := r.conn()
	c := greeterpb.NewGreeterClient(conn)
	if _, err := c.SayHello(faultCtx(t), &greeterpb.HelloRequest{Name: "slow"}); err != nil {
		t.Fatal(err)
	}
	pid := r.pid()
	rss := faultRSS(t, pid)

	ctx, cancel := context.WithCancel(faultCtx(t))
	defer cancel()
	st, err := c.DownloadFile(ctx, &greeterpb.MetaData{Filename: "big.bin"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Header(); err != nil { // the handler runs and has the file open
		t.Fatal(err)
	}
	if n := faultCountTargets(t, pid, "big.bin"); n != 1 {
		t.Fatalf("greeterd has big.bin open %d times during the stalled download, want once", n)
	}
	// Another client downloads the whole file meanwhile; the stalled
	// stream has had all that time to fill whatever buffers it can.
	dst := filepath.Join(r.work, "copy.bin")
	r.cli(0, "download", "--no-resume", "big.bin", "-o", dst)
	grown := faultRSS(t, pid) - rss
	t.Logf("greeterd RSS grew by %d KiB with a stalled %d MiB download", grown>>10, size>>20)
	if grown > size/4 {
		t.Errorf("greeterd RSS grew by %d MiB with a stalled download of %d MiB: it buffers what the client does not read", grown>>20, size>>20)
	}

	cancel()
	if _, err := st.Recv(); status.Code(err) != codes.Canceled {
		t.Errorf("Recv after cancel = %v, want Canceled", err)
	}
	faultWaitFor(t, "greeterd to close big.bin after the cancel", func() bool { return faultCountTargets(t, pid, "big.bin") == 0 })
}

// TestFaultIdleUpload sends an upload's metadata and then nothing
// (RELIABILITY.md U8): with --idle-timeout 1s the server ends it with
// DeadlineExceeded and leaves no temporary and no file.
func TestFaultIdleUpload(t *testing.T) {
	faultNoLeaks(t)
	r := newFaultRig(t, "", "--idle-timeout", "1s")
	c := greeterpb.NewGreeterClient(r.conn())
	st, err := faultBeginUpload(faultCtx(t), c, "idle.bin", []byte("never sent"))
	if err != nil {
		t.Fatal(err)
	}
	// Wait for the server's verdict without closing our side.
	err = st.RecvMsg(new(greeterpb.StringResponse))
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("an idle upload ended with %v, want DeadlineExceeded", err)
	}
	if temps := r.temps(); len(temps) != 0 {
		t.Errorf("the idle upload left the temporaries %v", temps)
	}
	if _, err := c.StatFile(faultCtx(t), &greeterpb.MetaData{Filename: "idle.bin"}); status.Code(err) != codes.NotFound {
		t.Errorf("StatFile of the idle upload = %v, want NotFound", err)
	}
}

// TestFaultManyIdleConnections opens 200 TLS connections that do nothing:
// a normal call still works, greeterd's RSS stays bounded, and closing
// them gives back every descriptor.
func TestFaultManyIdleConnections(t *testing.T) {
	faultNoLeaks(t)
	// 200 connections from one address stand for 200 clients: above the
	// default per-IP cap of 64.
	r := newFaultRig(t, "", "--health-interval", "1h", "--max-conns-per-ip", "256")
	r.cli(0, "hello")
	pid := r.pid()
	fds, rss := r.idleFDs(pid), faultRSS(t, pid)

	const n = 200
	token, err := os.ReadFile(filepath.Join(r.state, "token"))
	if err != nil {
		t.Fatal(err)
	}
	conns := make([]*grpc.ClientConn, n)
	for i := range conns {
		conns[i] = faultDial(t, r.srv.Addr, filepath.Join(r.state, "ca.pem"), strings.TrimSpace(string(token)))
		conns[i].Connect()
	}
	ctx := faultCtx(t)
	for i, conn := range conns {
		for s := conn.GetState(); s != connectivity.Ready; s = conn.GetState() {
			if !conn.WaitForStateChange(ctx, s) {
				t.Fatalf("connection %d did not become ready: %v", i, s)
			}
		}
	}
	if got := faultCountFDs(t, pid); got < fds+n {
		t.Errorf("greeterd holds %d descriptors with %d connections open, want at least %d", got, n, fds+n)
	}
	r.cli(0, "hello", "--name", "still-here")
	grown := faultRSS(t, pid) - rss
	t.Logf("greeterd RSS grew by %d KiB for %d idle connections", grown>>10, n)
	// A connection's transport keeps about 100 KiB (32 KiB read and write
	// buffers, TLS records, three goroutines); the race detector, which
	// the harness builds with, multiplies that about fivefold. 1 MiB per
	// connection leaves room for that and still catches a per-connection
	// message buffer (2 MiB) or anything unbounded.
	if perConn := grown / n; perConn > 1<<20 {
		t.Errorf("greeterd RSS grew by %d KiB per idle connection", perConn>>10)
	}
	for _, conn := range conns {
		conn.Close()
	}
	if now := r.idleFDs(pid); now != fds {
		t.Errorf("greeterd holds %d descriptors after the connections closed, %d before: %q", now, fds, faultFDTargets(t, pid))
	}
}

// TestFaultDiskFull runs greeterd on an 8 MiB tmpfs (RELIABILITY.md F8):
// a 16 MiB upload ends with ResourceExhausted (exit code 8), the previous
// version of that name is intact, nothing is left in tmp/, and the space
// is free again for the next upload, in plain and resumable mode. Without
// permission to mount, ENOSPC is covered only by diskstore's TestNoSpace
// (an injected writer error); this test then checks nothing.
func TestFaultDiskFull(t *testing.T) {
	faultNoLeaks(t)
	mnt := t.TempDir()
	if !faultMountTmpfs(t, mnt, 8<<20) {
		t.Log("not tested end to end: see diskstore.TestNoSpace for ENOSPC by injection")
		return
	}
	r := newFaultRig(t, mnt)
	smallPath, small := r.file("small.bin", 4<<10)
	r.cli(0, "upload", "--no-resume", smallPath, "--as", "f.bin")
	bigPath, _ := r.file("big.bin", 16<<20)

	for _, c := range []struct {
		name string
		mode []string
	}{
		{"plain", []string{"--no-resume"}},
		{"resumable", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"upload", "--retries", "0", bigPath, "--as", "f.bin"}, c.mode...)
			res := bins.CLI(t, nil, r.cliArgs(args)...)
			if res.Code != 8 || !strings.Contains(res.Stderr, "ResourceExhausted") {
				t.Errorf("upload to a full disk: exit %d, stderr %q; want 8 and ResourceExhausted", res.Code, res.Stderr)
			}
			if got := r.ls(); len(got) != 1 || got["f.bin"] != faultSum(small) {
				t.Errorf("after the failed upload: ls %v, want f.bin with the previous sha256 %s", got, faultSum(small))
			}
			if temps := r.temps(); len(temps) != 0 {
				t.Errorf("the failed upload left the temporaries %v", temps)
			}
			// The space is free again.
			p, _ := r.file("fits-"+c.name+".bin", 6<<20)
			if res := bins.CLI(t, nil, r.cliArgs([]string{"upload", "--no-resume", "--retries", "0", p})...); res.Code != 0 {
				t.Errorf("after the failed upload, a 6 MiB upload failed (exit %d, %s): the failed upload still holds the space; part files of resumable uploads: %v", res.Code, strings.TrimSpace(res.Stderr), r.parts())
				return
			}
			r.cli(0, "rm", filepath.Base(p))
		})
	}
	dst := filepath.Join(r.work, "f-copy.bin")
	r.cli(0, "download", "f.bin", "-o", dst)
	if b, err := os.ReadFile(dst); err != nil || !bytes.Equal(b, small) {
		t.Errorf("f.bin after the disk filled up differs from the previous version (%v)", err)
	}
}

// TestFaultRotateCertAndKeysUnderLoad replaces the server certificate and
// retires a JWT verification key while clients keep calling
// (RELIABILITY.md T5, A13): no call on the new key fails, an upload begun
// with a token of the retired key finishes, new calls with that token
// fail Unauthenticated, and new connections get the new certificate.
func TestFaultRotateCertAndKeysUnderLoad(t *testing.T) {
	faultNoLeaks(t)
	run := func(args ...string) string {
		t.Helper()
		res := bins.RunServer(t, nil, args...)
		if res.Code != 0 {
			t.Fatalf("greeterd %s: exit %d\n%s", strings.Join(args, " "), res.Code, res.Stderr)
		}
		return strings.TrimSpace(res.Stdout)
	}
	oldPKI, newKeys := t.TempDir(), t.TempDir()
	run("init", "--state-dir", oldPKI)
	run("init", "--state-dir", newKeys) // only its JWT key pair is used
	srvDir, keyDir := t.TempDir(), t.TempDir()
	copyFile := func(from, to string) {
		t.Helper()
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		faultReplaceFile(t, to, b)
	}
	copyFile(filepath.Join(oldPKI, "server.pem"), filepath.Join(srvDir, "server.pem"))
	copyFile(filepath.Join(oldPKI, "server-key.pem"), filepath.Join(srvDir, "server-key.pem"))
	copyFile(filepath.Join(oldPKI, "jwt-public-key.pem"), filepath.Join(keyDir, "old.pem"))
	copyFile(filepath.Join(newKeys, "jwt-public-key.pem"), filepath.Join(keyDir, "new.pem"))
	oldToken := run("token", "--state-dir", oldPKI, "--sub", "load", "--kid", "old")
	newToken := run("token", "--state-dir", newKeys, "--sub", "load", "--kid", "new")

	srv := bins.StartServer(t, nil, append([]string{
		"--data-dir", t.TempDir(),
		"--tls-cert", filepath.Join(srvDir, "server.pem"), "--tls-key", filepath.Join(srvDir, "server-key.pem"),
		"--tls-reload-interval", "200ms",
		"--idle-timeout", "2m", // the upload begun before the rotation waits through it
		"--jwt-public-key", filepath.Join(keyDir, "old.pem") + "," + filepath.Join(keyDir, "new.pem"),
	}, faultLimits...)...)
	ca := filepath.Join(oldPKI, "ca.pem")
	serial := func() string {
		t.Helper()
		conn, err := tls.Dial("tcp", srv.Addr, func() *tls.Config { c := faultTLS(t, ca); c.NextProtos = []string{"h2"}; return c }())
		if err != nil {
			t.Fatalf("TLS dial: %v", err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	oldSerial := serial()
	oldClient := greeterpb.NewGreeterClient(faultDial(t, srv.Addr, ca, oldToken))
	if _, err := oldClient.SayHello(faultCtx(t), &greeterpb.HelloRequest{Name: "old"}); err != nil {
		t.Fatalf("hello with the old key's token before the rotation: %v", err)
	}

	// Load: workers on the new key, each on its own long-lived connection
	// made before the rotation. Each round is a hello and an upload.
	const workers, maxRounds = 4, 2000
	stop := make(chan struct{})
	rounds := make([]chan struct{}, workers) // a tick after every round
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		rounds[w] = make(chan struct{}, maxRounds)
		c := greeterpb.NewGreeterClient(faultDial(t, srv.Addr, ca, newToken))
		wg.Go(func() {
			data := bytes.Repeat([]byte{byte(w)}, 256<<10)
			for i := range maxRounds {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(t.Context(), faultWait)
				_, err := c.SayHello(ctx, &greeterpb.HelloRequest{Name: "load"})
				if err == nil {
					err = faultUpload(ctx, c, fmt.Sprintf("w%d-%d.bin", w, i%8), data)
				}
				cancel()
				if err != nil {
					errs <- fmt.Errorf("worker %d round %d: %w", w, i, err)
					return
				}
				rounds[w] <- struct{}{}
			}
		})
	}
	// waitRounds waits until every worker finished n more rounds.
	waitRounds := func(n int) {
		t.Helper()
		for w := range workers {
			for drained := false; !drained; {
				select {
				case <-rounds[w]:
				default:
					drained = true
				}
			}
			for range n {
				select {
				case <-rounds[w]:
				case err := <-errs:
					t.Fatal(err)
				case <-time.After(faultWait):
					t.Fatalf("worker %d made no progress for %v", w, faultWait)
				}
			}
		}
	}
	defer func() {
		close(stop)
		wg.Wait()
	}()
	waitRounds(2)

	// An upload with the old key's token begins before the rotation.
	long := bytes.Repeat([]byte("long"), 1<<20)
	longStream, err := faultBeginUpload(faultCtx(t), oldClient, "long.bin", long)
	if err != nil {
		t.Fatal(err)
	}

	// Rotate the server certificate: write both files anew, atomically.
	issued := filepath.Join(t.TempDir(), "server")
	run("cert", "issue", "--state-dir", oldPKI, "--kind", "server", "--name", "localhost", "--dns", "localhost", "--ip", "127.0.0.1", "--out", issued)
	copyFile(issued+"-key.pem", filepath.Join(srvDir, "server-key.pem"))
	copyFile(issued+".pem", filepath.Join(srvDir, "server.pem"))
	var newSerial string
	faultWaitFor(t, "new connections to get the new certificate", func() bool { newSerial = serial(); return newSerial != oldSerial })
	waitRounds(2)

	// Retire the old key: its file now holds the new public key.
	copyFile(filepath.Join(newKeys, "jwt-public-key.pem"), filepath.Join(keyDir, "old.pem"))
	faultWaitFor(t, "the old key's tokens to be refused", func() bool {
		_, err := oldClient.SayHello(faultCtx(t), &greeterpb.HelloRequest{Name: "old"})
		if err != nil && status.Code(err) != codes.Unauthenticated {
			t.Fatalf("hello with the retired key's token: %v, want OK until the reload and Unauthenticated after", err)
		}
		return err != nil
	})
	for range 3 {
		if _, err := oldClient.SayHello(faultCtx(t), &greeterpb.HelloRequest{Name: "old"}); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("hello with the retired key's token after the reload: %v, want Unauthenticated", err)
		}
	}
	if err := faultFinishUpload(longStream, long); err != nil {
		t.Errorf("the upload begun with the retired key's token before the rotation: %v", err)
	}
	waitRounds(2)

	// A client that connects now works with the new key and certificate.
	fresh := greeterpb.NewGreeterClient(faultDial(t, srv.Addr, ca, newToken))
	if err := faultUpload(faultCtx(t), fresh, "fresh.bin", []byte("fresh")); err != nil {
		t.Errorf("upload on a new connection after the rotation: %v", err)
	}
	if s := serial(); s != newSerial {
		t.Errorf("certificate serial %s after the rotation, want %s", s, newSerial)
	}
	select {
	case err := <-errs:
		t.Errorf("a call on the new key failed during the rotation: %v", err)
	default:
	}
}

// faultReplaceFile replaces path with data atomically: a temporary file
// in the same directory, synced, then renamed over path.
func faultReplaceFile(t *testing.T, path string, data []byte) {
	t.Helper()
	f, err := os.CreateTemp(filepath.Dir(path), ".replace-*")
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o600)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		t.Fatal(err)
	}
}
