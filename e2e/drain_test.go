package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/greeter/greeter/e2e/e2etest"
	"github.com/greeter/greeter/proto/greeterpb"
)

// These tests stop greeterd with SIGTERM as an orchestrator stops one
// replica of several: health must turn NOT_SERVING while the server still
// takes calls (--drain-delay), balancing clients must move to the other
// replicas meanwhile, and only then may the server refuse new calls,
// letting the transfers in flight finish.

// drainLogOrder is the order of greeterd's shutdown records.
var drainLogOrder = []string{
	"shutting down: health reports NOT_SERVING; still serving for the drain delay",
	"shutting down: no new calls; draining in-flight calls",
	"drained; stopped",
}

// stopInBackground sends srv SIGTERM and returns a channel that delivers
// Stop's result once greeterd has exited.
func stopInBackground(srv *e2etest.Server) <-chan error {
	stopped := make(chan error, 1)
	go func() { stopped <- srv.Stop(2 * time.Minute) }()
	return stopped
}

// wantLogOrder fails t unless log holds each record of want once, in order.
func wantLogOrder(t *testing.T, log string, want []string) {
	t.Helper()
	at := -1
	for _, msg := range want {
		rec := `"msg":"` + msg + `"`
		i := strings.Index(log, rec)
		if i < 0 || strings.Count(log, rec) != 1 || i < at {
			t.Errorf("greeterd's log does not hold %q once, after %v:\n%s", msg, want, log)
			return
		}
		at = i
	}
}

// TestDrainReportsNotServingBeforeRefusingCalls sends SIGTERM while an
// upload runs: a health Watch sees NOT_SERVING at once; for the drain
// delay greeterd still takes new connections and calls; then it refuses
// them while the upload is still under way, the upload finishes intact,
// and greeterd exits 0.
func TestDrainReportsNotServingBeforeRefusingCalls(t *testing.T) {
	faultNoLeaks(t)
	const delay = 5 * time.Second
	r := newFaultRig(t, "", "--drain-delay", delay.String(), "--bandwidth-per-identity", "4MiB", "--shutdown-timeout", "90s")
	conn := r.conn()
	waitHealth(t, conn, healthpb.HealthCheckResponse_SERVING)
	watchCtx, cancelWatch := context.WithTimeout(t.Context(), faultWait)
	defer cancelWatch()
	watch, err := healthpb.NewHealthClient(conn).Watch(watchCtx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := watch.Recv(); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health Watch before SIGTERM: %v, %v; want SERVING", resp.GetStatus(), err)
	}

	// About 12 s at 4 MiB/s: longer than the drain delay and the checks
	// after it.
	const size = 48 << 20
	upPath, up := r.file("up.bin", size)
	upload := r.startCLI("upload", "--no-resume", "--retries", "0", upPath)
	faultWaitFor(t, "the upload to be under way", func() bool { return faultCountAtLeast(r.temps(), 1) == 1 })

	sigterm := time.Now()
	stopped := stopInBackground(r.srv)
	resp, err := watch.Recv()
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health Watch after SIGTERM: %v, %v; want NOT_SERVING", resp.GetStatus(), err)
	}
	// A watch left open would hold the drain until --shutdown-timeout.
	cancelWatch()

	// Within the delay: calls on the open connection and on a new one.
	if _, err := greeterpb.NewGreeterClient(conn).SayHello(faultCtx(t), &greeterpb.HelloRequest{Name: "draining"}); err != nil {
		t.Errorf("hello on an open connection during the drain delay: %v", err)
	}
	r.cli(0, "hello", "--name", "new-connection")
	if took := time.Since(sigterm); took >= delay {
		t.Fatalf("the calls during the drain delay ended %v after SIGTERM, not within the %v delay: nothing shown", took, delay)
	}

	// After it: new calls are refused while the upload still runs.
	faultWaitFor(t, "greeterd to refuse new calls", func() bool {
		return bins.CLI(t, nil, r.cliArgs([]string{"hello"})...).Code == exitUnavailable
	})
	if !upload.running() {
		t.Fatalf("the upload ended before greeterd refused new calls; nothing shown about calls in flight")
	}
	if took := time.Since(sigterm); took < delay {
		t.Errorf("greeterd refused new calls %v after SIGTERM, before the %v drain delay", took, delay)
	}

	if code, out := upload.wait(t); code != 0 {
		t.Errorf("the upload in flight at SIGTERM failed (exit %d): %s", code, out)
	}
	if err := <-stopped; err != nil {
		t.Errorf("greeterd after SIGTERM: %v, want exit 0\n%s", err, r.srv.Log.String())
	}
	wantLogOrder(t, r.srv.Log.String(), drainLogOrder)
	r.start()
	if got := r.ls(); got["up.bin"] != faultSum(up) {
		t.Errorf("the upload finished during the drain: ls %v, want up.bin with sha256 %s", got, faultSum(up))
	}
}

// exitUnavailable is the CLI's exit code for Unavailable.
const exitUnavailable = 6

// TestDrainMovesBalancedClientsAway runs two replicas and the CLI with
// both addresses: calls reach both; once one is draining, every call of a
// balancing client goes to the other although the draining one still
// takes calls (a client of it alone is served).
func TestDrainMovesBalancedClientsAway(t *testing.T) {
	faultNoLeaks(t)
	const delay = 15 * time.Second
	a := newFaultRig(t, "", "--drain-delay", delay.String())
	// b shares a's dev PKI and JWT keys, so one CA and token reach both.
	b := bins.StartServer(t, nil, append([]string{"--state-dir", a.state, "--data-dir", filepath.Join(t.TempDir(), "data")}, faultLimits...)...)
	both := a.srv.Addr + "," + b.Addr
	hellos := func(srv *e2etest.Server) int {
		return strings.Count(srv.Log.String(), `"method":"`+greeterpb.Greeter_SayHello_FullMethodName+`"`)
	}
	hello := func(addr string) {
		t.Helper()
		res := bins.CLI(t, nil, "--addr", addr, "--state-dir", a.state, "hello")
		if res.Code != 0 {
			t.Fatalf("greeter --addr %s hello: exit %d\n%s", addr, res.Code, res.Stderr)
		}
	}

	// Both serving: the calls of one client process go to both.
	const perRun = 5
	args := append([]string{"--addr", both, "--state-dir", a.state, "upload", "--no-resume", "-j", "1"}, writeFiles(t, a.work, perRun)...)
	res := bins.CLI(t, nil, args...)
	if res.Code != 0 {
		t.Fatalf("upload of %d files over both replicas: exit %d\n%s", perRun, res.Code, res.Stderr)
	}
	faultWaitFor(t, "both replicas to log uploads", func() bool {
		return uploadsLogged(a.srv) > 0 && uploadsLogged(b) > 0 && uploadsLogged(a.srv)+uploadsLogged(b) == perRun
	})

	// a draining: health says NOT_SERVING, yet it still serves.
	sigterm := time.Now()
	stopped := stopInBackground(a.srv)
	faultWaitFor(t, "a to start draining", func() bool { return a.logCount(drainLogOrder[0]) == 1 })
	beforeA, beforeB := hellos(a.srv), hellos(b)
	for range perRun {
		hello(both)
	}
	hello(a.srv.Addr)
	if took := time.Since(sigterm); took >= delay {
		t.Fatalf("the calls during a's drain delay ended %v after SIGTERM, not within the %v delay: nothing shown", took, delay)
	}
	if !faultPoll(faultWait, func() bool { return hellos(b)-beforeB >= perRun && hellos(a.srv)-beforeA >= 1 }) ||
		hellos(b)-beforeB != perRun || hellos(a.srv)-beforeA != 1 {
		t.Fatalf("during a's drain delay: %d balanced hellos on b and %d hellos on a, want all %d on b and only the direct one on a",
			hellos(b)-beforeB, hellos(a.srv)-beforeA, perRun)
	}
	if err := <-stopped; err != nil {
		t.Errorf("a after SIGTERM: %v, want exit 0\n%s", err, a.srv.Log.String())
	}
	if took := time.Since(sigterm); took < delay {
		t.Errorf("a exited %v after SIGTERM, before its %v drain delay", took, delay)
	}
	wantLogOrder(t, a.srv.Log.String(), drainLogOrder)
}

// uploadsLogged counts the uploads srv logged.
func uploadsLogged(srv *e2etest.Server) int {
	return strings.Count(srv.Log.String(), `"method":"`+greeterpb.Greeter_UploadFile_FullMethodName+`"`)
}

// writeFiles writes n small random files into dir and returns their paths.
func writeFiles(t *testing.T, dir string, n int) []string {
	t.Helper()
	var paths []string
	for i := range n {
		path := filepath.Join(dir, "f"+string(rune('a'+i))+".bin")
		writeRandom(t, path, 4<<10)
		paths = append(paths, path)
	}
	return paths
}
