// Package recovery turns a panic anywhere below it in the middleware chain
// (in a later plugin, a message hook or the handler, unary or streaming) into
// the status Internal "internal error", so the server keeps serving.
//
// Message hooks (middleware.Call.OnRecv and OnSend) may run on goroutines
// that a handler starts, such as the service's upload receiver and download
// sender, where no interceptor can recover. The middleware package recovers
// them where they run and hands the panic to this plugin through the
// context (middleware.NewPanicContext): it is logged here like any other,
// with the stack of the goroutine that panicked, and the RecvMsg or SendMsg
// that ran the hook fails with Internal "internal error", which the handler
// returns, so the RPC ends with that status and the handler cleans up as
// after any stream error (an upload in flight is discarded).
//
// The panic value and the stack never reach the client. The stack is logged
// at ERROR with the method, the caller's identity key (if authenticated by
// then) and the trace id. Only the panic value's type is logged, plus its
// message when it is a runtime error, because panic values built by code may
// carry secrets.
//
// It uses go-grpc-middleware's recovery interceptors with
// WithRecoveryHandlerContext: without that option they would send the stack to
// the client. Place the plugin before every other plugin with interceptors
// (only plugins that supply server options may precede it, as
// standard.Config.Outer does); a panic in an interceptor that runs before it
// is not recovered.
//
// Other panics in goroutines that a handler starts cannot be recovered by
// any interceptor; such goroutines must recover on their own.
package recovery

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"runtime/debug"

	grpcrecovery "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/greeter/greeter/identity"
	"github.com/greeter/greeter/middleware"
)

// Name is the plugin's name in a chain.
const Name = "recovery"

// ErrInternal is the error a client receives for a recovered panic.
var ErrInternal = status.Error(codes.Internal, "internal error")

// Options configure the plugin. The zero value is usable.
type Options struct {
	// Logger receives one ERROR record per panic. Nil discards them.
	Logger *slog.Logger
	// OnPanic, if set, is called after each recovered panic with the RPC's
	// context and method, for example to count panics; record metrics with
	// ctx so they carry the RPC's trace.
	OnPanic func(ctx context.Context, fullMethod string)
}

// New returns the recovery plugin.
func New(o Options) middleware.Plugin {
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	report := func(ctx context.Context, p any, stack []byte) {
		method, _ := grpc.Method(ctx)
		attrs := []slog.Attr{
			slog.String("method", method),
			slog.String("panic_type", fmt.Sprintf("%T", p)),
		}
		if re, ok := p.(runtime.Error); ok {
			attrs = append(attrs, slog.String("panic", re.Error()))
		}
		if id, ok := identity.Observed(ctx); ok {
			attrs = append(attrs, slog.String("identity", id.Key()))
		}
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			attrs = append(attrs, slog.String("trace_id", sc.TraceID().String()))
		}
		attrs = append(attrs, slog.String("stack", string(stack)))
		logger.LogAttrs(ctx, slog.LevelError, "panic recovered", attrs...)
		if o.OnPanic != nil {
			o.OnPanic(ctx, method)
		}
	}
	opt := grpcrecovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		report(ctx, p, debug.Stack())
		return ErrInternal
	})
	unary := grpcrecovery.UnaryServerInterceptor(opt)
	stream := grpcrecovery.StreamServerInterceptor(opt)
	// The observer lets the handler report the identity that a later plugin
	// (auth) established; the panic handler receives the panics of message
	// hooks, which the middleware package recovers where they run.
	prepare := func(ctx context.Context) context.Context {
		return middleware.NewPanicContext(identity.WithObserver(ctx), report)
	}
	return middleware.Plugin{
		Name: Name,
		Unary: func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			return unary(prepare(ctx), req, info, h)
		},
		Stream: func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			return stream(srv, &observedStream{ServerStream: ss, ctx: prepare(ss.Context())}, info, h)
		},
	}
}

// observedStream gives the stream a context carrying an identity observer
// and the panic handler.
type observedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *observedStream) Context() context.Context { return s.ctx }
