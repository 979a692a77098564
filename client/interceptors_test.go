package client_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/greeter/greeter/client"
	"github.com/greeter/greeter/middleware/ratelimit"
	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/service/servicetest"
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

func TestRetry(t *testing.T) {
	unavailable := status.Error(codes.Unavailable, "try again")
	exhausted := func(delay time.Duration) error {
		return ratelimit.Exhausted(context.Background(), "rate limit exceeded", delay)
	}
	const (
		sayHello   = pb.Greeter_SayHello_FullMethodName
		statFile   = pb.Greeter_StatFile_FullMethodName
		deleteFile = pb.Greeter_DeleteFile_FullMethodName
		uploadFile = pb.Greeter_UploadFile_FullMethodName
	)
	tests := []struct {
		name         string
		method       string
		fails        int // the first calls of method that fail with err
		err          error
		budget       time.Duration
		wantCode     codes.Code
		wantAttempts int
		minWait      time.Duration
		maxWait      time.Duration
	}{
		{"Unavailable twice, then OK", sayHello, 2, unavailable, time.Minute, codes.OK, 3, 100 * time.Millisecond, 300 * time.Millisecond},
		{"always Unavailable", statFile, 5, unavailable, time.Minute, codes.Unavailable, 4, 350 * time.Millisecond, 700 * time.Millisecond},
		{"RetryInfo is honoured", sayHello, 1, exhausted(2 * time.Second), time.Minute, codes.OK, 2, 2 * time.Second, 2200 * time.Millisecond},
		{"ResourceExhausted without RetryInfo", sayHello, 1, status.Error(codes.ResourceExhausted, "quota"), time.Minute, codes.ResourceExhausted, 1, 0, 0},
		{"RetryInfo over the maximum", sayHello, 1, exhausted(time.Minute), 5 * time.Minute, codes.ResourceExhausted, 1, 0, 0},
		{"RetryInfo past the deadline", sayHello, 1, exhausted(2 * time.Second), time.Second, codes.ResourceExhausted, 1, 0, 0},
		{"not retryable code", statFile, 1, status.Error(codes.InvalidArgument, "bad"), time.Minute, codes.InvalidArgument, 1, 0, 0},
		{"DeleteFile is never retried", deleteFile, 1, unavailable, time.Minute, codes.Unavailable, 1, 0, 0},
		{"UploadFile is never retried", uploadFile, 1, unavailable, time.Minute, codes.Unavailable, 1, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				faults := new(servicetest.Faults)
				faults.Fail(tc.method, tc.fails, tc.err)
				srv := servicetest.Start(t, servicetest.Config{
					Unary:  []grpc.UnaryServerInterceptor{faults.Unary},
					Stream: []grpc.StreamServerInterceptor{faults.Stream},
				})
				cc, err := srv.NewConn(client.DialOptions(client.DialConfig{})...)
				if err != nil {
					t.Fatal(err)
				}
				defer cc.Close()
				c := pb.NewGreeterClient(cc)
				ctx, cancel := context.WithTimeout(context.Background(), tc.budget)
				defer cancel()
				start := time.Now()
				file := &pb.MetaData{Filename: "f"}
				switch tc.method {
				case sayHello:
					_, err = c.SayHello(ctx, &pb.HelloRequest{Name: "x"})
				case statFile:
					_, err = c.StatFile(ctx, file)
				case deleteFile:
					_, err = c.DeleteFile(ctx, file)
				case uploadFile:
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
				if got := faults.Calls(tc.method); got != tc.wantAttempts {
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
