package service_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/diskstore"
	"github.com/greeter/greeter/service/servicetest"
)

// These tests cover per-owner quotas (RELIABILITY.md R11): checked when an
// upload starts against its declared size, enforced while it streams,
// answered with ResourceExhausted and a QuotaFailure, reported by
// GetUsage, and given back by deletes, replacements and expiry.

// quotaTester is a tester whose owners all have quota q, and which
// records the subjects of the quotas that refused uploads.
type quotaTester struct {
	*tester
	mu       sync.Mutex
	refusals []string
}

func startQuota(t *testing.T, q service.Quota) *quotaTester {
	t.Helper()
	qt := &quotaTester{}
	qt.tester = start(t, servicetest.Config{
		Options: service.Options{
			ResumableTTL: time.Hour,
			OnQuotaExceeded: func(_ context.Context, subject string) {
				qt.mu.Lock()
				defer qt.mu.Unlock()
				qt.refusals = append(qt.refusals, subject)
			},
		},
		StoreOptions: []diskstore.Option{diskstore.WithQuotas(func(string) service.Quota { return q })},
	})
	return qt
}

// declared is an upload of data as name that declares its size and
// sha256, in chunks of 100 bytes; edit, if set, changes the metadata.
func declared(name string, data []byte, edit func(*pb.MetaData)) []*uploadMsg {
	size := int64(len(data))
	md := &pb.MetaData{Filename: name, Size: &size, Sha256: hexSum(data)}
	if edit != nil {
		edit(md)
	}
	msgs := []*uploadMsg{metaWith(md)}
	for off := 0; off < len(data); off += 100 {
		msgs = append(msgs, chunk(data[off:min(off+100, len(data))]))
	}
	return msgs
}

// wantUsage checks what GetUsage reports to the default owner.
func (h *tester) wantUsage(ctx context.Context, want *pb.Usage) {
	h.t.Helper()
	got, err := h.Client.GetUsage(ctx, &pb.UsageRequest{})
	if err != nil {
		h.t.Fatalf("GetUsage: %v", err)
	}
	if got.GetBytes() != want.GetBytes() || got.GetObjects() != want.GetObjects() ||
		got.GetQuotaBytes() != want.GetQuotaBytes() || got.GetQuotaObjects() != want.GetQuotaObjects() {
		h.t.Fatalf("GetUsage = %v, want %v", got, want)
	}
}

// wantQuotaFailure checks that err is ResourceExhausted naming the quota
// subject and carrying a QuotaFailure for it.
func wantQuotaFailure(t *testing.T, err error, subject string) {
	t.Helper()
	wantCode(t, err, codes.ResourceExhausted, subject+" quota exceeded")
	for _, d := range status.Convert(err).Details() {
		if qf, ok := d.(*errdetails.QuotaFailure); ok {
			if v := qf.GetViolations(); len(v) != 1 || v[0].GetSubject() != subject || !strings.Contains(v[0].GetDescription(), "quota of") {
				t.Fatalf("got QuotaFailure %v, want one violation of %q with a description", qf, subject)
			}
			return
		}
	}
	t.Fatalf("got details %v in %v, want a QuotaFailure", status.Convert(err).Details(), err)
}

// wantRefusals checks the subjects OnQuotaExceeded was called with.
func (qt *quotaTester) wantRefusals(want ...string) {
	qt.t.Helper()
	qt.mu.Lock()
	defer qt.mu.Unlock()
	if strings.Join(qt.refusals, ",") != strings.Join(want, ",") {
		qt.t.Errorf("OnQuotaExceeded saw %q, want %q", qt.refusals, want)
	}
}

// R11: an upload whose declared size does not fit is refused before any
// byte is sent: its metadata alone gets the QuotaFailure (not the size
// mismatch that a half-close without bytes would give).
func TestQuotaDeclaredSizeCheckedAtCreate(t *testing.T) {
	h := startQuota(t, service.Quota{Bytes: 1000})
	ctx := testCtx(t)
	h.wantUsage(ctx, &pb.Usage{QuotaBytes: 1000})
	if _, err := h.send(ctx, declared("a", randomBytes(t, 600), nil)...); err != nil {
		t.Fatal(err)
	}
	_, err := h.send(ctx, declared("b", randomBytes(t, 500), nil)[0])
	wantQuotaFailure(t, err, service.QuotaBytes)
	wantCode(t, err, codes.ResourceExhausted, "storing 500 more bytes would exceed the quota of 1000 bytes (600 in use)")
	h.waitHandled(pb.Greeter_UploadFile_FullMethodName)
	h.waitHandled(pb.Greeter_UploadFile_FullMethodName)
	h.assertNoTemporaries()
	h.wantUsage(ctx, &pb.Usage{Bytes: 600, Objects: 1, QuotaBytes: 1000})
	h.wantRefusals(service.QuotaBytes)
}

// R11: an upload that declares no size is stopped while it streams, once
// its bytes cross the quota; nothing of it stays.
func TestQuotaEnforcedMidStream(t *testing.T) {
	h := startQuota(t, service.Quota{Bytes: 1000})
	ctx := testCtx(t)
	if _, err := h.upload(ctx, "a", randomBytes(t, 600), 100); err != nil {
		t.Fatal(err)
	}
	_, err := h.upload(ctx, "b", randomBytes(t, 500), 100)
	wantQuotaFailure(t, err, service.QuotaBytes)
	h.waitHandled(pb.Greeter_UploadFile_FullMethodName)
	h.waitHandled(pb.Greeter_UploadFile_FullMethodName)
	h.assertNoTemporaries()
	if _, err := h.Client.StatFile(ctx, &pb.MetaData{Filename: "b"}); status.Code(err) != codes.NotFound {
		t.Errorf("StatFile(b) after the refused upload = %v, want NotFound", err)
	}
	h.wantUsage(ctx, &pb.Usage{Bytes: 600, Objects: 1, QuotaBytes: 1000})
	// What fits still goes in.
	if _, err := h.upload(ctx, "c", randomBytes(t, 400), 100); err != nil {
		t.Fatalf("an upload up to the quota: %v", err)
	}
	h.wantUsage(ctx, &pb.Usage{Bytes: 1000, Objects: 2, QuotaBytes: 1000})
}

// R11: the objects quota counts files; replacing one adds none.
func TestQuotaObjects(t *testing.T) {
	h := startQuota(t, service.Quota{Objects: 2})
	ctx := testCtx(t)
	for _, name := range []string{"a", "b"} {
		if _, err := h.upload(ctx, name, []byte(name), 100); err != nil {
			t.Fatal(err)
		}
	}
	_, err := h.upload(ctx, "c", []byte("c"), 100)
	wantQuotaFailure(t, err, service.QuotaObjects)
	wantCode(t, err, codes.ResourceExhausted, "storing 1 more file(s) would exceed the quota of 2 files (2 in use)")
	if _, err := h.upload(ctx, "a", []byte("a, again"), 100); err != nil {
		t.Fatalf("replacing a file at the objects quota: %v", err)
	}
	h.wantUsage(ctx, &pb.Usage{Bytes: 9, Objects: 2, QuotaObjects: 2})
	h.wantRefusals(service.QuotaObjects)
}

// R11: deleting a file gives its bytes and its object back.
func TestQuotaDeleteFrees(t *testing.T) {
	h := startQuota(t, service.Quota{Bytes: 1000, Objects: 1})
	ctx := testCtx(t)
	if _, err := h.send(ctx, declared("a", randomBytes(t, 1000), nil)...); err != nil {
		t.Fatal(err)
	}
	_, err := h.send(ctx, declared("b", randomBytes(t, 1), nil)...)
	wantQuotaFailure(t, err, service.QuotaBytes)
	if _, err := h.Client.DeleteFile(ctx, &pb.MetaData{Filename: "a"}); err != nil {
		t.Fatal(err)
	}
	h.wantUsage(ctx, &pb.Usage{QuotaBytes: 1000, QuotaObjects: 1})
	if _, err := h.send(ctx, declared("b", randomBytes(t, 1000), nil)...); err != nil {
		t.Fatalf("an upload after the delete: %v", err)
	}
	h.wantUsage(ctx, &pb.Usage{Bytes: 1000, Objects: 1, QuotaBytes: 1000, QuotaObjects: 1})
}

// R11: replacing a file counts only the difference, in both directions.
func TestQuotaReplaceCountsDifference(t *testing.T) {
	h := startQuota(t, service.Quota{Bytes: 1000})
	ctx := testCtx(t)
	for _, c := range []struct {
		size int
		code codes.Code
		want int64 // bytes in use afterwards
	}{
		{800, codes.OK, 800},
		{900, codes.OK, 900},                 // 100 more: fits though 800+900 would not
		{1001, codes.ResourceExhausted, 900}, // declared beyond the quota
		{100, codes.OK, 100},
	} {
		_, err := h.send(ctx, declared("f", randomBytes(t, c.size), nil)...)
		if status.Code(err) != c.code {
			t.Fatalf("replacing f with %d bytes: %v, want %v", c.size, err, c.code)
		}
		h.wantUsage(ctx, &pb.Usage{Bytes: c.want, Objects: 1, QuotaBytes: 1000})
	}
	// Without a declared size, the same holds while streaming.
	if _, err := h.upload(ctx, "f", randomBytes(t, 1000), 100); err != nil {
		t.Fatalf("replacing f with 1000 undeclared bytes: %v", err)
	}
	h.wantUsage(ctx, &pb.Usage{Bytes: 1000, Objects: 1, QuotaBytes: 1000})
}

// R11: an incomplete resumable upload counts at its declared size from
// the moment it begins, across a restart, until it expires and the
// janitor removes it.
func TestQuotaResumableReservedUntilExpiry(t *testing.T) {
	h := startQuota(t, service.Quota{Bytes: 1000})
	ctx := testCtx(t)
	data := randomBytes(t, 800)
	h.partial(ctx, "up1", "f", data, 0, 100)
	h.wantUsage(ctx, &pb.Usage{Bytes: 800, Objects: 1, QuotaBytes: 1000})

	_, err := h.send(ctx, resumeMsgs("up2", "g", randomBytes(t, 300), 0, 100)...)
	wantQuotaFailure(t, err, service.QuotaBytes)
	h.waitHandled(pb.Greeter_UploadFile_FullMethodName)
	h.wantNoUpload(ctx, "up2")

	h.Restart()
	h.wantUsage(ctx, &pb.Usage{Bytes: 800, Objects: 1, QuotaBytes: 1000})

	h.Clock.Advance(2 * time.Hour)
	if n, err := h.Store.CleanExpiredUploads(time.Hour); err != nil || n != 1 {
		t.Fatalf("CleanExpiredUploads = %d, %v; want 1, nil", n, err)
	}
	h.wantUsage(ctx, &pb.Usage{QuotaBytes: 1000})
	if _, err := h.send(ctx, resumeMsgs("up2", "g", randomBytes(t, 1000), 0, 100)...); err != nil {
		t.Fatalf("a resumable upload after the expiry: %v", err)
	}
	h.wantUsage(ctx, &pb.Usage{Bytes: 1000, Objects: 1, QuotaBytes: 1000})
}

// R11: completing a resumable upload moves its share from reserved to
// stored without counting it twice; a restart computes the same usage.
func TestQuotaResumableCompleteAndRestart(t *testing.T) {
	h := startQuota(t, service.Quota{Bytes: 1000, Objects: 10})
	ctx := testCtx(t)
	data := randomBytes(t, 600)
	h.partial(ctx, "up", "f", data, 0, 300)
	if _, err := h.send(ctx, resumeMsgs("up", "f", data, 300, 100)...); err != nil {
		t.Fatal(err)
	}
	if _, err := h.upload(ctx, "dir/g", randomBytes(t, 50), 100); err != nil {
		t.Fatal(err)
	}
	want := &pb.Usage{Bytes: 650, Objects: 2, QuotaBytes: 1000, QuotaObjects: 10}
	h.wantUsage(ctx, want)
	h.Restart()
	h.wantUsage(ctx, want)
}

// R11: two uploads that each fit alone but not together: exactly one is
// stored, whatever the interleaving.
func TestQuotaConcurrentUploads(t *testing.T) {
	h := startQuota(t, service.Quota{Bytes: 1000})
	ctx := testCtx(t)
	errs := make(chan error, 2)
	for _, name := range []string{"a", "b"} {
		go func() {
			_, err := h.send(ctx, declared(name, randomBytes(t, 600), nil)...)
			errs <- err
		}()
	}
	ok := 0
	for range 2 {
		if err := <-errs; err == nil {
			ok++
		} else {
			wantQuotaFailure(t, err, service.QuotaBytes)
		}
	}
	if ok != 1 {
		t.Fatalf("%d of two 600-byte uploads under a 1000-byte quota succeeded, want 1", ok)
	}
	<-h.Idle(pb.Greeter_UploadFile_FullMethodName)
	h.assertNoTemporaries()
	h.wantUsage(ctx, &pb.Usage{Bytes: 600, Objects: 1, QuotaBytes: 1000})
}

// R11: an upload that declared its size holds all of it from the start, so
// a second upload that does not fit beside it is refused at once, however
// little of the first has arrived; the first then completes.
func TestQuotaDeclaredSizeHeldWhileStreaming(t *testing.T) {
	h := startQuota(t, service.Quota{Bytes: 1000})
	ctx := testCtx(t)
	a := randomBytes(t, 600)
	first := declared("a", a, nil)
	open := h.openUpload(ctx, first[:2], 100) // the metadata and 100 bytes
	if _, err := h.send(ctx, declared("b", randomBytes(t, 600), nil)...); err == nil {
		t.Fatal("a 600-byte upload beside a 600-byte one under a 1000-byte quota succeeded")
	} else {
		wantQuotaFailure(t, err, service.QuotaBytes)
	}
	for _, m := range first[2:] {
		if err := open.Send(m); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	if _, err := open.CloseAndRecv(); err != nil {
		t.Fatalf("the first upload: %v", err)
	}
	<-h.Idle(pb.Greeter_UploadFile_FullMethodName)
	h.assertStored(ctx, "a", a)
	h.wantUsage(ctx, &pb.Usage{Bytes: 600, Objects: 1, QuotaBytes: 1000})
}

// R11: without a quota, GetUsage still reports what the owner stores, and
// nothing is refused.
func TestUsageWithoutQuota(t *testing.T) {
	h := start(t, servicetest.Config{})
	ctx := testCtx(t)
	if _, err := h.upload(ctx, "a/b", randomBytes(t, 1234), 100); err != nil {
		t.Fatal(err)
	}
	h.wantUsage(ctx, &pb.Usage{Bytes: 1234, Objects: 1})
	other := servicetest.AsOwner(ctx, "bob")
	if u, err := h.Client.GetUsage(other, &pb.UsageRequest{}); err != nil || u.GetBytes() != 0 || u.GetObjects() != 0 {
		t.Errorf("GetUsage of another owner = %v, %v; want nothing stored", u, err)
	}
}
