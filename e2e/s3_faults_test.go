package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// TestS3ResumeAfterSIGKILL SIGKILLs greeterd on S3 in the middle of a
// throttled resumable upload, once the upload's state object shows two
// committed parts, and restarts it: the CLI run again sends only what the
// state had not committed, plus at most one part.
func TestS3ResumeAfterSIGKILL(t *testing.T) {
	r := newS3Rig(t, "--bandwidth-per-identity", "8MiB")
	const size = 64 << 20
	path, data := r.file("big.bin", size)
	ctx := faultCtx(t)
	running := startCLI(ctx, r.cliArgs([]string{"--json", "upload", "--retries", "0", path})...)
	faultWaitFor(t, "two committed parts", func() bool {
		c, ok := r.committed(ctx)
		return ok && c >= 2*s3PartSize
	})
	r.srv.Kill()
	committed, ok := r.committed(ctx)
	if !ok || committed%s3PartSize != 0 {
		t.Fatalf("after the kill the state says %d bytes committed (found %v), want whole parts", committed, ok)
	}
	res := <-running
	if res.Code != 6 {
		t.Fatalf("upload to a killed greeterd: exit %d, want 6\nstdout: %s\nstderr: %s", res.Code, res.Stdout, res.Stderr)
	}
	first := oneResult(t, res)

	r.start("--bandwidth-per-identity", "0")
	second := oneResult(t, r.cli(0, "--json", "upload", path))
	resent := first.BytesSent + second.BytesSent - size
	t.Logf("killed with %d MiB committed; the first run sent %d bytes, the second %d of %d: %d bytes sent twice (one part is %d)",
		committed>>20, first.BytesSent, second.BytesSent, size, resent, s3PartSize)
	if limit := size - committed + s3PartSize; second.BytesSent > limit {
		t.Errorf("the second run sent %d bytes, want at most %d (the %d not committed plus one part)", second.BytesSent, limit, size-committed)
	}
	if second.SHA256 != faultSum(data) || r.ls()["big.bin"] != faultSum(data) {
		t.Errorf("the resumed upload reported sha256 %s, listed %s, want %s", second.SHA256, r.ls()["big.bin"], faultSum(data))
	}
	if states, multiparts := r.leftovers(ctx); states != 0 || multiparts != 0 {
		t.Errorf("after the upload the bucket holds %d upload states and %d incomplete multipart uploads, want none", states, multiparts)
	}
}

// TestS3ServerRestartMidUpload stops MinIO under a throttled resumable
// upload until greeterd has answered Unavailable, then starts it again:
// the CLI's own retries finish the upload.
func TestS3ServerRestartMidUpload(t *testing.T) {
	r := newS3Rig(t, "--bandwidth-per-identity", "8MiB")
	const size = 32 << 20
	path, data := r.file("big.bin", size)
	ctx := faultCtx(t)
	began := time.Now()
	running := startCLI(ctx, r.cliArgs([]string{"--json", "upload", path})...)
	faultWaitFor(t, "a committed part", func() bool {
		c, ok := r.committed(ctx)
		return ok && c >= s3PartSize
	})
	r.minio.Stop()
	stopped := time.Now()
	waitForLog(ctx, t, r.srv, `"msg":"storage unavailable"`)
	if err := r.minio.Start(); err != nil {
		t.Fatal(err)
	}
	outage := time.Since(stopped)
	res := <-running
	if res.Code != 0 {
		t.Fatalf("upload across the MinIO restart: exit %d\nstdout: %s\nstderr: %s", res.Code, res.Stdout, res.Stderr)
	}
	up := oneResult(t, res)
	t.Logf("MinIO was down for %v; the upload took %v, %d attempts, %d bytes sent for %d",
		outage.Round(time.Millisecond), time.Since(began).Round(time.Millisecond), up.Attempts, up.BytesSent, size)
	if up.Attempts < 2 || up.SHA256 != faultSum(data) || r.ls()["big.bin"] != faultSum(data) {
		t.Errorf("the upload reported %+v, want at least 2 attempts and sha256 %s stored", up, faultSum(data))
	}
	if states, multiparts := r.leftovers(ctx); states != 0 || multiparts != 0 {
		t.Errorf("after the upload the bucket holds %d upload states and %d incomplete multipart uploads, want none", states, multiparts)
	}
}

// TestS3OutageHealthAndStatus makes the bucket unreachable twice, by
// stopping MinIO and by removing the bucket: health goes NOT_SERVING, every
// call that needs the bucket answers Unavailable (CLI exit 6, never
// Unknown), and once the bucket is back health is SERVING again and calls
// succeed. (usage is left out: the store answers it from the figure it
// keeps in memory.)
func TestS3OutageHealthAndStatus(t *testing.T) {
	r := newS3Rig(t, "--health-interval", "200ms")
	path, _ := r.file("small.bin", 1000)
	r.cli(0, "upload", path)
	conn := r.conn()
	waitHealth(t, conn, healthpb.HealthCheckResponse_SERVING)
	admin := r.minio.Client()
	for _, outage := range []struct {
		name       string
		begin, end func() error
	}{
		{"server stopped", func() error { r.minio.Stop(); return nil }, r.minio.Start},
		{"bucket removed", func() error {
			return admin.RemoveBucketWithOptions(faultCtx(t), s3Bucket, minio.RemoveBucketOptions{ForceDelete: true})
		}, func() error {
			return admin.MakeBucket(faultCtx(t), s3Bucket, minio.MakeBucketOptions{})
		}},
	} {
		t.Run(outage.name, func(t *testing.T) {
			if err := outage.begin(); err != nil {
				t.Fatal(err)
			}
			waitHealth(t, conn, healthpb.HealthCheckResponse_NOT_SERVING)
			for _, args := range [][]string{
				{"ls"},
				{"stat", "small.bin"},
				{"download", "--retries", "0", "small.bin", "-o", filepath.Join(t.TempDir(), "copy.bin")},
				{"upload", "--retries", "0", path, "--as", "new.bin"},
			} {
				callStart := time.Now()
				res := bins.CLI(t, nil, r.cliArgs(args)...)
				t.Logf("greeter %s: exit %d after %v: %s", args[0], res.Code, time.Since(callStart).Round(time.Millisecond), strings.TrimSpace(res.Stderr))
				if res.Code != 6 || strings.Contains(res.Stderr, "Unknown") || strings.Contains(res.Stderr, "Internal") {
					t.Errorf("greeter %s during the outage: exit %d, stderr %q; want 6, Unavailable", args[0], res.Code, res.Stderr)
				}
			}
			if err := outage.end(); err != nil {
				t.Fatal(err)
			}
			waitHealth(t, conn, healthpb.HealthCheckResponse_SERVING)
			if res := bins.CLI(t, nil, r.cliArgs([]string{"upload", path, "--as", "after.bin"})...); res.Code != 0 {
				t.Fatalf("upload after the outage: exit %d, stderr %q", res.Code, res.Stderr)
			}
		})
	}
}
