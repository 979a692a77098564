package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/greeter/greeter/telemetry"
)

// TestLogHandler checks that records logged with a span context carry
// top-level trace_id and span_id, also under groups, and others do not.
func TestLogHandler(t *testing.T) {
	traceID, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	spanID, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	spanCtx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: traceID, SpanID: spanID, TraceFlags: trace.FlagsSampled,
	}))

	tests := []struct {
		name      string
		ctx       context.Context
		logger    func(*slog.Logger) *slog.Logger
		wantIDs   bool
		wantGroup bool
	}{
		{name: "span context", ctx: spanCtx, wantIDs: true},
		{name: "no span context", ctx: context.Background()},
		{name: "with attrs", ctx: spanCtx, logger: func(l *slog.Logger) *slog.Logger { return l.With("method", "/Greeter/SayHello") }, wantIDs: true},
		{name: "with group", ctx: spanCtx, logger: func(l *slog.Logger) *slog.Logger { return l.WithGroup("rpc").With("method", "/Greeter/SayHello") }, wantIDs: true, wantGroup: true},
		{name: "with group, no span context", ctx: context.Background(), logger: func(l *slog.Logger) *slog.Logger { return l.WithGroup("rpc").With("method", "/Greeter/SayHello") }, wantGroup: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			logger := slog.New(telemetry.NewLogHandler(slog.NewJSONHandler(&buf, nil)))
			if tt.logger != nil {
				logger = tt.logger(logger)
			}
			logger.InfoContext(tt.ctx, "stored", "size", 3)

			var rec map[string]any
			if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
				t.Fatalf("log line %q: %v", buf.String(), err)
			}
			gotTrace, _ := rec[telemetry.LogKeyTraceID].(string)
			gotSpan, _ := rec[telemetry.LogKeySpanID].(string)
			wantTrace, wantSpan := "", ""
			if tt.wantIDs {
				wantTrace, wantSpan = traceID.String(), spanID.String()
			}
			if gotTrace != wantTrace || gotSpan != wantSpan {
				t.Errorf("trace_id, span_id: got %q, %q, want %q, %q (line %s)", gotTrace, gotSpan, wantTrace, wantSpan, buf.String())
			}
			if tt.wantGroup {
				group, _ := rec["rpc"].(map[string]any)
				if group["method"] != "/Greeter/SayHello" || group["size"] != float64(3) {
					t.Errorf("group rpc: got %v, want method and size inside (line %s)", group, buf.String())
				}
				if _, nested := group[telemetry.LogKeyTraceID]; nested {
					t.Errorf("trace_id nested in group rpc, want it top-level (line %s)", buf.String())
				}
			}
		})
	}
}

// TestLogHandlerEnabled checks that the wrapper keeps the wrapped handler's
// level.
func TestLogHandlerEnabled(t *testing.T) {
	h := telemetry.NewLogHandler(slog.NewJSONHandler(&bytes.Buffer{}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	tests := []struct {
		level slog.Level
		want  bool
	}{
		{slog.LevelInfo, false},
		{slog.LevelWarn, true},
		{slog.LevelError, true},
	}
	for _, tt := range tests {
		if got := h.Enabled(context.Background(), tt.level); got != tt.want {
			t.Errorf("Enabled(%v): got %v, want %v", tt.level, got, tt.want)
		}
	}
}

func TestLogHandlerDoesNotRepeatTraceID(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(telemetry.NewLogHandler(slog.NewJSONHandler(&buf, nil)))
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)
	log.InfoContext(ctx, "rpc", slog.String(telemetry.LogKeyTraceID, sc.TraceID().String()))
	if got := strings.Count(buf.String(), `"`+telemetry.LogKeyTraceID+`"`); got != 1 {
		t.Fatalf("trace_id appears %d times in %s, want once", got, buf.String())
	}
	if !strings.Contains(buf.String(), `"`+telemetry.LogKeySpanID+`"`) {
		t.Fatalf("span_id missing from %s", buf.String())
	}
}
