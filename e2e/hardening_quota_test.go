package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/greeter/greeter/proto/greeterpb"
)

// TestHardeningQuota drives per-owner quotas through the real binaries
// (RELIABILITY.md R11): greeterd with a 1 MiB, 3-file quota refuses the
// CLI's upload that would cross it (exit 8, ResourceExhausted naming the
// quota) before storing anything, stops an upload without a declared size
// mid-stream with a QuotaFailure, refuses a fourth file, gives the space
// back on delete, reports usage through GetUsage and `greeter usage`, counts
// refusals and totals in its metrics, and computes the same usage after a
// restart.
func TestHardeningQuota(t *testing.T) {
	faultNoLeaks(t)
	const quota = 1 << 20
	r := newFaultRig(t, "", "--quota-bytes", "1MiB", "--quota-objects", "3", "--metrics-listen", "127.0.0.1:0")
	ctx := faultCtx(t)
	c := greeterpb.NewGreeterClient(r.conn())
	wantUsage := func(c greeterpb.GreeterClient, bytes, objects int64) {
		t.Helper()
		u, err := c.GetUsage(ctx, &greeterpb.UsageRequest{})
		if err != nil {
			t.Fatalf("GetUsage: %v", err)
		}
		if u.GetBytes() != bytes || u.GetObjects() != objects || u.GetQuotaBytes() != quota || u.GetQuotaObjects() != 3 {
			t.Fatalf("GetUsage = %v, want %d bytes, %d objects, quotas %d bytes and 3 objects", u, bytes, objects, quota)
		}
	}

	first, _ := r.file("first.bin", 600<<10)
	second, secondData := r.file("second.bin", 600<<10)
	r.cli(0, "upload", first)
	res := r.cli(8, "upload", second)
	const msg = "ResourceExhausted: bytes quota exceeded: storing 614400 more bytes would exceed the quota of 1048576 bytes (614400 in use); delete files to make room"
	if !strings.Contains(res.Stderr, msg) {
		t.Errorf("greeter upload over the quota: stderr %q, want it to contain %q", res.Stderr, msg)
	}
	if got := slices.Sorted(maps.Keys(r.ls())); !slices.Equal(got, []string{"first.bin"}) {
		t.Errorf("ls after the refused upload = %q, want only first.bin", got)
	}
	if temps, parts := r.temps(), r.parts(); len(temps) != 0 || len(parts) != 0 {
		t.Errorf("the refused upload left temporaries %v and parts %v, want none", temps, parts)
	}
	wantUsage(c, 600<<10, 1)

	// Without a declared size the upload is stopped while it streams.
	err := undeclaredUpload(ctx, c, "stream.bin", make([]byte, 600<<10))
	if st := status.Convert(err); st.Code() != codes.ResourceExhausted || !hasQuotaFailure(st, "bytes") {
		t.Errorf("an undeclared upload over the quota: %v (details %v), want ResourceExhausted with a QuotaFailure for bytes", err, st.Details())
	}
	wantUsage(c, 600<<10, 1)

	// Deleting gives the space back.
	r.cli(0, "rm", "first.bin")
	r.cli(0, "upload", second)
	wantUsage(c, 600<<10, 1)

	// The objects quota: a third and fourth small file.
	small, _ := r.file("small", 10)
	r.cli(0, "upload", small, "--as", "s1")
	r.cli(0, "upload", small, "--as", "s2")
	res = r.cli(8, "upload", small, "--as", "s3")
	if !strings.Contains(res.Stderr, "objects quota exceeded: storing 1 more file(s) would exceed the quota of 3 files (3 in use)") {
		t.Errorf("a fourth file under a 3-file quota: stderr %q, want the objects quota named", res.Stderr)
	}
	// Replacing one adds no file.
	r.cli(0, "upload", small, "--as", "s2")
	// create_only keeps the stored file (issue 12 item 11).
	res = r.cli(5, "upload", small, "--as", "second.bin", "--create-only")
	if !strings.Contains(res.Stderr, `FailedPrecondition: file "second.bin" already exists`) {
		t.Errorf("create_only over an existing file: stderr %q, want FailedPrecondition naming it", res.Stderr)
	}
	if got := r.ls()["second.bin"]; got != faultSum(secondData) {
		t.Errorf("second.bin has sha256 %s after a refused create_only upload, want %s", got, faultSum(secondData))
	}

	var usage struct {
		Bytes   int64 `json:"bytes"`
		Objects int64 `json:"objects"`
	}
	out := r.cli(0, "--json", "usage").Stdout
	if err := json.Unmarshal([]byte(out), &usage); err != nil {
		t.Fatalf("greeter --json usage printed %q: %v", out, err)
	}
	if usage.Bytes != 600<<10+20 || usage.Objects != 3 {
		t.Errorf("greeter --json usage = %s, want %d bytes and 3 objects", out, 600<<10+20)
	}

	expo := scrape(t, metricsAddr(t, r.srv))
	if n := metricValue(expo, "greeter_quota_rejections_total", `subject="bytes"`); n != 2 {
		t.Errorf("greeter_quota_rejections_total{subject=bytes} = %v, want 2", n)
	}
	if n := metricValue(expo, "greeter_quota_rejections_total", `subject="objects"`); n != 1 {
		t.Errorf("greeter_quota_rejections_total{subject=objects} = %v, want 1", n)
	}
	if n := metricValue(expo, "greeter_storage_bytes", ""); n != 600<<10+20 {
		t.Errorf("greeter_storage_bytes = %v, want %d", n, 600<<10+20)
	}
	for _, line := range strings.Split(expo, "\n") {
		if !strings.HasPrefix(line, "#") && strings.Contains(line, "jwt:") {
			t.Errorf("a metric names an owner: %s; want totals only", line)
		}
	}

	// A restart computes the same usage from disk.
	if err := r.srv.Stop(faultWait); err != nil {
		t.Fatalf("stopping greeterd: %v", err)
	}
	r.start()
	wantUsage(greeterpb.NewGreeterClient(r.conn()), 600<<10+20, 3)
}

// undeclaredUpload uploads data as name without declaring its size or
// sha256, in 64 KiB chunks, and returns the server's answer.
func undeclaredUpload(ctx context.Context, c greeterpb.GreeterClient, name string, data []byte) error {
	st, err := c.UploadFile(ctx)
	if err != nil {
		return err
	}
	md := &greeterpb.MetaData{Filename: name}
	msgs := []*greeterpb.UploadFileRequest{{Request: &greeterpb.UploadFileRequest_Metadata{Metadata: md}}}
	for chunk := range slices.Chunk(data, 64<<10) {
		msgs = append(msgs, &greeterpb.UploadFileRequest{Request: &greeterpb.UploadFileRequest_ChunkData{ChunkData: chunk}})
	}
	for _, m := range msgs {
		if err := st.Send(m); errors.Is(err, io.EOF) {
			break // the server ended the stream; CloseAndRecv says why
		} else if err != nil {
			return err
		}
	}
	_, err = st.CloseAndRecv()
	return err
}

// hasQuotaFailure reports whether st carries a QuotaFailure for subject.
func hasQuotaFailure(st *status.Status, subject string) bool {
	for _, d := range st.Details() {
		if qf, ok := d.(*errdetails.QuotaFailure); ok {
			for _, v := range qf.GetViolations() {
				if v.GetSubject() == subject && v.GetDescription() != "" {
					return true
				}
			}
		}
	}
	return false
}
