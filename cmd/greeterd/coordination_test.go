package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/greeter/greeter/internal/redistest"
	"github.com/greeter/greeter/internal/s3test"
	"github.com/greeter/greeter/service"
)

// TestStorageCoordination checks that --redis-url reaches the S3 store
// (and only the S3 store): two replicas share upload leases and usage
// through Redis, so that an owner's objects quota holds across them.
func TestStorageCoordination(t *testing.T) {
	rs := redistest.Start(t)
	redisOpts, err := (&redisConfig{url: rs.URL()}).options(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	discard := slog.New(slog.DiscardHandler)
	if c := (&storageConfig{kind: storageDisk}).coordination(redisOpts, discard); c != nil {
		t.Error("the disk store got Redis coordination")
	}
	if c := (&storageConfig{kind: storageS3}).coordination(nil, discard); c != nil {
		t.Error("the S3 store got Redis coordination without --redis-url")
	}

	srv := s3test.Start(t)
	setS3Credentials(t, s3test.AccessKey, s3test.SecretKey)
	var c serveConfig
	fs := serveFlags(&c)
	if err := fs.Parse([]string{"--storage", "s3", "--s3-endpoint", srv.Endpoint, "--s3-bucket", srv.Bucket, "--s3-part-size", "5MiB"}); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	quota := service.Quota{Objects: 1}
	replica := func() servedStore {
		coord := c.storage.coordination(redisOpts, slog.New(slog.NewTextHandler(&log, nil)))
		t.Cleanup(coord.close)
		store, _, err := c.storage.open(t.Context(), storeDeps{quotas: func(string) service.Quota { return quota }, log: discard, coord: coord})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		return store
	}
	a, b := replica(), replica()
	if !strings.Contains(log.String(), "upload leases and usage shared through redis") {
		t.Errorf("log: %s, want the sharing announced", log.String())
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	const owner = "anonymous:coordination"
	data := []byte("one incomplete upload")
	resume := func(id string) service.Resume {
		return service.Resume{ID: id, Name: id, TTL: time.Hour,
			Want: service.Expect{Size: int64(len(data)), HasSize: true, SHA256: sha256.Sum256(data), HasSHA256: true}}
	}
	up, err := a.BeginResumable(ctx, owner, resume("first-upload-0001"))
	if err != nil {
		t.Fatal(err)
	}
	defer up.Abort()
	rdb := rs.Client(t)
	for _, pattern := range []string{"greeter:lease:*", "greeter:usage:*"} {
		if keys, err := rdb.Keys(ctx, pattern).Result(); err != nil || len(keys) != 1 {
			t.Errorf("Redis keys %s: %q, %v; want one", pattern, keys, err)
		}
	}
	var qe *service.QuotaError
	if _, err := b.BeginResumable(ctx, owner, resume("second-upload-0002")); !errors.As(err, &qe) {
		t.Errorf("a second upload on the other replica past an objects quota of 1: %v, want a QuotaError", err)
	}
}
