package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
)

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
