package client

import (
	"context"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// DefaultCallTimeout is the deadline WithDefaultTimeout gives a unary call
// when it is passed 0, and so the deadline of the unary calls of a Client
// (including those a transfer makes) when Options.CallTimeout is 0.
const DefaultCallTimeout = 30 * time.Second

// DialConfig configures DialOptions.
type DialConfig struct {
	// Token, if set, is sent as a bearer token (TLS required).
	Token string
	// Timeout is the default deadline of unary calls. Default
	// DefaultCallTimeout.
	Timeout time.Duration
	// Retry configures retries of idempotent unary calls.
	Retry UnaryRetryPolicy
}

// DialOptions returns the client options greeter clients use: bearer-token
// credentials when c.Token is set, then the default-deadline and retry
// interceptors (the deadline covers all attempts). Transport credentials are
// the caller's.
func DialOptions(c DialConfig) []grpc.DialOption {
	opts := []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(WithDefaultTimeout(c.Timeout), UnaryRetry(c.Retry)),
	}
	if c.Token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(BearerToken(c.Token)))
	}
	return opts
}

// WithDefaultTimeout returns a unary interceptor that gives a call a
// deadline of d (DefaultCallTimeout when d is 0) when the caller's context
// has none. Streaming calls (file transfers) are left alone: their length
// depends on the file.
func WithDefaultTimeout(d time.Duration) grpc.UnaryClientInterceptor {
	if d <= 0 {
		d = DefaultCallTimeout
	}
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d)
			defer cancel()
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

// UnaryRetry returns a unary interceptor that retries the calls of the
// methods p lists, with bounded attempts, the backoff of p, and the
// server's RetryInfo delay when given (see UnaryRetryPolicy). A retry never
// waits past the call's deadline.
func UnaryRetry(p UnaryRetryPolicy) grpc.UnaryClientInterceptor {
	p = p.withDefaults()
	methods := slices.Clone(p.Methods)
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if !slices.Contains(methods, method) {
			return invoker(ctx, method, req, reply, cc, opts...)
		}
		for attempt := 1; ; attempt++ {
			err := invoker(ctx, method, req, reply, cc, opts...)
			if err == nil || attempt >= p.MaxAttempts || ctx.Err() != nil {
				return err
			}
			delay, ok := p.delay(err, attempt)
			if !ok {
				return err
			}
			if deadline, has := ctx.Deadline(); has && time.Until(deadline) < delay {
				return err
			}
			if sleep(ctx, delay) != nil {
				return err
			}
		}
	}
}

// delay reports whether a call whose attempt-th attempt failed with err may
// be retried, and after how long.
func (p UnaryRetryPolicy) delay(err error, attempt int) (time.Duration, bool) {
	if status.Code(err) == codes.Unavailable {
		return backoff(p.InitialBackoff, p.MaxBackoff, attempt), true
	}
	if d, ok := retryDelay(err); ok && d <= p.MaxRetryDelay {
		return throttleDelay(d), true
	}
	return 0, false
}
