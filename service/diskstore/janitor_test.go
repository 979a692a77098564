package diskstore

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/greeter/greeter/service"
)

func TestCleanTemporaries(t *testing.T) {
	s, dir := newStore(t)
	ctx := t.Context()
	tmp := filepath.Join(dir, "tmp")
	old := time.Now().Add(-2 * time.Hour)
	for _, name := range []string{"stale.tmp", "notes.txt"} {
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(tmp, "dir.tmp"), 0o700); err != nil {
		t.Fatal(err)
	}
	u, err := s.Create(ctx, owner, "in-progress")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Abort()
	u.Write([]byte("partial"))

	removed, err := s.CleanTemporaries(time.Hour)
	if err != nil || removed != 1 {
		t.Errorf("CleanTemporaries(1h) = %d, %v, want 1, nil", removed, err)
	}
	if _, err := os.Stat(filepath.Join(tmp, "stale.tmp")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale.tmp after cleaning: %v, want it removed", err)
	}
	if got := tempCount(t, dir); got != 3 { // notes.txt, dir.tmp, the upload's file
		t.Errorf("tmp/ holds %d entries, want 3", got)
	}

	// Zero, as the server passes at start-up, still keeps every temporary
	// file younger than MinTemporaryAge: the upload commits.
	removed, err = s.CleanTemporaries(0)
	if err != nil || removed != 0 {
		t.Errorf("CleanTemporaries(0) = %d, %v, want 0, nil", removed, err)
	}
	if _, err := u.Commit(ctx, service.Expect{}); err != nil {
		t.Errorf("Commit after CleanTemporaries(0) = %v, want nil", err)
	}
	if got := tempCount(t, dir); got != 2 {
		t.Errorf("tmp/ holds %d entries, want notes.txt and dir.tmp", got)
	}
}

func TestResumableExpiry(t *testing.T) {
	clock := newFakeClock()
	s, dir := newStore(t, WithClock(clock.Now))
	ctx := t.Context()
	data := randomData(t, 100)
	start := func(owner, id string, n int) service.ResumableUpload {
		t.Helper()
		up, err := s.BeginResumable(ctx, owner, resumeOf(id, "f", data, 0))
		if err != nil {
			t.Fatal(err)
		}
		writeAll(t, up, data[:n], 10)
		return up
	}
	old := start(owner, "old", 30)
	old.Suspend()
	held := start(owner, "held", 20)
	defer held.Abort()
	bobs := start("bob", "old", 40)
	bobs.Suspend()
	// Leftovers of a process that died while creating an upload.
	leftDir := filepath.Join(dir, uploadsDir, encodedOwner(owner))
	for _, name := range []string{"orphan" + partSuffix, "orphan" + stateTmpSuffix, "notes.txt"} {
		if err := os.WriteFile(filepath.Join(leftDir, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		past := clock.Now().Add(-3 * time.Hour)
		os.Chtimes(filepath.Join(leftDir, name), past, past)
	}

	clock.Advance(30 * time.Minute)
	fresh := start(owner, "fresh", 10)
	fresh.Suspend()
	if n, err := s.CleanExpiredUploads(0); err == nil {
		t.Errorf("CleanExpiredUploads(0) = %d, nil, want an error", n)
	}
	clock.Advance(45 * time.Minute) // old and bob's: 75 min; fresh: 45 min

	wantUnknown(t, s, owner, "old", time.Hour)
	wantCommitted(t, s, owner, "fresh", 10)
	if _, err := s.QueryResumable(ctx, owner, "held", time.Hour); err != nil {
		t.Errorf("QueryResumable of an expired upload a stream holds = %v, want its size", err)
	}

	n, err := s.CleanExpiredUploads(time.Hour)
	if err != nil || n != 3 {
		t.Fatalf("CleanExpiredUploads(1h) = %d, %v; want 3 (old, bob's old, orphan), nil", n, err)
	}
	wantUnknown(t, s, owner, "old", 0)
	wantUnknown(t, s, "bob", "old", 0)
	wantCommitted(t, s, owner, "fresh", 10)
	if _, err := held.Write(data[20:30]); err != nil {
		t.Errorf("Write to the held upload after cleaning = %v, want nil", err)
	}
	if _, err := os.Stat(filepath.Join(leftDir, "notes.txt")); err != nil {
		t.Errorf("a foreign file was removed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, uploadsDir, encodedOwner("bob"))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("bob's empty uploads folder: Stat = %v, want it removed", err)
	}

	// An expired upload is replaced by a new one: its offset starts at 0.
	r := resumeOf("fresh", "f", data, 10)
	r.TTL = time.Minute
	if _, err := s.BeginResumable(ctx, owner, r); !errors.Is(err, service.ErrOffsetMismatch) {
		t.Fatalf("resuming an expired upload = %v, want ErrOffsetMismatch", err)
	}
	r.Offset = 0
	up, err := s.BeginResumable(ctx, owner, r)
	if err != nil {
		t.Fatal(err)
	}
	if up.Written() != 0 {
		t.Errorf("Written of a replaced upload = %d, want 0", up.Written())
	}
	up.Abort()
}
