package diskstore

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/greeter/greeter/service"
)

// These tests cover the store's side of quotas (RELIABILITY.md R11): usage
// kept in memory matches what a walk of the disk finds, holds are given
// back, and writes stay free of allocations.

func wantUsage(t *testing.T, s *Store, owner string, bytes, objects int64) {
	t.Helper()
	u, err := s.Usage(testContext(t), owner)
	if err != nil {
		t.Fatalf("Usage(%q) = %v", owner, err)
	}
	if u.Bytes != bytes || u.Objects != objects {
		t.Fatalf("Usage(%q) = %d bytes, %d objects; want %d, %d", owner, u.Bytes, u.Objects, bytes, objects)
	}
}

// TestUsageWalkMatchesMemory builds usage in memory, then opens the data
// directory again: the walk at first use finds the same.
func TestUsageWalkMatchesMemory(t *testing.T) {
	s, dir := newStore(t)
	ctx := testContext(t)
	wantUsage(t, s, owner, 0, 0)
	put(t, s, owner, "a", randomData(t, 10))
	put(t, s, owner, "d/e", randomData(t, 20))
	put(t, s, "bob", "b", randomData(t, 1000))
	// A new resumable upload holds its declared size and one object.
	up, err := s.BeginResumable(ctx, owner, resumeOf("new", "r", randomData(t, 100), 0))
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, up, randomData(t, 10), 5)
	if err := up.Suspend(); err != nil {
		t.Fatal(err)
	}
	// One replacing a:10 holds only the difference, and no object.
	up, err = s.BeginResumable(ctx, owner, resumeOf("repl", "a", randomData(t, 30), 0))
	if err != nil {
		t.Fatal(err)
	}
	if err := up.Suspend(); err != nil {
		t.Fatal(err)
	}
	// A file no client can name does not count.
	if err := os.WriteFile(diskPath(dir, owner, "bad\x01name"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	wantUsage(t, s, owner, 10+20+100+20, 3)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	wantUsage(t, s2, owner, 150, 3)
	wantUsage(t, s2, "bob", 1000, 1)
}

// TestUsageHoldsGivenBack checks every way an incomplete upload ends.
func TestUsageHoldsGivenBack(t *testing.T) {
	clock := newFakeClock()
	s, _ := newStore(t, WithClock(clock.Now), WithQuotas(func(string) service.Quota { return service.Quota{Bytes: 1 << 20} }))
	ctx := testContext(t)

	plain, err := s.Create(ctx, owner, "p")
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, plain, randomData(t, 300), 100)
	wantUsage(t, s, owner, 300, 1)
	plain.Abort()
	wantUsage(t, s, owner, 0, 0)

	data := randomData(t, 500)
	up, err := s.BeginResumable(ctx, owner, resumeOf("ab", "r", data, 0))
	if err != nil {
		t.Fatal(err)
	}
	wantUsage(t, s, owner, 500, 1)
	up.Abort()
	wantUsage(t, s, owner, 0, 0)

	up, err = s.BeginResumable(ctx, owner, resumeOf("done", "r", data, 0))
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, up, data, 100)
	if _, err := up.Commit(ctx, service.Expect{}); err != nil {
		t.Fatal(err)
	}
	wantUsage(t, s, owner, 500, 1)

	up, err = s.BeginResumable(ctx, owner, resumeOf("exp", "x", data, 0))
	if err != nil {
		t.Fatal(err)
	}
	up.Suspend()
	wantUsage(t, s, owner, 1000, 2)
	clock.Advance(2 * time.Hour)
	if n, err := s.CleanExpiredUploads(time.Hour); err != nil || n != 1 {
		t.Fatalf("CleanExpiredUploads = %d, %v; want 1, nil", n, err)
	}
	wantUsage(t, s, owner, 500, 1)

	if err := s.Delete(ctx, owner, "r"); err != nil {
		t.Fatal(err)
	}
	wantUsage(t, s, owner, 0, 0)
}

// TestWriteBeyondQuota ends a plain upload at the write that crosses the
// bytes quota: the temporary is gone and the error says which quota.
func TestWriteBeyondQuota(t *testing.T) {
	s, dir := newStore(t, WithQuotas(func(o string) service.Quota {
		if o == owner {
			return service.Quota{Bytes: 250}
		}
		return service.Quota{}
	}))
	ctx := testContext(t)
	u, err := s.Create(ctx, owner, "f")
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, u, randomData(t, 200), 100)
	_, err = u.Write(randomData(t, 100))
	var qe *service.QuotaError
	if !errors.As(err, &qe) || qe.Subject != service.QuotaBytes || qe.Limit != 250 || qe.Used != 0 || qe.Need != 300 {
		t.Fatalf("Write beyond the quota = %v, want a QuotaError: bytes, limit 250, used 0, need 300", err)
	}
	assertNoTemps(t, dir)
	wantUsage(t, s, owner, 0, 0)
	// Another owner's quota is its own.
	put(t, s, "bob", "f", randomData(t, 1000))
}

// TestWriteWithQuotaDoesNotAllocate pins that growing an upload's hold
// costs no allocation per Write.
func TestWriteWithQuotaDoesNotAllocate(t *testing.T) {
	s, _ := newStore(t, WithQuotas(func(string) service.Quota { return service.Quota{Bytes: 1 << 40} }))
	u, err := s.Create(t.Context(), owner, "f")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Abort()
	chunk := make([]byte, 4096)
	if got := testing.AllocsPerRun(100, func() {
		if _, err := u.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}); got != 0 {
		t.Errorf("allocations per Write with a quota = %v, want 0", got)
	}
}

// TestScanUsageTotals checks that a scan covers owners no call used yet.
func TestScanUsageTotals(t *testing.T) {
	s, dir := newStore(t)
	put(t, s, owner, "a", randomData(t, 10))
	put(t, s, "bob", "b/c", randomData(t, 32))
	s.Close()
	s2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if b, o := s2.UsageTotals(); b != 0 || o != 0 {
		t.Fatalf("UsageTotals before a scan = %d, %d; want 0, 0", b, o)
	}
	if err := s2.ScanUsage(context.Background()); err != nil {
		t.Fatal(err)
	}
	if b, o := s2.UsageTotals(); b != 42 || o != 2 {
		t.Fatalf("UsageTotals after a scan = %d, %d; want 42, 2", b, o)
	}
	put(t, s2, owner, "a", randomData(t, 5))
	if b, o := s2.UsageTotals(); b != 37 || o != 2 {
		t.Fatalf("UsageTotals after replacing 10 bytes by 5 = %d, %d; want 37, 2", b, o)
	}
}
