package client_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/greeter/greeter/client"
	"github.com/greeter/greeter/middleware/ratelimit"
	pb "github.com/greeter/greeter/proto/greeterpb"
)

func TestWithDefaultTimeout(t *testing.T) {
	tests := []struct {
		name         string
		callerBudget time.Duration // 0: no deadline
		want         time.Duration
	}{
		{"no deadline gets the default", 0, 3 * time.Second},
		{"caller deadline is kept", time.Hour, time.Hour},
		{"shorter caller deadline is kept", time.Second, time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				if tc.callerBudget > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tc.callerBudget)
					defer cancel()
				}
				var got time.Duration
				invoker := func(ctx context.Context, _ string, _, _ any, _ *grpc.ClientConn, _ ...grpc.CallOption) error {
					d, ok := ctx.Deadline()
					if !ok {
						return errors.New("no deadline")
					}
					got = time.Until(d)
					return nil
				}
				if err := client.WithDefaultTimeout(3*time.Second)(ctx, pb.Greeter_SayHello_FullMethodName, nil, nil, nil, invoker); err != nil {
					t.Fatalf("interceptor: %v", err)
				}
				if got != tc.want {
					t.Errorf("deadline: got %v from now, want %v", got, tc.want)
				}
			})
		})
	}
}

// flaky fails each method with a scripted list of errors, then succeeds.
type flaky struct {
	echoServer
	mu       sync.Mutex
	script   map[string][]error
	attempts map[string]int
}

func (f *flaky) next(method string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts[method]++
	if errs := f.script[method]; len(errs) > 0 {
		f.script[method] = errs[1:]
		return errs[0]
	}
	return nil
}

func (f *flaky) count(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attempts[method]
}

func (f *flaky) SayHello(ctx context.Context, r *pb.HelloRequest) (*pb.StringResponse, error) {
	if err := f.next("SayHello"); err != nil {
		return nil, err
	}
	return f.echoServer.SayHello(ctx, r)
}

func (f *flaky) StatFile(ctx context.Context, m *pb.MetaData) (*pb.FileInfo, error) {
	if err := f.next("StatFile"); err != nil {
		return nil, err
	}
	return f.echoServer.StatFile(ctx, m)
}

func (f *flaky) DeleteFile(ctx context.Context, m *pb.MetaData) (*pb.StringResponse, error) {
	if err := f.next("DeleteFile"); err != nil {
		return nil, err
	}
	return f.echoServer.DeleteFile(ctx, m)
}

func (f *flaky) UploadFile(s grpc.ClientStreamingServer[pb.UploadFileRequest, pb.StringResponse]) error {
	if err := f.next("UploadFile"); err != nil {
		return err
	}
	return f.echoServer.UploadFile(s)
}

func TestRetry(t *testing.T) {
	unavailable := status.Error(codes.Unavailable, "try again")
	exhausted := func(delay time.Duration) error {
		return ratelimit.Exhausted(context.Background(), "rate limit exceeded", delay)
	}
	tests := []struct {
		name         string
		method       string
		script       []error
		budget       time.Duration
		wantCode     codes.Code
		wantAttempts int
		minWait      time.Duration
		maxWait      time.Duration
	}{
		{"Unavailable twice, then OK", "SayHello", []error{unavailable, unavailable}, time.Minute, codes.OK, 3, 100 * time.Millisecond, 300 * time.Millisecond},
		{"always Unavailable", "StatFile", []error{unavailable, unavailable, unavailable, unavailable, unavailable}, time.Minute, codes.Unavailable, 4, 350 * time.Millisecond, 700 * time.Millisecond},
		{"RetryInfo is honoured", "SayHello", []error{exhausted(2 * time.Second)}, time.Minute, codes.OK, 2, 2 * time.Second, 2200 * time.Millisecond},
		{"ResourceExhausted without RetryInfo", "SayHello", []error{status.Error(codes.ResourceExhausted, "quota")}, time.Minute, codes.ResourceExhausted, 1, 0, 0},
		{"RetryInfo over the maximum", "SayHello", []error{exhausted(time.Minute)}, 5 * time.Minute, codes.ResourceExhausted, 1, 0, 0},
		{"RetryInfo past the deadline", "SayHello", []error{exhausted(2 * time.Second)}, time.Second, codes.ResourceExhausted, 1, 0, 0},
		{"not retryable code", "StatFile", []error{status.Error(codes.InvalidArgument, "bad")}, time.Minute, codes.InvalidArgument, 1, 0, 0},
		{"DeleteFile is never retried", "DeleteFile", []error{unavailable}, time.Minute, codes.Unavailable, 1, 0, 0},
		{"UploadFile is never retried", "UploadFile", []error{unavailable}, time.Minute, codes.Unavailable, 1, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				svc := &flaky{script: map[string][]error{tc.method: tc.script}, attempts: map[string]int{}}
				cc := startGreeter(t, svc, nil, client.DialOptions(client.DialConfig{})...)
				c := pb.NewGreeterClient(cc)
				ctx, cancel := context.WithTimeout(context.Background(), tc.budget)
				defer cancel()
				start := time.Now()
				var err error
				switch tc.method {
				case "SayHello":
					_, err = c.SayHello(ctx, &pb.HelloRequest{})
				case "StatFile":
					_, err = c.StatFile(ctx, &pb.MetaData{})
				case "DeleteFile":
					_, err = c.DeleteFile(ctx, &pb.MetaData{})
				case "UploadFile":
					var s grpc.ClientStreamingClient[pb.UploadFileRequest, pb.StringResponse]
					if s, err = c.UploadFile(ctx); err == nil {
						if err = s.Send(&pb.UploadFileRequest{}); err == nil || errors.Is(err, io.EOF) {
							_, err = s.CloseAndRecv()
						}
					}
				}
				waited := time.Since(start)
				if got := status.Code(err); got != tc.wantCode {
					t.Errorf("code: got %v (%v), want %v", got, err, tc.wantCode)
				}
				if got := svc.count(tc.method); got != tc.wantAttempts {
					t.Errorf("attempts: got %d, want %d", got, tc.wantAttempts)
				}
				if waited < tc.minWait || waited > tc.maxWait {
					t.Errorf("waited %v, want between %v and %v", waited, tc.minWait, tc.maxWait)
				}
			})
		})
	}
}

func TestIdempotentMethods(t *testing.T) {
	got := strings.Join(client.DefaultUnaryRetryPolicy().Methods, " ")
	for _, never := range []string{"UploadFile", "DeleteFile", "DownloadFile"} {
		if strings.Contains(got, never) {
			t.Errorf("DefaultUnaryRetryPolicy().Methods = %q, must not contain %s", got, never)
		}
	}
}
