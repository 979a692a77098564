// Command chaos is a soak test of greeterd as three replicas on one MinIO
// and one Redis: ten clients upload (plain and resumable) and download
// through the CLI with all three addresses while it SIGKILLs and restarts
// a random replica, Redis or MinIO every few seconds. At the end it
// checks every acknowledged upload and the bucket, prints what it did and
// three numbers that must be 0, and exits 1 if any is not.
//
//	go run ./bench/chaos -duration 2m -kill-every 4s
//
// It needs redis-server; MinIO is installed into .bin as the e2e tests do.
package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/greeter/greeter/e2e/e2etest"
)

const bucket = "greeter-chaos"

// keepWork keeps the work directory, with every greeterd's log, to find
// the cause of a failure.
var keepWork bool

func main() {
	duration := flag.Duration("duration", 2*time.Minute, "how long the clients run under faults")
	killEvery := flag.Duration("kill-every", 4*time.Second, "time between two kills")
	clients := flag.Int("clients", 10, "clients running at once")
	minKills := flag.Int("min-kills", 0, "fail unless at least this many kills happened")
	flag.BoolVar(&keepWork, "keep", false, "keep the work directory (greeterd logs) and print its path")
	flag.Parse()
	if err := run(*duration, *killEvery, *clients, *minKills); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
}

// upload is one upload the clients attempted.
type upload struct {
	name, sha string
	acked     bool
}

type tally struct {
	ops, failed, kills atomic.Int64
	differ             atomic.Int64
	mu                 sync.Mutex
	reasons            map[string]int // failed operations by reason (see fail)
	uploads            []*upload
	byName             map[string]*upload
}

func run(duration, killEvery time.Duration, nClients, minKills int) error {
	work, err := os.MkdirTemp("", "greeter-chaos")
	if err != nil {
		return err
	}
	if keepWork {
		defer fmt.Println("chaos: work directory kept:", work)
	} else {
		defer os.RemoveAll(work)
	}
	bins := filepath.Join(work, "bin")
	_, file, _, _ := runtime.Caller(0)
	build := exec.Command("go", "build", "-o", bins+"/", "./cmd/greeterd", "./cmd/greeter")
	build.Dir = filepath.Join(filepath.Dir(file), "..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build: %v\n%s", err, out)
	}
	greeterd, greeter := filepath.Join(bins, "greeterd"), filepath.Join(bins, "greeter")

	m, err := e2etest.LaunchMinIO(e2etest.MinIOConfig{Dir: filepath.Join(work, "minio"), Bucket: bucket})
	if err != nil {
		return err
	}
	defer m.Close()
	if err := os.MkdirAll(filepath.Join(work, "redis"), 0o700); err != nil {
		return err
	}
	rds, err := e2etest.LaunchRedis(filepath.Join(work, "redis"))
	if err != nil {
		return err
	}
	defer rds.Kill()
	state := filepath.Join(work, "state")
	if out, err := exec.Command(greeterd, "init", "--state-dir", state).CombinedOutput(); err != nil {
		return fmt.Errorf("greeterd init: %v\n%s", err, out)
	}
	serverArgs := []string{
		"--tls-cert", filepath.Join(state, "server.pem"), "--tls-key", filepath.Join(state, "server-key.pem"),
		"--jwt-public-key", filepath.Join(state, "jwt-public-key.pem"),
		"--redis-url", rds.URL(), "--log-format", "json", "--drain-delay", "0",
		"--storage", "s3", "--s3-endpoint", m.Endpoint, "--s3-bucket", bucket, "--s3-part-size", "5MiB",
		"--health-interval", "500ms", "--max-public-streams-per-peer", "1024",
		"--rate-peer", "100000", "--rate-peer-burst", "100000", "--rate-unary", "100000", "--rate-unary-burst", "100000",
		"--rate-transfer", "1000", "--rate-transfer-burst", "1000", "--max-transfers-per-identity", "64",
		"--max-uploads-per-owner", "0", "--quota-bytes", "0", "--quota-objects", "0", "--bandwidth-per-identity", "64MiB",
	}
	env := []string{"AWS_ACCESS_KEY_ID=" + e2etest.MinIOAccessKey, "AWS_SECRET_ACCESS_KEY=" + e2etest.MinIOSecretKey,
		"AWS_SHARED_CREDENTIALS_FILE=/nonexistent"}
	ctx := context.Background()
	var reps []*replica
	var addrs []string
	for i := range 3 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		addr := l.Addr().String()
		l.Close()
		r := &replica{bin: greeterd, addr: addr, args: serverArgs, env: env, log: filepath.Join(work, fmt.Sprintf("greeterd-%d.log", i))}
		if err := r.start(ctx); err != nil {
			return err
		}
		defer r.kill()
		reps = append(reps, r)
		addrs = append(addrs, addr)
	}
	cli := func(ctx context.Context, args ...string) (int, string) {
		cmd := exec.CommandContext(ctx, greeter, append([]string{"--addr", strings.Join(addrs, ","), "--state-dir", state, "--json"}, args...)...)
		out, err := cmd.Output()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out) + string(ee.Stderr)
		} else if err != nil {
			return -1, err.Error()
		}
		return 0, string(out)
	}

	t := &tally{byName: map[string]*upload{}}
	runCtx, stop := context.WithTimeout(ctx, duration)
	defer stop()
	began := time.Now()
	var wg sync.WaitGroup
	killLog := map[string]int{}
	wg.Go(func() { // the killer
		tick := time.NewTicker(killEvery)
		defer tick.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-tick.C:
			}
			victim := mrand.IntN(5)
			switch victim {
			case 0, 1, 2:
				reps[victim].kill()
				killLog["replica"]++
				time.Sleep(500 * time.Millisecond)
				if err := reps[victim].start(ctx); err != nil {
					fmt.Fprintln(os.Stderr, "chaos: restart:", err)
				}
			case 3:
				rds.Kill()
				killLog["redis"]++
				time.Sleep(time.Second)
				if err := rds.Start(); err != nil {
					fmt.Fprintln(os.Stderr, "chaos: restart redis:", err)
				}
			case 4:
				m.Stop()
				killLog["minio"]++
				time.Sleep(time.Second)
				if err := m.Start(); err != nil {
					fmt.Fprintln(os.Stderr, "chaos: restart minio:", err)
				}
			}
			t.kills.Add(1)
		}
	})
	for c := range nClients {
		wg.Go(func() { client(runCtx, c, work, cli, t) })
	}
	wg.Wait()
	elapsed := time.Since(began)

	// Every component up again, then check.
	for _, r := range reps {
		if err := r.start(ctx); err != nil {
			return err
		}
	}
	if err := rds.Start(); err != nil {
		return err
	}
	if err := m.Start(); err != nil {
		return err
	}
	lost, partial := verify(ctx, cli, t, work)
	// The janitor: one replica with a short TTL expires what failed
	// resumable uploads left, and the orphaned multipart uploads.
	for _, r := range reps {
		r.kill()
	}
	time.Sleep(2 * time.Second)
	janitor := &replica{bin: greeterd, addr: reps[0].addr, args: append(append([]string{}, serverArgs...), "--resumable-ttl", "1s"), env: env, log: filepath.Join(work, "janitor.log")}
	if err := janitor.start(ctx); err != nil {
		return err
	}
	defer janitor.kill()
	stale, staging := leftovers(ctx, m.Client())
	for end := time.Now().Add(30 * time.Second); stale > 0 && time.Now().Before(end); stale, staging = leftovers(ctx, m.Client()) {
		time.Sleep(500 * time.Millisecond) // the janitor runs every second: poll, bounded
	}
	acked := 0
	for _, u := range t.uploads {
		if u.acked {
			acked++
		}
	}
	fmt.Printf("chaos: %v, %d clients: %d operations (%d failed under faults), %d uploads acknowledged\n",
		elapsed.Round(time.Second), nClients, t.ops.Load(), t.failed.Load(), acked)
	fmt.Printf("chaos: %d kills (replica %d, redis %d, minio %d), one every %v\n", t.kills.Load(), killLog["replica"], killLog["redis"], killLog["minio"], killEvery)
	t.printReasons()
	fmt.Printf("chaos: plain uploads' staging multipart uploads awaiting their %v janitor age (not visible, not counted): %d\n", time.Hour, staging)
	fmt.Printf("acknowledged uploads lost: %d\n", lost)
	fmt.Printf("files whose bytes differ from their recorded SHA-256: %d\n", t.differ.Load()+int64(partial))
	fmt.Printf("partial objects or stale multipart uploads left visible: %d\n", stale)
	if lost != 0 || t.differ.Load() != 0 || partial != 0 || stale != 0 {
		return fmt.Errorf("integrity numbers are not all 0 (logs in %s were removed; rerun to inspect)", work)
	}
	if int(t.kills.Load()) < minKills {
		return fmt.Errorf("%d kills, want at least %d", t.kills.Load(), minKills)
	}
	return nil
}

// client uploads fresh files (plain or resumable) and downloads
// acknowledged ones until ctx ends.
func client(ctx context.Context, id int, work string, cli func(context.Context, ...string) (int, string), t *tally) {
	dir := filepath.Join(work, fmt.Sprintf("client-%d", id))
	os.MkdirAll(dir, 0o700)
	for n := 0; ctx.Err() == nil; n++ {
		opCtx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		t.ops.Add(1)
		if n%3 == 2 {
			t.mu.Lock()
			var pick *upload
			if len(t.uploads) > 0 {
				pick = t.uploads[mrand.IntN(len(t.uploads))]
			}
			if pick != nil && !pick.acked {
				pick = nil
			}
			t.mu.Unlock()
			if pick != nil {
				out := filepath.Join(dir, "down-"+pick.name)
				if code, msg := cli(opCtx, "download", pick.name, "-o", out); code != 0 {
					t.fail("download", code, msg)
				} else if fileSHA(out) != pick.sha {
					t.differ.Add(1)
				}
				os.Remove(out)
				cancel()
				continue
			}
		}
		name := fmt.Sprintf("c%d-%d.bin", id, n)
		path := filepath.Join(dir, name)
		sha, err := writeRandom(path, 1<<20+mrand.IntN(15<<20))
		if err != nil {
			cancel()
			return
		}
		u := &upload{name: name, sha: sha}
		t.mu.Lock()
		t.uploads = append(t.uploads, u)
		t.byName[name] = u
		t.mu.Unlock()
		args := []string{"upload", path}
		if n%2 == 0 {
			args = []string{"upload", "--no-resume", path}
		}
		code, out := cli(opCtx, args...)
		var res struct{ SHA256 string }
		if code == 0 && json.Unmarshal([]byte(out), &res) == nil && res.SHA256 == sha {
			t.mu.Lock()
			u.acked = true
			t.mu.Unlock()
		} else if code == 0 {
			t.differ.Add(1)
		} else {
			t.fail("upload", code, out)
		}
		os.Remove(path)
		cancel()
	}
}

// verify downloads every acknowledged upload and lists every file: it
// returns the acknowledged uploads missing or unreadable, and listed files
// whose SHA-256 is not the one their upload was given.
func verify(ctx context.Context, cli func(context.Context, ...string) (int, string), t *tally, work string) (lost, partial int) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	dir := filepath.Join(work, "verify")
	os.MkdirAll(dir, 0o700)
	for _, u := range t.uploads {
		if !u.acked {
			continue
		}
		out := filepath.Join(dir, u.name)
		code, _ := cli(ctx, "download", u.name, "-o", out)
		switch {
		case code != 0:
			lost++
		case fileSHA(out) != u.sha:
			t.differ.Add(1)
		}
		os.Remove(out)
	}
	code, out := cli(ctx, "ls")
	var rows []struct{ Name, SHA256 string }
	if code != 0 || json.Unmarshal([]byte(out), &rows) != nil {
		fmt.Fprintln(os.Stderr, "chaos: ls failed:", out)
		return lost, partial + 1
	}
	for _, row := range rows {
		if u := t.byName[row.Name]; u == nil || u.sha != row.SHA256 {
			partial++
		}
	}
	return lost, partial
}

// leftovers counts the upload states and the multipart uploads in the
// bucket (stale), apart from plain uploads' staging uploads under tmp/,
// which the janitor removes only after an hour (staging).
func leftovers(ctx context.Context, c *minio.Core) (stale, staging int) {
	for obj := range c.ListObjectsIter(ctx, bucket, minio.ListObjectsOptions{Prefix: "uploads/", Recursive: true}) {
		if obj.Err == nil {
			stale++
		}
	}
	key, id := "", ""
	for {
		res, err := c.ListMultipartUploads(ctx, bucket, "", key, id, "", 1000)
		if err != nil {
			return stale + 1, staging
		}
		for _, u := range res.Uploads {
			if strings.HasPrefix(u.Key, "tmp/") {
				staging++
			} else {
				stale++
			}
		}
		if !res.IsTruncated {
			return stale, staging
		}
		key, id = res.NextKeyMarker, res.NextUploadIDMarker
	}
}

func writeRandom(path string, n int) (string, error) {
	b := make([]byte, n)
	rand.Read(b)
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:]), os.WriteFile(path, b, 0o600)
}

func fileSHA(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	h := sha256.New()
	io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil))
}
