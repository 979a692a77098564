// Package client provides the client-side middleware for greeter clients
// (the CLI and Go services): bearer-token credentials that refuse plaintext,
// a default deadline for unary calls, and retries of idempotent calls only.
//
// Retries: grpc-go's own service-config retryPolicy handles Unavailable and
// honours the "grpc-retry-pushback-ms" trailer, but it cannot restrict
// ResourceExhausted retries to responses that carry errdetails.RetryInfo,
// and a resolver-supplied service config can replace it. go-grpc-middleware's
// retry interceptor computes its backoff without seeing the error, so it
// cannot honour RetryInfo either. Retry is therefore a small loop here: it
// retries only the methods listed in RetryOptions.Methods (by default
// SayHello, StatFile, ListFiles and QueryUpload; never UploadFile or
// DeleteFile), only on Unavailable or on ResourceExhausted carrying
// RetryInfo, with bounded attempts, exponential backoff with jitter, and the
// server's RetryInfo delay when given.
package client

import (
	"context"
	"math/rand/v2"
	"slices"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// Defaults applied to zero fields of Options and RetryOptions.
const (
	DefaultTimeout        = 30 * time.Second
	DefaultMaxAttempts    = 4
	DefaultInitialBackoff = 100 * time.Millisecond
	DefaultMaxBackoff     = 5 * time.Second
	DefaultMaxRetryDelay  = 30 * time.Second
)

// IdempotentMethods returns the Greeter methods that are safe to retry.
func IdempotentMethods() []string {
	return []string{"/Greeter/SayHello", "/Greeter/StatFile", "/Greeter/ListFiles", "/Greeter/QueryUpload"}
}

// tokenCredentials sends a bearer token with every RPC.
type tokenCredentials struct {
	token func(ctx context.Context) (string, error)
}

// BearerToken returns credentials that send "authorization: Bearer token"
// with every RPC. They require transport security: a connection without
// TLS fails every RPC instead of sending the token in the clear.
func BearerToken(token string) credentials.PerRPCCredentials {
	return tokenCredentials{token: func(context.Context) (string, error) { return token, nil }}
}

// TokenSource is BearerToken with a token obtained for each RPC, for
// example from a refreshing cache. An error from source fails the RPC; it
// should be a status error (Unauthenticated).
func TokenSource(source func(ctx context.Context) (string, error)) credentials.PerRPCCredentials {
	return tokenCredentials{token: source}
}

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (c tokenCredentials) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	tok, err := c.token(ctx)
	if err != nil {
		return nil, err
	}
	if tok == "" {
		return nil, status.Error(codes.Unauthenticated, "no bearer token configured")
	}
	return map[string]string{"authorization": "Bearer " + tok}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials. It is
// always true.
func (tokenCredentials) RequireTransportSecurity() bool { return true }

// WithDefaultTimeout returns a unary interceptor that gives a call a
// deadline of d when the caller's context has none. Streaming calls (file
// transfers) are left alone: their length depends on the file.
func WithDefaultTimeout(d time.Duration) grpc.UnaryClientInterceptor {
	if d <= 0 {
		d = DefaultTimeout
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

// RetryOptions configure Retry. Zero fields take the defaults.
type RetryOptions struct {
	// MaxAttempts bounds the attempts per call, the first included.
	// Default 4; 1 disables retries.
	MaxAttempts int
	// InitialBackoff is the base delay before the first retry; it doubles
	// per retry, up to MaxBackoff, and each delay is jittered between half
	// and all of it. Defaults 100 ms and 5 s.
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	// MaxRetryDelay is the longest RetryInfo delay honoured; a server asking
	// for longer gets its error returned. Default 30 s.
	MaxRetryDelay time.Duration
	// Methods lists the full method names to retry. Nil means
	// IdempotentMethods.
	Methods []string
}

// Retry returns a unary interceptor that retries idempotent calls; see the
// package documentation. A retry never waits past the call's deadline.
func Retry(o RetryOptions) grpc.UnaryClientInterceptor {
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.InitialBackoff <= 0 {
		o.InitialBackoff = DefaultInitialBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.MaxRetryDelay <= 0 {
		o.MaxRetryDelay = DefaultMaxRetryDelay
	}
	methods := slices.Clone(o.Methods)
	if methods == nil {
		methods = IdempotentMethods()
	}
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if !slices.Contains(methods, method) {
			return invoker(ctx, method, req, reply, cc, opts...)
		}
		backoff := o.InitialBackoff
		for attempt := 1; ; attempt++ {
			err := invoker(ctx, method, req, reply, cc, opts...)
			if err == nil || attempt >= o.MaxAttempts || ctx.Err() != nil {
				return err
			}
			delay, ok := retryDelay(err, backoff, o.MaxRetryDelay)
			if !ok {
				return err
			}
			backoff = min(2*backoff, o.MaxBackoff)
			if deadline, has := ctx.Deadline(); has && time.Until(deadline) < delay {
				return err
			}
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return err
			case <-t.C:
			}
		}
	}
}

// retryDelay reports whether err may be retried and after how long.
func retryDelay(err error, backoff, maxDelay time.Duration) (time.Duration, bool) {
	st := status.Convert(err)
	switch st.Code() {
	case codes.Unavailable:
		return jitter(backoff), true
	case codes.ResourceExhausted:
		for _, d := range st.Details() {
			if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay() != nil {
				delay := ri.GetRetryDelay().AsDuration()
				if delay < 0 || delay > maxDelay {
					return 0, false
				}
				// Up to 10% extra so that throttled clients do not return
				// in lockstep.
				return delay + rand.N(delay/10+1), true
			}
		}
	}
	return 0, false
}

// jitter returns a delay between d/2 and d.
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

// Options configure DialOptions.
type Options struct {
	// Token, if set, is sent as a bearer token (TLS required).
	Token string
	// Timeout is the default deadline of unary calls. Default 30 s.
	Timeout time.Duration
	// Retry configures retries of idempotent calls.
	Retry RetryOptions
}

// DialOptions returns the client options greeter clients use: bearer-token
// credentials when o.Token is set, then the default-deadline and retry
// interceptors (the deadline covers all attempts). Transport credentials are
// the caller's.
func DialOptions(o Options) []grpc.DialOption {
	opts := []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(WithDefaultTimeout(o.Timeout), Retry(o.Retry)),
	}
	if o.Token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(BearerToken(o.Token)))
	}
	return opts
}
