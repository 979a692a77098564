package middleware

import (
	"context"
	"errors"
	"runtime/debug"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// errInternal is what a client sees when a plugin fails with an error that is
// neither a status error nor a context error.
var errInternal = status.Error(codes.Internal, "internal error")

// Context errors from a plugin, with fixed messages.
var (
	errDeadline = status.Error(codes.DeadlineExceeded, context.DeadlineExceeded.Error())
	errCanceled = status.Error(codes.Canceled, context.Canceled.Error())
)

// errNextTwice is returned when a Func calls next more than once.
var errNextTwice = status.Error(codes.Internal, "internal error")

// Plugin is one middleware layer. It supplies both interceptor kinds and,
// when needed, server options such as grpc.Creds or grpc.StatsHandler, so
// that every option a server needs reaches it through the chain. A nil
// interceptor means the plugin does nothing for that kind of RPC.
type Plugin struct {
	// Name identifies the plugin in Chain.Names and in documentation.
	Name string
	// Unary intercepts unary RPCs.
	Unary grpc.UnaryServerInterceptor
	// Stream intercepts streaming RPCs.
	Stream grpc.StreamServerInterceptor
	// ServerOptions are added to the server as they are. They apply to every
	// method: Only and Skip do not restrict them.
	ServerOptions []grpc.ServerOption
}

// Next continues an RPC with the rest of the chain and the handler. The
// handler sees ctx: as the unary handler's context, or as the stream's
// Context. It returns the error of the rest of the chain.
type Next func(ctx context.Context) error

// Func is the logic of a plugin, written once for unary and streaming RPCs.
// It is given the incoming context, a description of the call, and next,
// which it calls at most once to continue the RPC. It returns next's error,
// or its own status error to reject the RPC.
type Func func(ctx context.Context, call *Call, next Next) error

// MessageHook observes one message of an RPC, given the context the Func
// passed to next. Returning an error fails the RecvMsg or SendMsg call (for a
// unary RPC, the call itself) with that error, which should be a status
// error.
//
// A hook runs on whichever goroutine receives or sends the message, which
// for a streaming RPC may be one the handler started, where no interceptor
// can recover a panic. So a panicking hook is recovered where it runs: the
// panic value and the stack go to the PanicHandler in the context (the
// recovery plugin puts its own there) and the RecvMsg or SendMsg call fails
// with Internal "internal error", which the handler returns like any other
// stream error. Without a PanicHandler the panic continues, as a handler's
// would without the recovery plugin.
type MessageHook func(ctx context.Context, msg any) error

// PanicHandler receives a panic that a message hook raised: the hook's
// context, the panic value and the stack of the goroutine it panicked on.
// It must not send either to the client.
type PanicHandler func(ctx context.Context, p any, stack []byte)

type panicHandlerKey struct{}

// NewPanicContext returns a copy of ctx carrying h, which receives the
// panics of message hooks run with ctx or a context derived from it.
func NewPanicContext(ctx context.Context, h PanicHandler) context.Context {
	return context.WithValue(ctx, panicHandlerKey{}, h)
}

// PanicHandlerFromContext returns the PanicHandler that NewPanicContext put
// into ctx, if any.
func PanicHandlerFromContext(ctx context.Context) (PanicHandler, bool) {
	h, ok := ctx.Value(panicHandlerKey{}).(PanicHandler)
	return h, ok && h != nil
}

// Call describes the RPC a Func runs around. A Call belongs to one Func
// invocation and must not be retained after it returns.
type Call struct {
	// FullMethod is the method exactly as gRPC routed it, for example
	// "/Greeter/UploadFile".
	FullMethod string
	// IsClientStream reports whether the client sends a stream of messages.
	IsClientStream bool
	// IsServerStream reports whether the server sends a stream of messages.
	IsServerStream bool

	onRecv []MessageHook
	onSend []MessageHook
}

// IsStream reports whether the RPC is a streaming RPC of any kind.
func (c *Call) IsStream() bool { return c.IsClientStream || c.IsServerStream }

// OnRecv registers h to run after each message the server receives, before
// the handler sees it. For a unary RPC it runs once, on the request, before
// the handler is called. Register hooks before calling next.
func (c *Call) OnRecv(h MessageHook) { c.onRecv = append(c.onRecv, h) }

// OnSend registers h to run before each message the server sends. For a
// unary RPC it runs once, on the response, after the handler returned
// successfully. Register hooks before calling next.
func (c *Call) OnSend(h MessageHook) { c.onSend = append(c.onSend, h) }

// FromFunc returns a Plugin named name whose unary and stream interceptors
// both run f.
func FromFunc(name string, f Func) Plugin {
	return Plugin{Name: name, Unary: unaryFromFunc(f), Stream: streamFromFunc(f)}
}

func unaryFromFunc(f Func) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		call := &Call{FullMethod: info.FullMethod}
		var (
			resp    any
			called  bool
			nextErr error
		)
		next := func(ctx context.Context) error {
			if called {
				return errNextTwice
			}
			called = true
			if err := runHooks(ctx, call.onRecv, req); err != nil {
				nextErr = err
				return err
			}
			r, err := handler(ctx, req)
			if err == nil {
				err = runHooks(ctx, call.onSend, r)
			}
			if err != nil {
				nextErr = err
				return err
			}
			resp = r
			return nil
		}
		err := f(ctx, call, next)
		if err != nil {
			return nil, normalize(err, called, nextErr)
		}
		if !called {
			// The Func neither rejected nor continued the RPC.
			return nil, errInternal
		}
		if nextErr != nil {
			// The Func swallowed an error; there is no response to send.
			return nil, nextErr
		}
		return resp, nil
	}
}

func streamFromFunc(f Func) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		call := &Call{
			FullMethod:     info.FullMethod,
			IsClientStream: info.IsClientStream,
			IsServerStream: info.IsServerStream,
		}
		var (
			called  bool
			nextErr error
		)
		next := func(ctx context.Context) error {
			if called {
				return errNextTwice
			}
			called = true
			s := ss
			if ctx != ss.Context() || len(call.onRecv) > 0 || len(call.onSend) > 0 {
				s = &hookedStream{ServerStream: ss, ctx: ctx, onRecv: call.onRecv, onSend: call.onSend}
			}
			nextErr = handler(srv, s)
			return nextErr
		}
		err := f(ss.Context(), call, next)
		if err != nil {
			return normalize(err, called, nextErr)
		}
		if !called {
			return errInternal
		}
		return nil
	}
}

// generated returns the generated message a wrapper message holds (the
// zero-copy codec in proto/wire/codec receives chunks into wrappers), so
// that hooks see *greeterpb.UploadFileRequest and *greeterpb.FileResponse
// as they were written for; any other message is returned as it is.
func generated(m any) any {
	if w, ok := m.(interface{ Generated() proto.Message }); ok {
		return w.Generated()
	}
	return m
}

// hookedStream gives the handler the Func's context and runs the message
// hooks around RecvMsg and SendMsg.
type hookedStream struct {
	grpc.ServerStream
	ctx    context.Context
	onRecv []MessageHook
	onSend []MessageHook
}

func (s *hookedStream) Context() context.Context { return s.ctx }

func (s *hookedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if err := runHooks(s.ctx, s.onRecv, generated(m)); err != nil {
		return normalize(err, false, nil)
	}
	return nil
}

func (s *hookedStream) SendMsg(m any) error {
	if err := runHooks(s.ctx, s.onSend, generated(m)); err != nil {
		return normalize(err, false, nil)
	}
	return s.ServerStream.SendMsg(m)
}

func runHooks(ctx context.Context, hooks []MessageHook, m any) error {
	for _, h := range hooks {
		if err := runHook(ctx, h, m); err != nil {
			return err
		}
	}
	return nil
}

// runHook runs h on m, normalizing its error. A panic in h is handed to
// the context's PanicHandler, with the stack of the panicking goroutine, and
// becomes errInternal; without a handler it continues.
func runHook(ctx context.Context, h MessageHook, m any) (err error) {
	defer func() {
		p := recover()
		if p == nil {
			return
		}
		handle, ok := PanicHandlerFromContext(ctx)
		if !ok {
			panic(p)
		}
		handle(ctx, p, debug.Stack())
		err = errInternal
	}()
	if err := h(ctx, m); err != nil {
		return normalize(err, false, nil)
	}
	return nil
}

// normalize turns a plugin's own error into a status error. Errors that came
// from next are returned unchanged.
func normalize(err error, called bool, nextErr error) error {
	if called && nextErr != nil && errors.Is(err, nextErr) {
		return err
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return errDeadline
	case errors.Is(err, context.Canceled):
		return errCanceled
	}
	return errInternal
}
