package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/greeter/greeter/e2e/e2etest"
)

// These tests run greeterd with --storage s3 on a real MinIO that each test
// starts on loopback (e2etest.StartMinIO; it is killed when the test ends,
// and by the kernel if the test binary dies). They look into the bucket
// only to read the layout service/s3store documents: the state object
// uploads/<owner>/<id>.json of a resumable upload.

// s3Bucket is the bucket every test's MinIO holds.
const s3Bucket = "greeter-e2e"

// s3PartSize is the --s3-part-size of the tests: S3's smallest, so that a
// few MiB make several parts.
const s3PartSize = 5 << 20

// s3Rig is a MinIO and a greeterd in dev mode on it. It reuses faultRig
// for the CLI and gRPC helpers; its data dir is unused.
type s3Rig struct {
	*faultRig
	minio *e2etest.MinIO
}

// newS3Rig starts MinIO and greeterd with the relaxed limits, the S3 flags
// and args.
func newS3Rig(t *testing.T, args ...string) *s3Rig {
	t.Helper()
	r := &s3Rig{
		faultRig: &faultRig{t: t, state: t.TempDir(), args: args, work: t.TempDir()},
		minio:    e2etest.StartMinIO(t, s3Bucket),
	}
	r.start()
	t.Cleanup(func() { r.noSecretLogged() })
	return r
}

// start starts greeterd (again) on the rig's state dir and bucket, with the
// rig's args and then extra.
func (r *s3Rig) start(extra ...string) {
	r.t.Helper()
	args := append([]string{"--state-dir", r.state}, faultLimits...)
	args = append(args, s3Flags(r.minio.Endpoint, s3Bucket)...)
	args = append(append(args, r.args...), extra...)
	r.srv = bins.StartServer(r.t, s3Env(e2etest.MinIOSecretKey), args...)
}

// noSecretLogged fails the test if greeterd logged the secret key.
func (r *s3Rig) noSecretLogged() {
	if r.srv != nil && strings.Contains(r.srv.Log.String(), e2etest.MinIOSecretKey) {
		r.t.Errorf("greeterd logged the S3 secret key:\n%s", r.srv.Log.String())
	}
}

// s3Flags are greeterd's flags for bucket at endpoint.
func s3Flags(endpoint, bucket string) []string {
	return []string{"--storage", "s3", "--s3-endpoint", endpoint, "--s3-bucket", bucket,
		"--s3-part-size", fmt.Sprint(s3PartSize)}
}

// s3Env gives greeterd MinIO's access key with secret, and nothing from
// the developer's AWS configuration.
func s3Env(secret string) []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + e2etest.MinIOAccessKey, "AWS_SECRET_ACCESS_KEY=" + secret,
		"AWS_SESSION_TOKEN=", "AWS_PROFILE=", "AWS_SHARED_CREDENTIALS_FILE=/nonexistent",
	}
}

// committed returns the committed size of the one resumable upload in
// the bucket, from its state object, and false if there is none.
func (r *s3Rig) committed(ctx context.Context) (int64, bool) {
	r.t.Helper()
	c := r.minio.Client()
	for obj := range c.ListObjectsIter(ctx, s3Bucket, minio.ListObjectsOptions{Prefix: "uploads/", Recursive: true}) {
		if obj.Err != nil {
			r.t.Fatalf("listing upload states: %v", obj.Err)
		}
		body, _, _, err := c.GetObject(ctx, s3Bucket, obj.Key, minio.GetObjectOptions{})
		if err != nil {
			return 0, false // replaced or removed meanwhile
		}
		var st struct {
			Committed int64 `json:"committed"`
		}
		err = json.NewDecoder(io.LimitReader(body, 1<<20)).Decode(&st)
		body.Close()
		if err != nil {
			r.t.Fatalf("state object %s: %v", obj.Key, err)
		}
		return st.Committed, true
	}
	return 0, false
}

// leftovers counts the state objects and the incomplete multipart uploads
// in the bucket.
func (r *s3Rig) leftovers(ctx context.Context) (states, multiparts int) {
	r.t.Helper()
	c := r.minio.Client()
	for obj := range c.ListObjectsIter(ctx, s3Bucket, minio.ListObjectsOptions{Prefix: "uploads/", Recursive: true}) {
		if obj.Err != nil {
			r.t.Fatal(obj.Err)
		}
		states++
	}
	res, err := c.ListMultipartUploads(ctx, s3Bucket, "", "", "", "", 1000)
	if err != nil {
		r.t.Fatal(err)
	}
	return states, len(res.Uploads)
}

// TestS3RoundTrip uploads files at and around the part size through
// greeterd on MinIO, resumable and plain, and downloads them again.
func TestS3RoundTrip(t *testing.T) {
	r := newS3Rig(t)
	sizes := []int{0, 1, s3PartSize - 1, s3PartSize, 64<<20 + 1}
	var paths []string
	want := map[string]string{}
	for _, n := range sizes {
		path, data := r.file(fmt.Sprintf("f-%d.bin", n), n)
		paths = append(paths, path)
		want[filepath.Base(path)] = faultSum(data)
	}
	names := make([]string, len(paths))
	for i, p := range paths {
		names[i] = filepath.Base(p)
	}
	for _, mode := range []struct {
		name string
		args []string
	}{{"resumable", nil}, {"plain", []string{"--no-resume"}}} {
		t.Run(mode.name, func(t *testing.T) {
			res := r.cli(0, append(append([]string{"--json", "upload"}, mode.args...), paths...)...)
			var ups []transferResult
			if err := json.Unmarshal([]byte(res.Stdout), &ups); err != nil || len(ups) != len(paths) {
				t.Fatalf("upload --json printed %q (%v)", res.Stdout, err)
			}
			for _, up := range ups {
				if up.SHA256 != want[up.Name] {
					t.Errorf("upload of %s reported sha256 %s, want %s", up.Name, up.SHA256, want[up.Name])
				}
			}
			for name, sum := range r.ls() {
				if want[name] != sum {
					t.Errorf("ls: %s has sha256 %s, want %s", name, sum, want[name])
				}
			}
			dir := t.TempDir()
			r.cli(0, append(append([]string{"download"}, names...), "-o", dir)...)
			for name, sum := range want {
				if got := fileSum(t, filepath.Join(dir, name)); got != sum {
					t.Errorf("downloaded %s has sha256 %s, want %s", name, got, sum)
				}
			}
		})
	}
	ctx := faultCtx(t)
	if states, multiparts := r.leftovers(ctx); states != 0 || multiparts != 0 {
		t.Errorf("after the uploads the bucket holds %d upload states and %d incomplete multipart uploads, want none", states, multiparts)
	}
}

// TestS3StartupErrors starts greeterd on S3 with bad settings: each exits
// non-zero before listening, with a message naming the problem, no stack
// and no secret.
func TestS3StartupErrors(t *testing.T) {
	m := e2etest.StartMinIO(t, s3Bucket)
	const wrongSecret = "wrong-secret-do-not-print"
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String() // nothing listens there once closed
	l.Close()
	for _, tt := range []struct {
		name   string
		secret string
		args   []string
		code   int
		want   string
	}{
		{"wrong secret", wrongSecret, s3Flags(m.Endpoint, s3Bucket), 1, "check the secret key"},
		{"missing bucket", e2etest.MinIOSecretKey, s3Flags(m.Endpoint, "no-such-bucket"), 1, `bucket "no-such-bucket" does not exist`},
		{"unreachable endpoint", e2etest.MinIOSecretKey, s3Flags(closed, s3Bucket), 1, "cannot reach the S3 server"},
		{"no bucket flag", e2etest.MinIOSecretKey, []string{"--storage", "s3", "--s3-endpoint", m.Endpoint}, 2, "--storage s3 needs --s3-bucket"},
		{"http off loopback", e2etest.MinIOSecretKey, s3Flags("http://192.0.2.1:9000", s3Bucket), 2, "http:// off loopback"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := bins.RunServer(t, s3Env(tt.secret), append([]string{"--state-dir", t.TempDir(), "--listen", "127.0.0.1:0"}, tt.args...)...)
			t.Logf("exit %d: %s", res.Code, strings.TrimSpace(res.Stderr))
			if res.Code != tt.code || !strings.Contains(res.Stderr, tt.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d naming %q", res.Code, res.Stderr, tt.code, tt.want)
			}
			for _, bad := range []string{tt.secret, "goroutine ", "panic", "greeterd listening"} {
				if strings.Contains(res.Stderr+res.Stdout, bad) {
					t.Errorf("the output holds %q:\n%s%s", bad, res.Stdout, res.Stderr)
				}
			}
		})
	}
}
