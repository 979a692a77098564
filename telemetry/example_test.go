package telemetry_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"testing"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"
	"google.golang.org/grpc"

	"github.com/greeter/greeter/telemetry"
)

// TestMain fails the package if any test leaves a goroutine behind, such as
// a span queue, exporter or server that Shutdown or Stop did not end.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Example wires telemetry into a server: one Setup, the stats handler on
// the gRPC server, the service's metrics, trace-stamped logs and /metrics.
func Example() {
	ctx := context.Background()
	p, err := telemetry.Setup(ctx, telemetry.Config{
		ServiceName:    "greeter",
		ServiceVersion: "1.0.0",
		TracesExporter: telemetry.ExporterNone, // a flag; empty defers to OTEL_TRACES_EXPORTER
	})
	if err != nil {
		fmt.Println("telemetry:", err)
		return
	}
	defer func() { _ = p.Shutdown(ctx) }()

	metrics, err := telemetry.NewMetrics(p.MeterProvider(), nil)
	if err != nil {
		fmt.Println("metrics:", err)
		return
	}
	defer func() { _ = metrics.Close() }()

	logger := slog.New(telemetry.NewLogHandler(slog.NewJSONHandler(os.Stderr, nil)))
	srv := grpc.NewServer(grpc.StatsHandler(telemetry.ServerHandler(p)))
	defer srv.Stop()
	mux := http.NewServeMux()
	mux.Handle("/metrics", p.MetricsHandler())

	// The service takes metrics.OnTransfer, p.TracerProvider().Tracer(...)
	// and logger in its options.
	_, _ = logger, mux
	fmt.Println("tracing:", p.TracingEnabled())
	// Output: tracing: false
}

// ExampleNewLogHandler shows the attributes added to a record logged with a
// span context.
func ExampleNewLogHandler() {
	noTime := func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}
	logger := slog.New(telemetry.NewLogHandler(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{ReplaceAttr: noTime})))

	traceID, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	spanID, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithSpanContext(context.Background(),
		trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceID, SpanID: spanID}))

	logger.InfoContext(ctx, "stored", "object", "notes.txt")
	logger.Info("no context")
	// Output:
	// level=INFO msg=stored object=notes.txt trace_id=4bf92f3577b34da6a3ce929d0e0e4736 span_id=00f067aa0ba902b7
	// level=INFO msg="no context"
}
