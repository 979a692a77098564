// Package logging writes one structured log record per RPC.
//
// Each record carries the method, status code, duration, payload bytes
// received and sent (proto.Size of every message), the peer address, the
// caller's typed identity key ("identity", identity.Identity.Key, as
// established by a later authentication plugin) and the trace id. A record is written for RPCs rejected by later plugins and, with
// code Internal and panic=true, for RPCs whose handler panicked.
//
// It never logs metadata, tokens or payload bytes. Strings that clients
// influence (the status message of a failed RPC, the identity) are logged only
// as attribute values, which slog.TextHandler quotes and slog.JSONHandler
// escapes, so they cannot forge records; use one of those handlers. The
// status message is logged as the attribute error, cut to its first
// MaxErrorBytes bytes and followed by "…(N bytes)" when longer, so a handler
// that echoes a huge input into its status cannot make the record huge.
//
// It is written here rather than with go-grpc-middleware's logging because
// that package writes no record for a handler that panics (its final record
// is not deferred), counts no payload bytes (its payload events log message
// contents instead), and does not see an identity that a later plugin
// establishes.
package logging

import (
	"context"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/greeter/greeter/identity"
	"github.com/greeter/greeter/middleware"
)

// Name is the plugin's name in a chain.
const Name = "logging"

// MaxErrorBytes is the most bytes of a status message the record's error
// attribute keeps.
const MaxErrorBytes = 256

// Options configure the plugin. The zero value is usable.
type Options struct {
	// Logger receives the records. Nil discards them.
	Logger *slog.Logger
	// Level picks the level of a record from its code. Nil means
	// DefaultLevel.
	Level func(codes.Code) slog.Level
}

// DefaultLevel logs server faults (Internal, Unknown, DataLoss,
// Unimplemented) at ERROR, throttling and access failures
// (ResourceExhausted, Unauthenticated, PermissionDenied) at WARN, and
// everything else at INFO.
func DefaultLevel(c codes.Code) slog.Level {
	switch c {
	case codes.Internal, codes.Unknown, codes.DataLoss, codes.Unimplemented:
		return slog.LevelError
	case codes.ResourceExhausted, codes.Unauthenticated, codes.PermissionDenied:
		return slog.LevelWarn
	default:
		return slog.LevelInfo
	}
}

// New returns the logging plugin.
func New(o Options) middleware.Plugin {
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	level := o.Level
	if level == nil {
		level = DefaultLevel
	}
	return middleware.FromFunc(Name, func(ctx context.Context, call *middleware.Call, next middleware.Next) error {
		// One allocation holds the start time and both byte counts, which the
		// hooks (method values) update.
		rec := &counts{start: time.Now()}
		ctx = identity.WithObserver(ctx)
		call.OnRecv(rec.recv)
		call.OnSend(rec.send)
		returned := false
		defer func() {
			if !returned {
				// A panic is unwinding; recovery, further out, answers it.
				write(ctx, logger, call, codes.Internal, slog.LevelError, rec,
					slog.Bool("panic", true))
			}
		}()
		err := next(ctx)
		returned = true
		st := status.Convert(err)
		var extra []slog.Attr
		if err != nil {
			extra = append(extra, slog.String("error", capped(st.Message())))
		}
		write(ctx, logger, call, st.Code(), level(st.Code()), rec, extra...)
		return err
	})
}

// counts is what one RPC's record measures as it runs.
type counts struct {
	start   time.Time
	in, out atomic.Int64
}

func (c *counts) recv(_ context.Context, m any) error {
	c.in.Add(int64(size(m)))
	return nil
}

func (c *counts) send(_ context.Context, m any) error {
	c.out.Add(int64(size(m)))
	return nil
}

func write(ctx context.Context, logger *slog.Logger, call *middleware.Call, code codes.Code, lvl slog.Level,
	c *counts, extra ...slog.Attr) {
	if !logger.Enabled(ctx, lvl) {
		return
	}
	// A record has at most 8 attributes of its own and the callers pass at
	// most one extra: an array on the stack rather than a slice per RPC.
	var buf [9]slog.Attr
	attrs := append(buf[:0],
		slog.String("method", call.FullMethod),
		slog.String("code", code.String()),
		slog.Duration("duration", time.Since(c.start)),
		slog.Int64("bytes_in", c.in.Load()),
		slog.Int64("bytes_out", c.out.Load()),
	)
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		attrs = append(attrs, slog.String("peer", p.Addr.String()))
	}
	if id, ok := identity.Observed(ctx); ok {
		attrs = append(attrs, slog.String("identity", id.Key()))
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		attrs = append(attrs, slog.String("trace_id", sc.TraceID().String()))
	}
	attrs = append(attrs, extra...)
	logger.LogAttrs(ctx, lvl, "rpc", attrs...)
}

// capped returns s if it is at most MaxErrorBytes long, and otherwise its
// first MaxErrorBytes bytes, cut back to a rune boundary, followed by
// "…(N bytes)" with N = len(s).
func capped(s string) string {
	if len(s) <= MaxErrorBytes {
		return s
	}
	cut := MaxErrorBytes
	for i := cut; i > MaxErrorBytes-utf8.UTFMax; i-- {
		if utf8.RuneStart(s[i]) {
			cut = i
			break
		}
	}
	return s[:cut] + "…(" + strconv.Itoa(len(s)) + " bytes)"
}

func size(m any) int {
	if pm, ok := m.(proto.Message); ok {
		return proto.Size(pm)
	}
	return 0
}
