package telemetry_test

import (
	"context"
	"testing"

	"github.com/greeter/greeter/telemetry"
)

// TestMetricsRecordWithoutBuildingSets pins that recording a transfer, a
// rate-limit rejection and an authentication failure builds no attribute
// set per call: the sets of the fixed label values are built once. With a
// set per call (metric.WithAttributes) each of them allocated.
func TestMetricsRecordWithoutBuildingSets(t *testing.T) {
	cleanEnv(t)
	ctx := testContext(t)
	p, err := telemetry.Setup(ctx, telemetry.Config{})
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	m, err := telemetry.NewMetrics(p.MeterProvider(), nil)
	if err != nil {
		t.Fatalf("NewMetrics: %v", err)
	}
	t.Cleanup(func() { _ = m.Close() })
	for name, record := range map[string]func(){
		"AddUploaded":      func() { m.AddUploaded(ctx, 10) },
		"AddDownloaded":    func() { m.AddDownloaded(ctx, 10) },
		"RateLimited":      func() { m.RateLimited(ctx, telemetry.RateLimitRate) },
		"RateLimitedOther": func() { m.RateLimited(ctx, "made-up") },
		"AuthFailed":       func() { m.AuthFailed(ctx, telemetry.AuthExpired) },
	} {
		record() // the series exists from here on
		if got := testing.AllocsPerRun(100, record); got != 0 {
			t.Errorf("%s: %v allocations per call, want 0", name, got)
		}
	}
}
