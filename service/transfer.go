package service

import (
	"context"
	"strings"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/greeter/greeter/telemetry/spanattr"
)

// Directions of a transfer, as Options.OnTransfer receives them.
const (
	directionUpload   = "upload"
	directionDownload = "download"
)

// transfer counts the file bytes an RPC moves, for Options.OnTransfer. It
// is safe for concurrent use: a download counts on its sending goroutine.
type transfer struct {
	moved atomic.Int64
	done  func(bytes int64) // nil without an OnTransfer hook
}

// startTransfer is the preamble of every RPC that moves file bytes, once
// its request is valid and before storage is touched: it sets the owner,
// the object and the extra attributes on the RPC's span, and calls
// Options.OnTransfer with the request's context. The caller must call end
// when the transfer is over.
func (s *Server) startTransfer(ctx context.Context, direction, owner, name string, extra ...attribute.KeyValue) *transfer {
	attrs := append([]attribute.KeyValue{spanattr.Owner.String(owner), spanattr.ObjectName(name)}, extra...)
	trace.SpanFromContext(ctx).SetAttributes(attrs...)
	t := &transfer{}
	if s.opts.OnTransfer != nil {
		t.done = s.opts.OnTransfer(ctx, direction)
	}
	return t
}

// add counts n bytes moved.
func (t *transfer) add(n int) { t.moved.Add(int64(n)) }

// end reports the bytes moved to the OnTransfer hook.
func (t *transfer) end() {
	if t.done != nil {
		t.done(t.moved.Load())
	}
}

// recordOutcome sets the Outcome span attribute of a transfer: "ok", or the
// status code's snake_case name ("invalid_argument", ...). Handlers defer
// it with their named error result.
func recordOutcome(ctx context.Context, err *error) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	outcome := "ok"
	if *err != nil {
		outcome = strings.ToLower(strings.ReplaceAll(codeName(status.Code(*err)), " ", "_"))
	}
	span.SetAttributes(spanattr.Outcome.String(outcome))
}

// codeName returns the snake_case name of a code, as in the gRPC spec.
func codeName(c codes.Code) string {
	name := c.String()
	var b strings.Builder
	for i, r := range name {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return b.String()
}
