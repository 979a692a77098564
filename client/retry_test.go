package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/greeter/greeter/middleware/ratelimit"
	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/proto/wire"
	"github.com/greeter/greeter/service/servicetest"
)

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// withInfo returns a status error of code with an ErrorInfo.
func withInfo(code codes.Code, domain, reason string, md map[string]string) error {
	st, err := status.New(code, "x").WithDetails(&errdetails.ErrorInfo{Domain: domain, Reason: reason, Metadata: md})
	if err != nil {
		panic(err)
	}
	return st.Err()
}

// hasReason reports whether err carries the greeter ErrorInfo reason with
// the committed size n.
func hasReason(err error, reason string, n int64) bool {
	st, _ := status.FromError(err)
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.GetReason() == reason && info.GetMetadata()[wire.MetadataCommittedSize] == strconv.FormatInt(n, 10)
		}
	}
	return false
}

// TestErrorInfoMatchesServer: the client finds where to resume in the
// ErrorInfo the real service writes, for both of its reasons.
func TestErrorInfoMatchesServer(t *testing.T) {
	ctx := testContext(t)
	srv := servicetest.Start(t, servicetest.Config{})
	c, _ := dial(t, srv, Options{}, nil)
	data := make([]byte, 1000)
	size := int64(len(data))
	const id = "errorinfo-upload"
	for _, step := range []struct {
		name        string
		offset, end int64
		reason      string
	}{
		{"half-closed early", 0, 300, wire.ReasonUploadIncomplete},
		{"resumed at the wrong offset", 100, 200, wire.ReasonOffsetMismatch},
	} {
		md := &pb.MetaData{Filename: "i.bin", Size: &size, Sha256: sum(data), UploadId: id, Offset: step.offset}
		var sent int64
		_, _, err := c.send(ctx, md, bytes.NewReader(data[step.offset:step.end]), -1, nil, &sent, nil, func(int64) {})
		if !hasReason(err, step.reason, 300) {
			t.Fatalf("%s: the upload failed with %v, want %s at 300", step.name, err, step.reason)
		}
		if v := classify(err); !v.retry || v.committed != 300 {
			t.Errorf("%s: classify(%v) = %+v, want a retry at the committed size 300", step.name, err, v)
		}
	}
}

func TestClassify(t *testing.T) {
	retryInfo := func(d time.Duration) error {
		st, _ := status.New(codes.ResourceExhausted, "slow down").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(d)})
		return st.Err()
	}
	committed := func(n string) map[string]string { return map[string]string{"committed_size": n} }
	for _, c := range []struct {
		name      string
		err       error
		retry     bool
		throttle  bool
		delay     time.Duration
		committed int64
	}{
		{"unavailable", status.Error(codes.Unavailable, "connection reset"), true, false, 0, -1},
		{"canceled by the transport", status.Error(codes.Canceled, "stream canceled"), true, false, 0, -1},
		{"server idle timeout", status.Error(codes.DeadlineExceeded, "upload idle"), true, false, 0, -1},
		{"busy on another stream", status.Error(codes.Aborted, "in progress"), true, false, 0, -1},
		{"rate limited with RetryInfo", retryInfo(1500 * time.Millisecond), true, true, 1500 * time.Millisecond, -1},
		{"rate limited by ratelimit.Exhausted", ratelimit.Exhausted(context.Background(), "slow", time.Second), true, true, time.Second, -1},
		{"storage full, no RetryInfo", status.Error(codes.ResourceExhausted, "storage is full"), false, false, 0, -1},
		{"offset mismatch", withInfo(codes.FailedPrecondition, "greeter", "OFFSET_MISMATCH", committed("1024")), true, false, 0, 1024},
		{"upload incomplete", withInfo(codes.FailedPrecondition, "greeter", "UPLOAD_INCOMPLETE", committed("0")), true, false, 0, 0},
		{"other domain", withInfo(codes.FailedPrecondition, "example.com", "OFFSET_MISMATCH", committed("1")), false, false, 0, -1},
		{"other reason", withInfo(codes.FailedPrecondition, "greeter", "NAME_CONFLICT", committed("1")), false, false, 0, -1},
		{"bad committed size", withInfo(codes.FailedPrecondition, "greeter", "OFFSET_MISMATCH", committed("-3")), false, false, 0, -1},
		{"failed precondition without details", status.Error(codes.FailedPrecondition, "started for a different file"), false, false, 0, -1},
		{"not found", status.Error(codes.NotFound, "no such file"), false, false, 0, -1},
		{"permission denied", status.Error(codes.PermissionDenied, "no"), false, false, 0, -1},
		{"unauthenticated", status.Error(codes.Unauthenticated, "expired"), false, false, 0, -1},
		{"invalid argument", status.Error(codes.InvalidArgument, "digest mismatch"), false, false, 0, -1},
		{"data loss", status.Error(codes.DataLoss, "sha256 differs"), false, false, 0, -1},
		{"internal", status.Error(codes.Internal, "bug"), false, false, 0, -1},
		{"local file error", &os.PathError{Op: "read", Path: "x", Err: errors.New("EIO")}, false, false, 0, -1},
		{"bare io.EOF", io.EOF, false, false, 0, -1},
		{"wrapped status", fmt.Errorf("upload: %w", status.Error(codes.Unavailable, "x")), true, false, 0, -1},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := classify(c.err)
			if v.retry != c.retry || v.throttle != c.throttle || v.delay != c.delay || v.committed != c.committed {
				t.Errorf("classify(%v) = %+v, want retry %v throttle %v delay %v committed %d", c.err, v, c.retry, c.throttle, c.delay, c.committed)
			}
		})
	}
}

func TestBackoffIsBoundedAndGrows(t *testing.T) {
	p := RetryPolicy{InitialBackoff: 100 * time.Millisecond, MaxBackoff: 3 * time.Second}.withDefaults()
	for n := 1; n <= 200; n++ {
		ceil := p.InitialBackoff
		for i := 1; i < n && ceil < p.MaxBackoff; i++ {
			ceil *= 2
		}
		ceil = min(ceil, p.MaxBackoff)
		for range 20 {
			if d := p.backoff(n); d < ceil/2 || d > ceil {
				t.Fatalf("backoff(%d) = %v, want between %v and %v", n, d, ceil/2, ceil)
			}
		}
	}
	if d := p.backoff(1000); d > p.MaxBackoff {
		t.Fatalf("backoff(1000) = %v, more than MaxBackoff %v", d, p.MaxBackoff)
	}
}

func TestRetryGivesUpAfterMaxAttempts(t *testing.T) {
	ctx := testContext(t)
	faults := new(servicetest.Faults)
	faults.Fail(pb.Greeter_UploadFile_FullMethodName, -1, status.Error(codes.Unavailable, "down"))
	srv := servicetest.Start(t, servicetest.Config{Stream: []grpc.StreamServerInterceptor{faults.Stream}})
	p := RetryPolicy{MaxAttempts: 5, InitialBackoff: 100 * time.Millisecond, MaxBackoff: 300 * time.Millisecond}
	c, rec := dial(t, srv, Options{Retry: p}, nil)
	path, _ := randomFile(t, 1000)

	res, err := c.UploadFile(ctx, path, "x.bin", nil)
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("UploadFile to a failing server: %v, want Unavailable", err)
	}
	calls := faults.Calls(pb.Greeter_UploadFile_FullMethodName)
	if res.Attempts != 5 || calls != 5 {
		t.Fatalf("%d attempts reported, %d calls made; want 5", res.Attempts, calls)
	}
	delays := rec.all()
	if len(delays) != 4 {
		t.Fatalf("waited %d times, want 4 (between 5 attempts)", len(delays))
	}
	for i, d := range delays {
		if ceil := min(p.InitialBackoff<<i, p.MaxBackoff); d < ceil/2 || d > ceil {
			t.Errorf("wait %d was %v, want between %v and %v", i, d, ceil/2, ceil)
		}
	}
}

func TestRetryStopsAtOnceOnPermanentErrors(t *testing.T) {
	ctx := testContext(t)
	for _, code := range []codes.Code{codes.PermissionDenied, codes.InvalidArgument, codes.Internal, codes.ResourceExhausted} {
		t.Run(code.String(), func(t *testing.T) {
			faults := new(servicetest.Faults)
			faults.Fail(pb.Greeter_DownloadFile_FullMethodName, -1, status.Error(code, "no"))
			srv := servicetest.Start(t, servicetest.Config{Stream: []grpc.StreamServerInterceptor{faults.Stream}})
			c, rec := dial(t, srv, Options{}, nil)
			res, err := c.DownloadFile(ctx, "x.bin", t.TempDir()+"/x.bin", nil)
			calls := faults.Calls(pb.Greeter_DownloadFile_FullMethodName)
			if status.Code(err) != code || res.Attempts != 1 || calls != 1 || len(rec.all()) != 0 {
				t.Fatalf("DownloadFile: %v after %d attempts, %d calls, %d waits; want %v after 1, 1, 0", err, res.Attempts, calls, len(rec.all()), code)
			}
		})
	}
}

// TestRetryHonoursRetryInfo: rate-limit rejections wait what the server
// says and do not use up attempts.
func TestRetryHonoursRetryInfo(t *testing.T) {
	ctx := testContext(t)
	exhausted := ratelimit.Exhausted(context.Background(), "transfer rate limit exceeded", 2*time.Second)
	faults := new(servicetest.Faults)
	faults.Fail(pb.Greeter_UploadFile_FullMethodName, 3, exhausted)
	srv := servicetest.Start(t, servicetest.Config{Stream: []grpc.StreamServerInterceptor{faults.Stream}})
	c, rec := dial(t, srv, Options{Retry: RetryPolicy{MaxAttempts: 2}}, nil)
	path, data := randomFile(t, 1000)

	res, err := c.UploadFile(ctx, path, "r.bin", nil)
	if err != nil {
		t.Fatalf("UploadFile through 3 rate-limit rejections with MaxAttempts 2: %v", err)
	}
	if res.Attempts != 4 {
		t.Errorf("UploadFile made %d attempts, want 4", res.Attempts)
	}
	delays := rec.all()
	if len(delays) != 3 {
		t.Fatalf("waited %d times, want 3", len(delays))
	}
	for _, d := range delays {
		if d < 2*time.Second || d > 2200*time.Millisecond {
			t.Errorf("waited %v after RetryInfo of 2s, want 2s plus at most 10%%", d)
		}
	}
	wantStored(t, ctx, c, "r.bin", data)

	// A delay beyond MaxRetryDelay is not honoured.
	faults.Fail(pb.Greeter_UploadFile_FullMethodName, 3, exhausted)
	c2, rec2 := dial(t, srv, Options{Retry: RetryPolicy{MaxRetryDelay: time.Second}}, nil)
	res, err = c2.UploadFile(ctx, path, "r.bin", nil)
	if status.Code(err) != codes.ResourceExhausted || res.Attempts != 1 || len(rec2.all()) != 0 {
		t.Fatalf("UploadFile asked to wait past MaxRetryDelay: %v after %d attempts and %d waits, want ResourceExhausted at once", err, res.Attempts, len(rec2.all()))
	}
}

// TestRetryResetsOnProgress: attempts that move the transfer forward do
// not use up the budget of failures in a row.
func TestRetryResetsOnProgress(t *testing.T) {
	ctx := testContext(t)
	const size = 6 * mib
	srv, _, data := startWithFile(t, ctx, servicetest.Config{Options: cutChunks}, "p.bin", size)
	// Five cuts, two attempts allowed in a row without progress: every
	// attempt gets further, so the download finishes.
	cut := &cutter{budgets: []int64{mib, mib, mib, mib, mib}}
	c, rec := dial(t, srv, Options{Retry: RetryPolicy{MaxAttempts: 2, InitialBackoff: time.Millisecond, MaxBackoff: time.Second}}, cut)
	dst := t.TempDir() + "/p.bin"
	res, err := c.DownloadFile(ctx, "p.bin", dst, nil)
	if err != nil {
		t.Fatalf("DownloadFile: %v", err)
	}
	if res.Attempts != 6 {
		t.Errorf("DownloadFile made %d attempts, want 6 (5 cuts)", res.Attempts)
	}
	for _, d := range rec.all() {
		if d > time.Millisecond {
			t.Errorf("waited %v after an attempt that made progress, want the initial backoff", d)
		}
	}
	wantFile(t, dst, data)
}

func TestRetryStopsWhenContextEnds(t *testing.T) {
	faults := new(servicetest.Faults)
	faults.Fail(pb.Greeter_UploadFile_FullMethodName, -1, status.Error(codes.Unavailable, "down"))
	srv := servicetest.Start(t, servicetest.Config{Stream: []grpc.StreamServerInterceptor{faults.Stream}})
	c, _ := dial(t, srv, Options{}, nil)
	ctx, cancel := context.WithCancel(testContext(t))
	c.sleep = func(context.Context, time.Duration) error {
		cancel()
		return context.Canceled
	}
	path, _ := randomFile(t, 10)
	res, err := c.UploadFile(ctx, path, "c.bin", nil)
	if status.Code(err) != codes.Canceled || res.Attempts != 1 {
		t.Fatalf("UploadFile canceled while waiting to retry: %v after %d attempts, want Canceled after 1", err, res.Attempts)
	}
}
