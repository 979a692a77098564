package service_test

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/proto/wire"
	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/diskstore"
	"github.com/greeter/greeter/service/servicetest"
)

func TestResumableRestart(t *testing.T) {
	h := start(t, servicetest.Config{})
	ctx := testCtx(t)
	data := randomBytes(t, 512<<10)

	h.interrupted(ctx, "rs", "restart.bin", data, 0, 256<<10, 100<<10, 32<<10)
	first, err := h.committed(ctx, "rs")
	if err != nil {
		t.Fatal(err)
	}
	h.Restart()
	h.wantCommitted(ctx, "rs", first)
	h.assertInvisible(ctx, "restart.bin")

	h.partial(ctx, "rs", "restart.bin", data, first, 400<<10)
	h.Restart()
	h.wantCommitted(ctx, "rs", 400<<10)
	if _, err := h.send(ctx, resumeMsgs("rs", "restart.bin", data, 400<<10, 32<<10)...); err != nil {
		t.Fatal(err)
	}
	h.assertStored(ctx, "restart.bin", data)
	h.assertNoUploadState()
}

func TestResumableExpiry(t *testing.T) {
	h := start(t, servicetest.Config{Options: service.Options{ResumableTTL: time.Hour}})
	ctx := testCtx(t)
	data := randomBytes(t, 1000)
	h.partial(ctx, "exp", "f", data, 0, 500)

	h.Clock.Advance(50 * time.Minute)
	h.wantCommitted(ctx, "exp", 500)
	if n, err := h.Store.CleanExpiredUploads(time.Hour); err != nil || n != 0 {
		t.Fatalf("CleanExpiredUploads(1h) after 50 min = %d, %v; want 0, nil", n, err)
	}
	h.Clock.Advance(20 * time.Minute)
	h.wantNoUpload(ctx, "exp")
	if n, err := h.Store.CleanExpiredUploads(time.Hour); err != nil || n != 1 {
		t.Fatalf("CleanExpiredUploads(1h) after 70 min = %d, %v; want 1, nil", n, err)
	}
	h.assertNoUploadState()
	_, err := h.send(ctx, resumeMsgs("exp", "f", data, 500, 250)...)
	wantCode(t, err, codes.FailedPrecondition, "committed size of 0 bytes")
	wantErrorInfo(t, err, wire.ReasonOffsetMismatch, 0)
	h.waitHandled(pb.Greeter_UploadFile_FullMethodName)
	h.assertInvisible(ctx, "f")
}

// TestResumableExpiryWithoutJanitor checks that the service's TTL holds even
// when nothing cleans up: an expired upload starts anew.
func TestResumableExpiryWithoutJanitor(t *testing.T) {
	h := start(t, servicetest.Config{Options: service.Options{ResumableTTL: time.Hour}})
	ctx := testCtx(t)
	data := randomBytes(t, 1000)
	h.partial(ctx, "exp", "f", data, 0, 500)
	h.Clock.Advance(2 * time.Hour)
	if _, err := h.send(ctx, resumeMsgs("exp", "f", data, 0, 300)...); err != nil {
		t.Fatal(err)
	}
	h.assertStored(ctx, "f", data)
	h.assertNoUploadState()
}

func TestResumablePerOwnerCap(t *testing.T) {
	h := start(t, servicetest.Config{StoreOptions: []diskstore.Option{diskstore.WithMaxUploadsPerOwner(2)}})
	ctx := testCtx(t)
	data := randomBytes(t, 1000)
	h.partial(ctx, "a", "a", data, 0, 100)
	h.partial(ctx, "b", "b", data, 0, 100)
	_, err := h.send(ctx, resumeMsgs("c", "c", data, 0, 500)...)
	wantCode(t, err, codes.ResourceExhausted, "too many incomplete uploads")
	h.waitHandled(pb.Greeter_UploadFile_FullMethodName)
	h.wantNoUpload(ctx, "c")

	// The cap is per owner, and resuming does not count as a new upload.
	if _, err := h.send(servicetest.AsOwner(ctx, "bob"), resumeMsgs("c", "c", data, 0, 500)...); err != nil {
		t.Fatalf("bob's upload: %v", err)
	}
	if _, err := h.send(ctx, resumeMsgs("a", "a", data, 100, 500)...); err != nil {
		t.Fatalf("resuming a: %v", err)
	}
	if _, err := h.send(ctx, resumeMsgs("c", "c", data, 0, 500)...); err != nil {
		t.Fatalf("c once a completed: %v", err)
	}
	// The cap is on incomplete uploads, not on plain ones.
	if _, err := h.upload(ctx, "plain", data, 500); err != nil {
		t.Fatalf("plain upload at the cap: %v", err)
	}
}

// TestResumableCommittedNeverDecreases breaks a 16 MiB upload at five
// random points, each time resuming from what QueryUpload reports, and then
// finishes it.
func TestResumableCommittedNeverDecreases(t *testing.T) {
	h := start(t, servicetest.Config{})
	ctx := testCtx(t)
	const size, chunkSize = 16 << 20, 256 << 10
	data := randomBytes(t, size)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))

	var committed, sent int64
	for i := range 5 {
		// A cut in the part not yet committed; the server has written at
		// least reach bytes when the call breaks, some more may be in
		// flight.
		cut := committed + 1 + rng.Int64N(size-committed-1)
		reach := max(committed+1, cut-chunkSize)
		h.interrupted(ctx, "big", "big.bin", data, committed, cut, reach, chunkSize)
		sent += cut - committed
		got, err := h.committed(ctx, "big")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("interruption %d: sent up to %d, committed %d", i, cut, got)
		if got < committed || got < reach || got > cut {
			t.Fatalf("interruption %d: committed %d bytes, want at least %d (before) and %d (written), at most %d (sent)",
				i, got, committed, reach, cut)
		}
		committed = got
		h.assertInvisible(ctx, "big.bin")
	}
	if _, err := h.send(ctx, resumeMsgs("big", "big.bin", data, committed, chunkSize)...); err != nil {
		t.Fatal(err)
	}
	sent += size - committed
	h.assertStored(ctx, "big.bin", data)
	if sent >= 2*size {
		t.Errorf("sent %d bytes for a %d byte file, want less than twice its size", sent, size)
	}
	h.assertNoUploadState()
}

// TestResumableDataDirLayout pins where incomplete uploads live, so that
// operators and the janitor agree: uploads/<owner>/<id>.{part,json}.
func TestResumableDataDirLayout(t *testing.T) {
	h := start(t, servicetest.Config{})
	ctx := testCtx(t)
	data := randomBytes(t, 100)
	h.partial(ctx, "lay-out_1", "f", data, 0, 40)
	owners, err := os.ReadDir(filepath.Join(h.Dir, "uploads"))
	if err != nil || len(owners) != 1 {
		t.Fatalf("uploads/ = %v, %v; want one owner folder", owners, err)
	}
	part, err := os.Stat(filepath.Join(h.Dir, "uploads", owners[0].Name(), "lay-out_1.part"))
	if err != nil || part.Size() != 40 {
		t.Fatalf("part file: %v, %v; want 40 bytes", part, err)
	}
	if _, err := os.Stat(filepath.Join(h.Dir, "uploads", owners[0].Name(), "lay-out_1.json")); err != nil {
		t.Fatalf("state file: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Join(h.Dir, "objects")); len(entries) != 0 {
		t.Errorf("objects/ holds %v, want nothing", entries)
	}
}
