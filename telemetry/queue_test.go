package telemetry

import (
	"context"
	"sync"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// stuckExporter models a collector that accepts no spans until released.
type stuckExporter struct {
	release chan struct{}

	mu       sync.Mutex
	exported int
}

func (e *stuckExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	select {
	case <-e.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	e.mu.Lock()
	e.exported += len(spans)
	e.mu.Unlock()
	return nil
}

func (e *stuckExporter) Shutdown(context.Context) error { return nil }

func (e *stuckExporter) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.exported
}

// sumCounter returns the sum of all data points of the Int64 counter name.
func sumCounter(t *testing.T, reader sdkmetric.Reader, name string) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatalf("Collect: %v", err)
	}
	var total int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			sum, ok := m.Data.(metricdata.Sum[int64])
			if !ok {
				t.Fatalf("%s: got data %T, want metricdata.Sum[int64]", name, m.Data)
			}
			for _, dp := range sum.DataPoints {
				total += dp.Value
			}
		}
	}
	return total
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestDroppingProcessorNeverBlocks ends many spans while the exporter is
// stuck. Ending must not block (the test would hang), spans beyond the
// queues' capacity must be counted as dropped, and after the exporter
// recovers every span must be either exported or counted.
func TestDroppingProcessorNeverBlocks(t *testing.T) {
	tests := []struct {
		name      string
		queueSize int
		spans     int
	}{
		{name: "tiny queue", queueSize: 1, spans: 50},
		{name: "small queue", queueSize: 8, spans: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			reader := sdkmetric.NewManualReader()
			mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
			dropped, err := mp.Meter("test").Int64Counter("dropped")
			if err != nil {
				t.Fatalf("Int64Counter: %v", err)
			}
			exp := &stuckExporter{release: make(chan struct{})}
			const bspSize = 4
			bsp := sdktrace.NewBatchSpanProcessor(exp, sdktrace.WithBlocking(),
				sdktrace.WithMaxQueueSize(bspSize), sdktrace.WithMaxExportBatchSize(bspSize))
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(newDroppingProcessor(bsp, tt.queueSize, dropped)))
			tracer := tp.Tracer("test")

			for range tt.spans {
				_, span := tracer.Start(ctx, "rpc")
				span.End()
			}

			// At most: the batch held by the stuck exporter, the SDK queue,
			// the span the forwarding goroutine holds, and our queue.
			capacity := int64(bspSize + bspSize + 1 + tt.queueSize)
			gotDropped := sumCounter(t, reader, "dropped")
			if want := int64(tt.spans) - capacity; gotDropped < want {
				t.Errorf("dropped while the exporter is stuck: got %d, want at least %d", gotDropped, want)
			}

			close(exp.release)
			if err := tp.Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			gotDropped = sumCounter(t, reader, "dropped")
			if got, want := int64(exp.count())+gotDropped, int64(tt.spans); got != want {
				t.Errorf("exported (%d) + dropped (%d) = %d, want %d", exp.count(), gotDropped, got, want)
			}
			if exp.count() == 0 {
				t.Errorf("exported: got 0 spans, want the queued ones once the exporter recovers")
			}
		})
	}
}

// TestDroppingProcessorFlush checks that ForceFlush delivers every span ended
// before it, and that unsampled spans are neither exported nor counted.
func TestDroppingProcessorFlush(t *testing.T) {
	tests := []struct {
		name    string
		sampler sdktrace.Sampler
		spans   int
		want    int
	}{
		{name: "sampled", sampler: sdktrace.AlwaysSample(), spans: 10, want: 10},
		{name: "unsampled", sampler: sdktrace.NeverSample(), spans: 10, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			reader := sdkmetric.NewManualReader()
			dropped, err := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test").Int64Counter("dropped")
			if err != nil {
				t.Fatalf("Int64Counter: %v", err)
			}
			exp := tracetest.NewInMemoryExporter()
			bsp := sdktrace.NewBatchSpanProcessor(exp, sdktrace.WithBlocking())
			tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(tt.sampler),
				sdktrace.WithSpanProcessor(newDroppingProcessor(bsp, 64, dropped)))
			t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

			for range tt.spans {
				_, span := tp.Tracer("test").Start(ctx, "rpc")
				span.End()
			}
			if err := tp.ForceFlush(ctx); err != nil {
				t.Fatalf("ForceFlush: %v", err)
			}
			if got := len(exp.GetSpans()); got != tt.want {
				t.Errorf("exported after ForceFlush: got %d spans, want %d", got, tt.want)
			}
			if got := sumCounter(t, reader, "dropped"); got != 0 {
				t.Errorf("dropped: got %d, want 0", got)
			}
		})
	}
}

// TestDroppingProcessorAfterShutdown checks that spans ended after Shutdown
// are ignored and that ForceFlush and Shutdown may still be called.
func TestDroppingProcessorAfterShutdown(t *testing.T) {
	ctx := testContext(t)
	// Not the in-memory exporter: its Shutdown forgets what it holds.
	exp := &stuckExporter{release: make(chan struct{})}
	close(exp.release)
	dropped, err := sdkmetric.NewMeterProvider().Meter("test").Int64Counter("dropped")
	if err != nil {
		t.Fatalf("Int64Counter: %v", err)
	}
	p := newDroppingProcessor(sdktrace.NewBatchSpanProcessor(exp, sdktrace.WithBlocking()), 4, dropped)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(p))
	_, before := tp.Tracer("test").Start(ctx, "before")
	if err := p.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	before.End()
	if err := p.ForceFlush(ctx); err != nil {
		t.Errorf("ForceFlush after Shutdown: got %v, want nil", err)
	}
	if err := p.Shutdown(ctx); err != nil {
		t.Errorf("second Shutdown: got %v, want nil", err)
	}
	if got := exp.count(); got != 0 {
		t.Errorf("exported after Shutdown: got %d spans, want 0", got)
	}
}
