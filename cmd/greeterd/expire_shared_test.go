package main

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"testing"
	"time"

	"github.com/greeter/greeter/internal/redistest"
	"github.com/greeter/greeter/internal/s3test"
	"github.com/greeter/greeter/service"
)

// TestJanitorSkipsUploadsHeldOnAnotherReplica runs two replicas on one S3
// bucket and one real Redis: replica A holds a stream on one expired
// upload and has suspended another. Replica B's janitor must remove only
// the suspended one: the held upload's lease is A's, so B leaves it, and A
// still commits it whole.
func TestJanitorSkipsUploadsHeldOnAnotherReplica(t *testing.T) {
	rs := redistest.Start(t)
	redisOpts, err := (&redisConfig{url: rs.URL()}).options(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	srv := s3test.Start(t)
	setS3Credentials(t, s3test.AccessKey, s3test.SecretKey)
	var c serveConfig
	if err := serveFlags(&c).Parse([]string{"--storage", "s3", "--s3-endpoint", srv.Endpoint, "--s3-bucket", srv.Bucket, "--s3-part-size", "5MiB"}); err != nil {
		t.Fatal(err)
	}
	discard := slog.New(slog.DiscardHandler)
	replica := func() servedStore {
		coord := c.storage.coordination(redisOpts, discard)
		t.Cleanup(coord.close)
		store, _, err := c.storage.open(t.Context(), storeDeps{quotas: func(string) service.Quota { return service.Quota{} }, log: discard, coord: coord})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		return store
	}
	a, b := replica(), replica()

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	const owner = "anonymous:janitor"
	data := []byte("bytes a live stream on replica A is writing")
	want := service.Expect{Size: int64(len(data)), HasSize: true, SHA256: sha256.Sum256(data), HasSHA256: true}
	begin := func(id string) service.ResumableUpload {
		t.Helper()
		up, err := a.BeginResumable(ctx, owner, service.Resume{ID: id, Name: id, TTL: time.Hour, Want: want})
		if err != nil {
			t.Fatalf("BeginResumable %s: %v", id, err)
		}
		return up
	}
	held := begin("held-by-a-0001")
	defer held.Abort()
	suspended := begin("suspended-0002")
	if err := suspended.Suspend(); err != nil {
		t.Fatal(err)
	}

	const ttl = 100 * time.Millisecond
	time.Sleep(3 * ttl) // both made no progress for longer than ttl
	removed, err := b.CleanExpiredUploads(ttl)
	if err != nil {
		t.Fatalf("replica B's janitor: %v", err)
	}
	if removed != 1 {
		t.Errorf("replica B's janitor removed %d uploads, want 1 (the suspended one, not the one A holds)", removed)
	}
	if _, err := held.Write(data); err != nil {
		t.Fatalf("A writing the held upload after B's janitor pass: %v", err)
	}
	info, err := held.Commit(ctx, want)
	if err != nil {
		t.Fatalf("A committing the held upload after B's janitor pass: %v", err)
	}
	if info.SHA256 != want.SHA256 || info.Size != want.Size {
		t.Errorf("committed %d bytes with sha256 %x, want %d with %x", info.Size, info.SHA256, want.Size, want.SHA256)
	}
	// A's own janitor (same process) removes nothing more: the suspended
	// upload is gone and the held one committed.
	if n, err := a.CleanExpiredUploads(ttl); err != nil || n != 0 {
		t.Errorf("replica A's janitor afterwards: removed %d, %v; want 0, nil", n, err)
	}
}
