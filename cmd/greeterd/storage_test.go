package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/greeter/greeter/internal/s3test"
	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/s3store"
)

// TestStorageFlagErrors checks that missing and contradictory storage
// settings are usage errors (exit 2) that name the flag, before anything
// is opened, and that an endpoint's password never reaches the message.
func TestStorageFlagErrors(t *testing.T) {
	s3 := []string{"--storage", "s3", "--s3-bucket", "bucket"}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{name: "unknown kind", args: []string{"--storage", "tape"}, want: `--storage must be disk or s3, got "tape"`},
		{name: "no bucket", args: []string{"--storage", "s3", "--s3-endpoint", "http://127.0.0.1:9"}, want: "--storage s3 needs --s3-bucket"},
		{name: "no endpoint", args: s3, want: "--storage s3 needs --s3-endpoint"},
		{name: "bucket from the environment", args: []string{"--storage", "s3"}, env: map[string]string{"GREETER_S3_ENDPOINT": "http://127.0.0.1:9"}, want: "needs --s3-bucket"},
		{name: "s3 flag with disk", args: []string{"--s3-bucket", "bucket"}, want: "--s3-bucket given, but --storage is disk"},
		{name: "bad bucket name", args: []string{"--storage", "s3", "--s3-bucket", "ab"}, want: `--s3-bucket "ab": Bucket name cannot be shorter than 3 characters`},
		{name: "s3 setting in the environment with disk", env: map[string]string{"GREETER_S3_PREFIX": "p"}, want: "--s3-prefix given, but --storage is disk"},
		{name: "not http", args: append(s3, "--s3-endpoint", "ftp://127.0.0.1"), want: "--s3-endpoint must be https://host[:port]"},
		{name: "path", args: append(s3, "--s3-endpoint", "https://s3.example.com/bucket"), want: "with no path"},
		{name: "user info", args: append(s3, "--s3-endpoint", "https://key:hunter2@s3.example.com"), want: "with no path, query or user"},
		{name: "http off loopback", args: append(s3, "--s3-endpoint", "http://192.0.2.1:9000"), want: "is http:// off loopback"},
		{name: "small parts", args: append(s3, "--s3-endpoint", "https://s3.example.com", "--s3-part-size", "4MiB"), want: "--s3-part-size must be between 5MiB and 5GiB"},
		{name: "no part uploads", args: append(s3, "--s3-endpoint", "https://s3.example.com", "--s3-max-part-uploads", "0"), want: "--s3-max-part-uploads must be at least 1"},
		{name: "negative upload cap", args: []string{"--max-uploads-per-owner", "-1"}, want: "--max-uploads-per-owner must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{"--state-dir", t.TempDir()}, tt.args...)
			code := run(t.Context(), args, &stdout, &stderr, func(k string) string { return tt.env[k] })
			if code != 2 || !strings.Contains(stderr.String(), tt.want) {
				t.Fatalf("greeterd %s: exit %d, stderr %q; want exit 2 and %q", strings.Join(tt.args, " "), code, stderr.String(), tt.want)
			}
			if strings.Contains(stderr.String(), "hunter2") {
				t.Errorf("stderr %q holds the endpoint's password", stderr.String())
			}
		})
	}
}

// TestStorageS3StartupErrors starts greeterd on a real MinIO with a wrong
// secret, a missing bucket and a closed port: each exits 1 before
// listening, with one line that names the problem and no secret.
func TestStorageS3StartupErrors(t *testing.T) {
	srv := s3test.Start(t)
	closed := closedAddr(t)
	const wrongSecret = "not-the-secret-at-all"
	tests := []struct {
		name             string
		secret, endpoint string
		bucket           string
		want             string
	}{
		{"wrong secret", wrongSecret, srv.Endpoint, srv.Bucket, "check the secret key"},
		{"missing bucket", s3test.SecretKey, srv.Endpoint, "no-such-bucket", `bucket "no-such-bucket" does not exist`},
		{"unreachable endpoint", s3test.SecretKey, "http://" + closed, srv.Bucket, "cannot reach the S3 server"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setS3Credentials(t, s3test.AccessKey, tt.secret)
			var stdout, stderr bytes.Buffer
			args := []string{"--state-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--storage", "s3",
				"--s3-endpoint", tt.endpoint, "--s3-bucket", tt.bucket}
			code := run(t.Context(), args, &stdout, &stderr, func(string) string { return "" })
			out := stderr.String()
			if code != 1 || !strings.Contains(out, tt.want) || strings.Contains(out, "greeterd listening") {
				t.Fatalf("exit %d, stderr:\n%s\nwant exit 1 before listening, naming %q", code, out, tt.want)
			}
			t.Logf("stderr: %s", out)
			if strings.Contains(out, tt.secret) || strings.Contains(out, "goroutine ") {
				t.Errorf("stderr holds the secret or a stack:\n%s", out)
			}
		})
	}
}

// TestStorageS3Limits checks that the quota and the cap on incomplete
// uploads reach the S3 store as they reach the disk store.
func TestStorageS3Limits(t *testing.T) {
	srv := s3test.Start(t)
	setS3Credentials(t, s3test.AccessKey, s3test.SecretKey)
	var c serveConfig
	fs := serveFlags(&c)
	if err := fs.Parse([]string{"--storage", "s3", "--s3-endpoint", srv.Endpoint, "--s3-bucket", srv.Bucket,
		"--s3-part-size", "5MiB", "--max-uploads-per-owner", "1"}); err != nil {
		t.Fatal(err)
	}
	if err := c.storage.check(fs); err != nil {
		t.Fatal(err)
	}
	quota := service.Quota{Bytes: 1 << 30, Objects: 7}
	store, _, err := c.storage.open(t.Context(), storeDeps{
		quotas: func(string) service.Quota { return quota },
		log:    slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	const owner = "anonymous:limits"
	u, err := store.Usage(ctx, owner)
	if err != nil || u.Quota != quota {
		t.Fatalf("Usage = %+v, %v; want quota %+v", u, err, quota)
	}
	data := []byte("one incomplete upload")
	begin := func(id string) error {
		up, err := store.BeginResumable(ctx, owner, service.Resume{ID: id, Name: id, TTL: time.Hour,
			Want: service.Expect{Size: int64(len(data)), HasSize: true, SHA256: sha256.Sum256(data), HasSHA256: true}})
		if err == nil {
			err = up.Suspend()
		}
		return err
	}
	if err := begin("first-upload-0001"); err != nil {
		t.Fatal(err)
	}
	if err := begin("second-upload-0002"); !errors.Is(err, service.ErrTooManyUploads) {
		t.Fatalf("a second incomplete upload with --max-uploads-per-owner 1: %v, want ErrTooManyUploads", err)
	}
}

// TestStorageS3SilentEndpoint checks that start-up gives up on an
// endpoint that accepts connections and never answers, naming it.
func TestStorageS3SilentEndpoint(t *testing.T) {
	setS3Credentials(t, "key", "secret-never-printed")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() { // accept, read nothing, answer nothing
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	endpoint := "http://" + l.Addr().String()
	c := storageConfig{kind: storageS3, openTimeout: 300 * time.Millisecond,
		s3: s3Config{endpoint: endpoint, bucket: "bucket", partSize: s3store.DefaultPartSize, maxPartUploads: 1}}
	start := time.Now()
	_, _, err = c.open(t.Context(), storeDeps{log: slog.New(slog.DiscardHandler)})
	want := "no answer from " + endpoint + " within 300ms"
	if err == nil || !strings.Contains(err.Error(), want) || time.Since(start) > 10*time.Second {
		t.Fatalf("open took %v: %v; want an error naming %q", time.Since(start), err, want)
	}
}

// setS3Credentials points the AWS credential chain at key and secret only.
func setS3Credentials(t *testing.T, key, secret string) {
	t.Setenv("AWS_ACCESS_KEY_ID", key)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
