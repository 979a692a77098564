package telemetry_test

import (
	"context"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/greeter/greeter/telemetry"
)

func TestCoordinationFallbacks(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	m, err := telemetry.NewMetrics(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()
	m.CoordinationFallback(ctx)
	m.CoordinationFallback(ctx)
	m.LeaseFallback(ctx)
	for range 3 {
		m.UsageFallback(ctx)
	}
	got := series(t, reader)
	for s, want := range map[string]int64{
		"greeter.coordination.fallbacks{coordination=limits}": 2,
		"greeter.coordination.fallbacks{coordination=leases}": 1,
		"greeter.coordination.fallbacks{coordination=usage}":  3,
	} {
		if got[s] != want {
			t.Errorf("%s = %d, want %d", s, got[s], want)
		}
	}
	var nilMetrics *telemetry.Metrics
	nilMetrics.CoordinationFallback(ctx)
	nilMetrics.LeaseFallback(ctx)
	nilMetrics.UsageFallback(ctx)
}
