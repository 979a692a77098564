package telemetry

import (
	"context"
	"log/slog"
	"slices"

	"go.opentelemetry.io/otel/trace"
)

// Log attribute keys added by the handler that NewLogHandler returns.
const (
	LogKeyTraceID = "trace_id"
	LogKeySpanID  = "span_id"
)

// NewLogHandler returns an slog.Handler that adds trace_id and span_id
// attributes to every record logged with a context carrying a valid span
// context (logger.InfoContext(ctx, ...)), then passes the record to h. The
// two attributes stay at the top level even under WithGroup, so a dashboard
// finds them under the same keys in every record. Records logged without such
// a context pass through unchanged.
func NewLogHandler(h slog.Handler) slog.Handler {
	return &logHandler{root: h, next: h}
}

// logHandler remembers the WithAttrs and WithGroup calls made on it. While no
// group is open, trace attributes are added to the record. Under a group they
// would be nested, so Handle instead rebuilds the chain on a root that
// already carries them.
type logHandler struct {
	root    slog.Handler
	derive  []func(slog.Handler) slog.Handler
	next    slog.Handler
	grouped bool
}

// Enabled reports whether the wrapped handler handles records at level.
func (h *logHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

// Handle adds the trace and span IDs of ctx to r and passes it on.
func (h *logHandler) Handle(ctx context.Context, r slog.Record) error {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return h.next.Handle(ctx, r)
	}
	// The ids live in an array on the stack, and the trace id is formatted
	// only when the record does not carry it already (the access log does).
	hasTraceID := false
	r.Attrs(func(a slog.Attr) bool {
		hasTraceID = a.Key == LogKeyTraceID
		return !hasTraceID
	})
	var buf [2]slog.Attr
	ids := buf[:0]
	if !hasTraceID {
		ids = append(ids, slog.String(LogKeyTraceID, sc.TraceID().String()))
	}
	ids = append(ids, slog.String(LogKeySpanID, sc.SpanID().String()))
	if !h.grouped {
		r = r.Clone()
		r.AddAttrs(ids...)
		return h.next.Handle(ctx, r)
	}
	next := h.root.WithAttrs(slices.Clone(ids)) // the handler may keep them
	for _, d := range h.derive {
		next = d(next)
	}
	return next.Handle(ctx, r)
}

// WithAttrs returns a handler whose records carry attrs.
func (h *logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	return h.with(func(n slog.Handler) slog.Handler { return n.WithAttrs(attrs) }, false)
}

// WithGroup returns a handler that nests later attributes under name.
func (h *logHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return h.with(func(n slog.Handler) slog.Handler { return n.WithGroup(name) }, true)
}

func (h *logHandler) with(d func(slog.Handler) slog.Handler, group bool) *logHandler {
	return &logHandler{
		root:    h.root,
		derive:  append(slices.Clip(h.derive), d),
		next:    d(h.next),
		grouped: h.grouped || group,
	}
}
