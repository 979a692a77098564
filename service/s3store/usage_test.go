package s3store

import (
	"errors"
	"testing"
	"time"

	"github.com/greeter/greeter/internal/fakeclock"
	"github.com/greeter/greeter/service"
)

// wantUsage checks owner's Usage on s.
func wantUsage(t *testing.T, s *Store, bytes, objects int64) {
	t.Helper()
	u, err := s.Usage(testCtx(t), owner)
	if err != nil {
		t.Fatalf("Usage = %v", err)
	}
	if u.Bytes != bytes || u.Objects != objects {
		t.Fatalf("Usage = %d bytes, %d objects; want %d, %d", u.Bytes, u.Objects, bytes, objects)
	}
}

// quotaReplicas opens two stores on one prefix with the quota q and the
// clock clk, as two greeterd processes on one bucket.
func quotaReplicas(t *testing.T, q service.Quota, clk *fakeclock.Clock) (a, b *Store) {
	mods := func(o *Options) {
		o.Now = clk.Now
		o.Quotas = func(string) service.Quota { return q }
	}
	a = openStore(t, nil, mods)
	b = openStore(t, nil, mods, func(o *Options) { o.Prefix = a.opts.Prefix })
	return a, b
}

// TestUsageDriftIsReconciled lets one replica change what another has
// counted: the other's figure is stale until it is older than
// UsageMaxAge, and then its next use lists the owner again.
func TestUsageDriftIsReconciled(t *testing.T) {
	clk := fakeclock.New(time.Now())
	a, b := quotaReplicas(t, service.Quota{}, clk)
	put(t, a, "one", data(10, 1))
	wantUsage(t, a, 10, 1)
	put(t, b, "two", data(20, 2))
	wantUsage(t, b, 30, 2)
	wantUsage(t, a, 10, 1) // stated drift: a has not listed since
	clk.Advance(DefaultUsageMaxAge + time.Second)
	wantUsage(t, a, 30, 2)
	if err := b.Delete(testCtx(t), owner, "one"); err != nil {
		t.Fatal(err)
	}
	wantUsage(t, b, 20, 1)
	clk.Advance(DefaultUsageMaxAge + time.Second)
	wantUsage(t, a, 20, 1)
}

// TestRefusalRecounts fills a quota of two files on one replica and frees
// a file on another: the first replica, refusing with a figure at least
// refusalRecount old, lists again and admits the upload.
func TestRefusalRecounts(t *testing.T) {
	clk := fakeclock.New(time.Now())
	a, b := quotaReplicas(t, service.Quota{Objects: 2}, clk)
	put(t, a, "one", data(10, 1))
	put(t, a, "two", data(10, 2))
	wantUsage(t, b, 20, 2)
	if err := b.Delete(testCtx(t), owner, "one"); err != nil {
		t.Fatal(err)
	}
	_, err := a.Create(testCtx(t), owner, "three")
	var qe *service.QuotaError
	if !errors.As(err, &qe) || qe.Subject != service.QuotaObjects {
		t.Fatalf("Create with a figure just counted = %v, want a QuotaError on objects", err)
	}
	clk.Advance(refusalRecount + time.Second)
	put(t, a, "three", data(10, 3))
	wantUsage(t, a, 20, 2)
}

// TestUsageOfResumableUploads follows the hold of a resumable upload that
// replaces a file: its declared size less that file's, no object; a new
// store finds the same from the bucket, and the janitor's expiry gives it
// back.
func TestUsageOfResumableUploads(t *testing.T) {
	clk := fakeclock.New(time.Now())
	s := openStore(t, nil, func(o *Options) { o.Now = clk.Now })
	put(t, s, "f", data(30, 1))
	b := data(testPart+100, 2)
	up := begin(t, s, "r", b, 0)
	writeChunks(t, up, b[:testPart+1])
	if err := up.Suspend(); err != nil {
		t.Fatal(err)
	}
	wantUsage(t, s, int64(len(b)), 1)
	other := openStore(t, nil, func(o *Options) { o.Now = clk.Now; o.Prefix = s.opts.Prefix })
	wantUsage(t, other, int64(len(b)), 1)
	clk.Advance(2 * time.Hour)
	if n, err := other.CleanExpiredUploads(time.Hour); err != nil || n != 1 {
		t.Fatalf("CleanExpiredUploads = %d, %v; want 1", n, err)
	}
	wantUsage(t, other, 30, 1)
	assertClean(t, shared, other)
}

// TestQuotaStopsStagedUpload sends a plain upload past a bytes quota after
// it staged a part: Write fails with a QuotaError, and nothing is left
// behind, neither on the bucket nor in the usage.
func TestQuotaStopsStagedUpload(t *testing.T) {
	q := service.Quota{Bytes: 2 * testPart}
	s := openStore(t, nil, func(o *Options) { o.Quotas = func(string) service.Quota { return q } })
	put(t, s, "small", data(100, 1))
	up, err := s.Create(testCtx(t), owner, "big")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Abort()
	b := data(2*testPart, 2)
	var werr error
	for off := 0; off < len(b) && werr == nil; off += 256 << 10 {
		_, werr = up.Write(b[off:min(off+256<<10, len(b))])
	}
	var qe *service.QuotaError
	if !errors.As(werr, &qe) || qe.Subject != service.QuotaBytes || qe.Limit != q.Bytes {
		t.Fatalf("Write past the quota = %v, want a QuotaError on bytes", werr)
	}
	if _, err := up.Commit(testCtx(t), service.Expect{}); err == nil {
		t.Fatal("Commit after the refusal succeeded")
	}
	wantUsage(t, s, 100, 1)
	assertClean(t, shared, s)
}
