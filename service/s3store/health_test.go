package s3store

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/greeter/greeter/internal/s3test"
	"github.com/greeter/greeter/service"
)

// TestServerOutage stops the S3 server under a store: every call fails
// with ErrUnavailable, Check too, uploads in flight keep their committed
// parts, and all recovers when the server is back.
func TestServerOutage(t *testing.T) {
	srv := s3test.Start(t)
	s := openStore(t, srv, func(o *Options) { o.CheckTimeout = 3 * time.Second })
	ctx := testCtx(t)
	stored := data(2*mib, 31)
	put(t, s, "f", stored)
	if err := s.Check(ctx); err != nil {
		t.Fatalf("Check before the outage: %v", err)
	}
	reading, err := s.Open(ctx, owner, "f")
	if err != nil {
		t.Fatal(err)
	}
	defer reading.Close()
	buf := make([]byte, 64<<10)
	if _, err := reading.ReadAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	content := data(3*testPart, 32)
	up := begin(t, s, "id", content, 0)
	writeChunks(t, up, content[:testPart+10])

	srv.Stop()
	errs := map[string]error{"Check": s.Check(ctx)}
	_, errs["Stat"] = s.Stat(ctx, owner, "f")
	_, errs["Open"] = s.Open(ctx, owner, "f")
	_, errs["List"] = s.List(ctx, owner, "", "", 10)
	errs["Delete"] = s.Delete(ctx, owner, "f")
	_, errs["ReadAt elsewhere"] = reading.ReadAt(buf, mib)
	_, errs["Write"] = up.Write(content[testPart+10 : 2*testPart])
	_, errs["QueryResumable"] = s.QueryResumable(ctx, owner, "id", 0)
	_, errs["BeginResumable"] = s.BeginResumable(ctx, owner, resume("other", "g", content, 0))
	if plain, err := s.Create(ctx, owner, "g"); err == nil {
		plain.Write([]byte("x"))
		_, errs["Commit"] = plain.Commit(ctx, service.Expect{})
	}
	for op, err := range errs {
		if !errors.Is(err, service.ErrUnavailable) {
			t.Errorf("%s during the outage = %v, want ErrUnavailable", op, err)
		}
	}
	t.Logf("Check during the outage: %v", errs["Check"])
	if err := up.Suspend(); err != nil {
		t.Logf("Suspend during the outage: %v", err)
	}
	o := s.opts
	o.Prefix = ""
	if _, err := Open(ctx, o); !errors.Is(err, service.ErrUnavailable) {
		t.Errorf("Open during the outage = %v, want ErrUnavailable", err)
	}

	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(ctx); err != nil {
		t.Fatalf("Check after the outage: %v", err)
	}
	if got := get(t, s, "f"); !bytes.Equal(got, stored) {
		t.Error("file differs after the outage")
	}
	committed, err := query(t, s, "id")
	if err != nil || committed != testPart {
		t.Fatalf("Query after the outage = %d, %v; want %d", committed, err, testPart)
	}
	commitAll(t, s, begin(t, s, "id", content, committed), content, committed)
}
