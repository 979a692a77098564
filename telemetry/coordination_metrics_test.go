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
	if got := series(t, reader)["greeter.coordination.fallbacks{}"]; got != 2 {
		t.Errorf("greeter.coordination.fallbacks = %d, want 2", got)
	}
	var nilMetrics *telemetry.Metrics
	nilMetrics.CoordinationFallback(ctx)
}
