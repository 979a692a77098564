package e2e

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/greeter/greeter/e2e/e2etest"
	"github.com/greeter/greeter/proto/greeterpb"
)

// otherLoopback is a second loopback address: Linux routes all of
// 127.0.0.0/8 to lo, so a client bound to it is another peer to greeterd.
const otherLoopback = "127.0.0.2"

// dialFrom returns a gRPC connection to srv over TLS with the dev CA and
// token, whose TCP connections come from local (any port) unless local is
// empty. It is closed when the test ends.
func dialFrom(t *testing.T, srv *e2etest.Server, state, local string) *grpc.ClientConn {
	t.Helper()
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(credentials.NewTLS(faultTLS(t, filepath.Join(state, "ca.pem")))),
		grpc.WithPerRPCCredentials(faultBearer(strings.TrimSpace(string(devFile(t, state, "token"))))),
	}
	if local != "" {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
		opts = append(opts, grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", addr)
		}))
	}
	conn, err := grpc.NewClient(srv.Addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// plainGreeterd builds greeterd without the race detector, once per test
// binary, next to the harness's binaries (removed with them). Memory is measured on it: the race runtime keeps metadata for
// every goroutine and lock it has seen, so a race build's RSS grows with
// the number of RPCs served whatever the server retains, while users run
// this build.
var plainGreeterd = sync.OnceValues(func() (string, error) {
	out := filepath.Join(filepath.Dir(bins.Greeterd), "greeterd-norace")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/greeterd")
	cmd.Dir = ".."
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building greeterd without -race: %v\n%s", err, msg)
	}
	return out, nil
})

// plainServer starts the race-free greeterd in dev mode with args.
func plainServer(t *testing.T, args ...string) (*e2etest.Server, string) {
	t.Helper()
	bin, err := plainGreeterd()
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	plain := e2etest.Binaries{Greeterd: bin, Greeter: bins.Greeter}
	return plain.StartServer(t, nil, append([]string{"--state-dir", state}, args...)...), state
}

// canBind reports whether this host lets a client use addr as its source.
func canBind(t *testing.T, addr string) bool {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Logf("cannot use %s as a second loopback address (%v); skipping the other-peer check", addr, err)
		return false
	}
	l.Close()
	return true
}

// openWatch opens a health Watch and reads its first answer: nil means the
// stream is held open by the server.
func openWatch(ctx context.Context, conn *grpc.ClientConn) error {
	w, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return err
	}
	_, err = w.Recv()
	return err
}

// sayHello checks that conn's caller still gets a greeting.
func sayHello(t *testing.T, conn *grpc.ClientConn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := greeterpb.NewGreeterClient(conn).SayHello(ctx, &greeterpb.HelloRequest{Name: "Ada", Age: 36})
	if err != nil || r.GetMessage() != "Hello, Ada! Your age is 36" {
		t.Fatalf("SayHello: got %q, %v", r.GetMessage(), err)
	}
}

// TestHardeningPublicStreamsCapped: R3. 2000 health Watch streams attempted
// from one IP over 4 connections, with the per-IP call rate out of the
// way: 16 (the per-peer default) are held, the rest are refused with
// ResourceExhausted at once and counted, greeterd's memory stays flat, and
// it keeps serving, including Watch streams from another address. Before
// the cap every stream was held for as long as the client wished, about
// 16 KiB each (RSS grew by 32 MiB for 2000 over 20 connections).
func TestHardeningPublicStreamsCapped(t *testing.T) {
	const (
		attempts  = 2000
		conns     = 4
		perPeer   = 16 // --max-public-streams-per-peer default
		rssGrowth = 16 << 20
	)
	srv, state := plainServer(t, "--rate-peer", "1000000", "--rate-peer-burst", "1000000",
		"--metrics-listen", "127.0.0.1:0")
	pid := srv.PID()

	// Warm up the paths a Watch takes, so that the baseline holds the code
	// and pools any server needs, then measure.
	warm := dialFrom(t, srv, state, "")
	sayHello(t, warm)
	wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
	if err := openWatch(wctx, warm); err != nil {
		t.Fatalf("warm-up Watch: %v", err)
	}
	wcancel()
	before := rssBytes(t, pid)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var (
		mu       sync.Mutex
		held     int
		refused  int
		other    []error
		firstMsg string
		wg       sync.WaitGroup
	)
	start := time.Now()
	for range conns {
		conn := dialFrom(t, srv, state, "")
		for range attempts / conns {
			wg.Go(func() {
				err := openWatch(ctx, conn)
				mu.Lock()
				defer mu.Unlock()
				switch status.Code(err) {
				case codes.OK:
					held++
				case codes.ResourceExhausted:
					refused++
					if firstMsg == "" {
						firstMsg = status.Convert(err).Message()
					}
				default:
					if len(other) < 5 {
						other = append(other, err)
					}
				}
			})
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	after := rssBytes(t, pid)
	growth := after - before
	t.Logf("%d Watch streams attempted over %d connections in %v: %d held, %d ResourceExhausted (%q), other errors %v",
		attempts, conns, elapsed.Round(time.Millisecond), held, refused, firstMsg, other)
	t.Logf("greeterd RSS: %.1f MiB before, %.1f MiB after: growth %.1f MiB",
		float64(before)/(1<<20), float64(after)/(1<<20), float64(growth)/(1<<20))

	if held != perPeer || refused != attempts-perPeer || len(other) > 0 {
		t.Errorf("got %d held, %d refused, other errors %v; want %d held and %d ResourceExhausted",
			held, refused, other, perPeer, attempts-perPeer)
	}
	if !strings.Contains(firstMsg, "too many open health or reflection streams from this address") {
		t.Errorf("refusal message %q does not say why", firstMsg)
	}
	if growth > rssGrowth {
		t.Errorf("greeterd RSS grew by %d MiB under %d attempted public streams, want under %d MiB", growth>>20, attempts, rssGrowth>>20)
	}
	expo := scrape(t, metricsAddr(t, srv))
	if n := metricValue(expo, "greeter_ratelimit_rejections_total", "reason="); n < float64(attempts-perPeer) {
		t.Errorf("rate-limit rejections counted: %v, want at least %d", n, attempts-perPeer)
	}

	// The server keeps serving: calls from the capped address, and public
	// streams from another one.
	sayHello(t, warm)
	cliHello(t, srv, state)
	if canBind(t, otherLoopback) {
		if err := openWatch(ctx, dialFrom(t, srv, state, otherLoopback)); err != nil {
			t.Errorf("Watch from %s while %s is capped: %v", otherLoopback, "127.0.0.1", err)
		}
	}
}

// TestHardeningConnsPerIPCapped: R3. With --max-conns-per-ip 4, four TLS
// connections from one IP are served and a fifth is closed before its
// handshake completes, while another address still connects and is served.
func TestHardeningConnsPerIPCapped(t *testing.T) {
	const maxConns = 4
	srv, state := devServer(t, "--max-conns-per-ip", "4")
	cfg := faultTLS(t, filepath.Join(state, "ca.pem"))
	cfg.NextProtos = []string{"h2"}
	dial := func(local string) (*tls.Conn, error) {
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 30 * time.Second}, Config: cfg}
		if local != "" {
			d.NetDialer.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := d.DialContext(ctx, "tcp", srv.Addr)
		if err != nil {
			return nil, err
		}
		tc := c.(*tls.Conn)
		t.Cleanup(func() { tc.Close() })
		return tc, nil
	}
	// A completed handshake proves greeterd accepted (and counted) the
	// connection: the cap acts in Accept, before TLS.
	for i := range maxConns {
		if _, err := dial(""); err != nil {
			t.Fatalf("connection %d of %d: %v", i+1, maxConns, err)
		}
	}
	_, err := dial("")
	if err == nil {
		t.Fatalf("connection %d from one IP completed its TLS handshake, want it closed", maxConns+1)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("connection %d: %v; want it closed at once, not left hanging", maxConns+1, err)
	}
	t.Logf("connection %d from one IP refused: %v", maxConns+1, err)

	if canBind(t, otherLoopback) {
		if _, err := dial(otherLoopback); err != nil {
			t.Fatalf("a connection from %s while 127.0.0.1 is at its cap: %v", otherLoopback, err)
		}
		sayHello(t, dialFrom(t, srv, state, otherLoopback))
	}
}
