package servicetest

import (
	"context"
	"sync"

	"google.golang.org/grpc"
)

// Faults fails the calls of chosen methods with chosen errors before they
// reach the service, and counts the calls of every method. A test installs
// it with Config.Unary and Config.Stream:
//
//	f := new(servicetest.Faults)
//	f.Fail(pb.Greeter_UploadFile_FullMethodName, 2, status.Error(codes.Unavailable, "down"))
//	s := servicetest.Start(t, servicetest.Config{
//		Unary:  []grpc.UnaryServerInterceptor{f.Unary},
//		Stream: []grpc.StreamServerInterceptor{f.Stream},
//	})
//
// The zero Faults fails nothing. It is safe for concurrent use.
type Faults struct {
	mu    sync.Mutex
	fails map[string]fault
	calls map[string]int
}

// fault is what Fail said of a method: err, for left more calls (every
// call if left is negative).
type fault struct {
	left int
	err  error
}

// Fail makes the next n calls of method fail with err, or every later call
// if n is negative. It replaces what an earlier Fail said of method; n = 0
// lets the calls through again.
func (f *Faults) Fail(method string, n int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fails == nil {
		f.fails = map[string]fault{}
	}
	f.fails[method] = fault{left: n, err: err}
}

// Calls returns how many calls of method reached f, failed or not.
func (f *Faults) Calls(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method]
}

// check counts a call of method and returns the error it fails with, or
// nil.
func (f *Faults) check(method string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[method]++
	ft := f.fails[method]
	if ft.left == 0 {
		return nil
	}
	if ft.left > 0 {
		ft.left--
		f.fails[method] = ft
	}
	return ft.err
}

// Unary is f as a unary interceptor.
func (f *Faults) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	if err := f.check(info.FullMethod); err != nil {
		return nil, err
	}
	return next(ctx, req)
}

// Stream is f as a stream interceptor.
func (f *Faults) Stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, next grpc.StreamHandler) error {
	if err := f.check(info.FullMethod); err != nil {
		return err
	}
	return next(srv, ss)
}

// Answer returns a unary interceptor that answers the calls of method with
// answer instead of the service, and lets the calls of other methods
// through: for tests of a client against answers the service would not
// give, such as page tokens that never end.
func Answer(method string, answer func(ctx context.Context, req any) (any, error)) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
		if info.FullMethod != method {
			return next(ctx, req)
		}
		return answer(ctx, req)
	}
}
