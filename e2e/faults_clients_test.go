package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/greeter/greeter/proto/greeterpb"
)

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
