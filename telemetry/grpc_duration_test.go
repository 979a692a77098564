package telemetry

import (
	"context"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestServerDurationRecordsWithoutAllocating pins that recording
// rpc.server.call.duration for a method seen before builds nothing: no
// attribute set, no option slice.
func TestServerDurationRecordsWithoutAllocating(t *testing.T) {
	t.Setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "")
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	d, err := newServerDuration(mp)
	if err != nil || d == nil {
		t.Fatalf("newServerDuration: %v, %v", d, err)
	}
	ctx := context.Background()
	notFound := status.Error(codes.NotFound, "no")
	record := func() {
		m := d.forMethod("/Greeter/SayHello")
		d.record(ctx, m, nil, time.Millisecond)
		d.record(ctx, m, notFound, time.Millisecond)
	}
	record()
	if got := testing.AllocsPerRun(100, record); got != 0 {
		t.Errorf("%v allocations per two records, want 0", got)
	}
}

// TestServerDurationOldSemconv checks that the old or duplicated
// conventions leave recording to otelgrpc.
func TestServerDurationOldSemconv(t *testing.T) {
	for _, v := range []string{"rpc/old", "http, rpc/dup"} {
		t.Setenv("OTEL_SEMCONV_STABILITY_OPT_IN", v)
		d, err := newServerDuration(sdkmetric.NewMeterProvider())
		if err != nil || d != nil {
			t.Errorf("OTEL_SEMCONV_STABILITY_OPT_IN=%q: got %v, %v, want nil, nil", v, d, err)
		}
	}
}
