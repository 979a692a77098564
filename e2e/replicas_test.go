package e2e

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/greeter/greeter/e2e/e2etest"
	"github.com/greeter/greeter/proto/greeterpb"
)

// These tests run greeterd as three replicas of one service: one MinIO
// holds the files, one redis-server the shared limits, and every replica
// serves the same certificate and accepts the same tokens (one `greeterd
// init`, then --tls-cert, --tls-key and --jwt-public-key on each). Clients
// get all three addresses. Replicas and Redis are SIGKILLed mid-call.

// replicaCount is how many replicas a replicaRig runs.
const replicaCount = 3

// replicaRig is MinIO, Redis and three greeterd replicas sharing both.
type replicaRig struct {
	t       *testing.T
	state   string // the dev PKI and token of `greeterd init`
	work    string
	args    []string
	minio   *e2etest.MinIO
	redis   *e2etest.Redis
	srvs    [replicaCount]*e2etest.Server
	metrics [replicaCount]string
	bucket  *s3Rig // for looking into the bucket
}

// newReplicaRig starts MinIO, Redis and three replicas with the relaxed
// limits, then args.
func newReplicaRig(t *testing.T, args ...string) *replicaRig {
	t.Helper()
	r := &replicaRig{t: t, state: t.TempDir(), work: t.TempDir(), args: args,
		minio: e2etest.StartMinIO(t, s3Bucket), redis: e2etest.StartRedis(t)}
	r.bucket = &s3Rig{faultRig: &faultRig{t: t}, minio: r.minio}
	if res := bins.RunServer(t, nil, "init", "--state-dir", r.state); res.Code != 0 {
		t.Fatalf("greeterd init: exit %d\n%s", res.Code, res.Stderr)
	}
	for i := range replicaCount {
		r.start(i)
	}
	return r
}

// start starts replica i (again, on a new port).
func (r *replicaRig) start(i int) {
	r.t.Helper()
	args := []string{
		"--tls-cert", filepath.Join(r.state, "server.pem"), "--tls-key", filepath.Join(r.state, "server-key.pem"),
		"--jwt-public-key", filepath.Join(r.state, "jwt-public-key.pem"),
		"--redis-url", r.redis.URL(), "--metrics-listen", "127.0.0.1:0",
		// A balancing client holds a health Watch per replica and per service.
		"--max-public-streams-per-peer", "256",
	}
	args = append(args, faultLimits...)
	args = append(args, s3Flags(r.minio.Endpoint, s3Bucket)...)
	r.srvs[i] = bins.StartServer(r.t, s3Env(e2etest.MinIOSecretKey), append(args, r.args...)...)
	r.metrics[i] = metricsAddr(r.t, r.srvs[i])
}

// addrs is every replica's address, comma-separated, for the CLI's --addr.
func (r *replicaRig) addrs() string {
	var a []string
	for _, s := range r.srvs {
		a = append(a, s.Addr)
	}
	return strings.Join(a, ",")
}

func (r *replicaRig) cliArgs(addr string, args ...string) []string {
	return append([]string{"--addr", addr, "--state-dir", r.state}, args...)
}

// serving returns the live replica whose greeter_transfer_active shows a
// transfer in direction, or -1.
func (r *replicaRig) serving(direction string, dead map[int]bool) int {
	for i, m := range r.metrics {
		if !dead[i] && metricValue(scrape(r.t, m), "greeter_transfer_active", `direction="`+direction+`"`) > 0 {
			return i
		}
	}
	return -1
}

// conns dials every replica on its own connection.
func (r *replicaRig) conns() []*grpc.ClientConn {
	r.t.Helper()
	token, err := os.ReadFile(filepath.Join(r.state, "token"))
	if err != nil {
		r.t.Fatal(err)
	}
	var out []*grpc.ClientConn
	for _, s := range r.srvs {
		c := faultDial(r.t, s.Addr, filepath.Join(r.state, "ca.pem"), strings.TrimSpace(string(token)))
		if _, err := healthpb.NewHealthClient(c).Check(faultCtx(r.t), &healthpb.HealthCheckRequest{}); err != nil {
			r.t.Fatalf("health check of %s: %v", s.Addr, err)
		}
		out = append(out, c)
	}
	return out
}

// TestReplicasFailoverMidTransfer SIGKILLs the replica serving a 256 MiB
// upload of a CLI given all three addresses, then the one serving its
// download: each time the same CLI run finishes on another replica,
// resending at most one part, and the bytes match.
func TestReplicasFailoverMidTransfer(t *testing.T) {
	r := newReplicaRig(t, "--bandwidth-per-identity", "64MiB")
	const size = 256 << 20
	path := filepath.Join(r.work, "big.bin")
	data := writeRandom(t, path, size)
	want := faultSum(data)
	ctx := faultCtx(t)
	dead := map[int]bool{}

	t.Run("upload", func(t *testing.T) {
		began := time.Now()
		running := startCLI(ctx, r.cliArgs(r.addrs(), "--json", "upload", path)...)
		victim := -1
		faultWaitFor(t, "an upload with two committed parts", func() bool {
			victim = r.serving("upload", dead)
			c, ok := r.bucket.committed(ctx)
			return victim >= 0 && ok && c >= 2*s3PartSize
		})
		committed, _ := r.bucket.committed(ctx)
		r.srvs[victim].Kill()
		dead[victim] = true
		killed := time.Since(began)
		res := <-running
		if res.Code != 0 {
			t.Fatalf("upload across the kill of replica %d: exit %d\nstdout: %s\nstderr: %s", victim, res.Code, res.Stdout, res.Stderr)
		}
		up := oneResult(t, res)
		t.Logf("killed replica %d after %v with %d MiB committed; the upload took %v, %d attempts, sent %d bytes for %d (%d more)",
			victim, killed.Round(time.Millisecond), committed>>20, time.Since(began).Round(time.Millisecond), up.Attempts, up.BytesSent, size, up.BytesSent-size)
		// Lost with the replica: the part in flight and, if its answer had
		// not come, the part before it, settling.
		if up.BytesSent > size+2*s3PartSize {
			t.Errorf("the upload sent %d bytes, want at most %d (the file plus two parts)", up.BytesSent, size+2*s3PartSize)
		}
		if up.Attempts < 2 || up.SHA256 != want {
			t.Errorf("the upload reported %d attempts and sha256 %s, want at least 2 and %s", up.Attempts, up.SHA256, want)
		}
	})

	t.Run("download", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "copy.bin")
		part := filepath.Join(filepath.Dir(out), ".copy.bin.greeter-part")
		began := time.Now()
		running := startCLI(ctx, r.cliArgs(r.addrs(), "--json", "download", "big.bin", "-o", out)...)
		victim := -1
		faultWaitFor(t, "a download with 16 MiB received", func() bool {
			victim = r.serving("download", dead)
			fi, err := os.Stat(part)
			return victim >= 0 && err == nil && fi.Size() >= 16<<20
		})
		r.srvs[victim].Kill()
		dead[victim] = true
		res := <-running
		if res.Code != 0 {
			t.Fatalf("download across the kill of replica %d: exit %d\nstdout: %s\nstderr: %s", victim, res.Code, res.Stdout, res.Stderr)
		}
		down := oneResult(t, res)
		t.Logf("killed replica %d mid-download; it took %v, %d attempts, received %d bytes for %d",
			victim, time.Since(began).Round(time.Millisecond), down.Attempts, down.BytesReceived, size)
		if down.BytesReceived > size+s3PartSize {
			t.Errorf("the download received %d bytes, want at most %d", down.BytesReceived, size+s3PartSize)
		}
		if got := fileSum(t, out); got != want || down.Attempts < 2 {
			t.Errorf("downloaded sha256 %s after %d attempts, want %s after at least 2", got, down.Attempts, want)
		}
	})
	if states, multiparts := r.bucket.leftovers(ctx); states != 0 || multiparts != 0 {
		t.Errorf("the bucket holds %d upload states and %d incomplete multipart uploads, want none", states, multiparts)
	}
}

// helloBurst sends n hellos at once, spread evenly over conns, and counts
// those admitted. Any answer but OK or ResourceExhausted fails t.
func helloBurst(t *testing.T, conns []*grpc.ClientConn, n int) (admitted int, took time.Duration) {
	t.Helper()
	ctx := faultCtx(t)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		other []error
	)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			_, err := greeterpb.NewGreeterClient(conns[i%len(conns)]).SayHello(ctx, &greeterpb.HelloRequest{Name: "burst"})
			mu.Lock()
			defer mu.Unlock()
			switch status.Code(err) {
			case codes.OK:
				admitted++
			case codes.ResourceExhausted:
			default:
				other = append(other, err)
			}
		})
	}
	began := time.Now()
	close(start)
	wg.Wait()
	if len(other) > 0 {
		t.Fatalf("%d of %d hellos failed otherwise than ResourceExhausted: %v", len(other), n, errors.Join(other...))
	}
	return admitted, time.Since(began)
}

// TestReplicasShareLimits gives each replica --rate-unary 5 with burst 5:
// 60 hellos of one identity at once over the three replicas are admitted
// about 5 times, not 15. Redis is then SIGKILLed: every replica keeps
// answering (the limits fail open to local ones), and once Redis is back
// the limit is shared again.
func TestReplicasShareLimits(t *testing.T) {
	r := newReplicaRig(t, "--rate-unary", "5", "--rate-unary-burst", "5")
	conns := r.conns()
	const n, atMost = 60, 8
	admitted, took := helloBurst(t, conns, n)
	t.Logf("%d of %d hellos over %d replicas admitted in %v", admitted, n, replicaCount, took)
	if admitted < 1 || admitted > atMost || took > time.Second {
		t.Fatalf("%d of %d hellos admitted in %v, want 1 to %d within a second (one shared burst of 5, not 15)", admitted, n, took, atMost)
	}

	r.redis.Kill()
	killed := time.Now()
	for i, c := range conns {
		for range 3 {
			if _, err := greeterpb.NewGreeterClient(c).SayHello(faultCtx(t), &greeterpb.HelloRequest{Name: "no-redis"}); err != nil {
				t.Fatalf("hello on replica %d with Redis down: %v", i, err)
			}
		}
	}
	t.Logf("9 hellos over the replicas with Redis down answered in %v", time.Since(killed).Round(time.Millisecond))

	if err := r.redis.Start(); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	var last int
	if !faultPoll(faultWait, func() bool {
		time.Sleep(1200 * time.Millisecond) // let every bucket refill: local and shared
		last, _ = helloBurst(t, conns, n)
		return last >= 1 && last <= atMost
	}) {
		t.Fatalf("Redis restarted %v ago: a burst of %d hellos is still admitted %d times, want at most %d", faultWait, n, last, atMost)
	}
	t.Logf("shared limiting resumed %v after Redis restarted (%d admitted)", time.Since(restarted).Round(time.Millisecond), last)
	for i, s := range r.srvs {
		if got := strings.Count(s.Log.String(), "panic"); got != 0 {
			t.Errorf("replica %d logged a panic:\n%s", i, s.Log.String())
		}
		// One outage, one warning and one recovery line per replica, however
		// many calls fell back meanwhile.
		down := strings.Count(s.Log.String(), "redis unreachable: limits fall back")
		up := strings.Count(s.Log.String(), "redis answers again: limits are shared again")
		if down != 1 || up != 1 {
			t.Errorf("replica %d logged the Redis outage %d times and the recovery %d times, want once each", i, down, up)
		}
	}
}

// TestReplicasRaceOnOneUpload resumes the same upload (same name, size and
// SHA-256, so the same upload id) from two CLIs on two replicas at once:
// at least one finishes, the other finishes after a takeover or fails
// with Aborted, and the stored file matches its bytes.
func TestReplicasRaceOnOneUpload(t *testing.T) {
	r := newReplicaRig(t, "--bandwidth-per-identity", "8MiB")
	const size = 32 << 20
	path := filepath.Join(r.work, "race.bin")
	data := writeRandom(t, path, size)
	ctx := faultCtx(t)
	first := startCLI(ctx, r.cliArgs(r.srvs[0].Addr, "--json", "upload", "--retries", "0", path)...)
	faultWaitFor(t, "a committed part", func() bool {
		c, ok := r.bucket.committed(ctx)
		return ok && c >= s3PartSize
	})
	second := startCLI(ctx, r.cliArgs(r.srvs[1].Addr, "--json", "upload", "--retries", "0", path)...)
	results := []e2etest.Result{<-first, <-second}
	ok := 0
	for i, res := range results {
		t.Logf("client %d (replica %d): exit %d: %s %s", i, i, res.Code, strings.TrimSpace(res.Stdout), strings.TrimSpace(res.Stderr))
		switch {
		case res.Code == 0:
			ok++
		case !strings.Contains(res.Stdout+res.Stderr, "Aborted") && !strings.Contains(strings.ToLower(res.Stdout+res.Stderr), "abort"):
			t.Errorf("client %d failed otherwise than Aborted: exit %d\n%s%s", i, res.Code, res.Stdout, res.Stderr)
		}
	}
	if ok == 0 {
		t.Fatalf("neither client finished the upload")
	}
	ls := bins.CLI(t, nil, r.cliArgs(r.srvs[2].Addr, "stat", "race.bin")...)
	dl := filepath.Join(t.TempDir(), "race.bin")
	if res := bins.CLI(t, nil, r.cliArgs(r.srvs[2].Addr, "download", "race.bin", "-o", dl)...); res.Code != 0 {
		t.Fatalf("download of the raced file: exit %d\n%s", res.Code, res.Stderr)
	}
	if got := fileSum(t, dl); got != faultSum(data) || !strings.Contains(ls.Stdout, faultSum(data)) {
		t.Errorf("the raced file has sha256 %s (stat: %s), want %s", got, ls.Stdout, faultSum(data))
	}
	if states, multiparts := r.bucket.leftovers(ctx); states != 0 || multiparts != 0 {
		t.Errorf("after the race the bucket holds %d upload states and %d incomplete multipart uploads, want none", states, multiparts)
	}
}
