package telemetry_test

import (
	"context"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/greeter/greeter/telemetry"
)

// TestQuotaMetrics checks the quota rejection counter's fixed label set and
// the storage totals (RELIABILITY.md R11): no series per owner.
func TestQuotaMetrics(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	m, err := telemetry.NewMetrics(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	m.QuotaExceeded(ctx, telemetry.QuotaBytes)
	m.QuotaExceeded(ctx, telemetry.QuotaBytes)
	m.QuotaExceeded(ctx, telemetry.QuotaObjects)
	m.QuotaExceeded(ctx, "owner jwt:https://idp:alice")
	used := int64(1000)
	if err := m.ObserveStorage(func() (int64, int64) { return used, 3 }); err != nil {
		t.Fatal(err)
	}
	if err := m.ObserveStorage(func() (int64, int64) { return 0, 0 }); err == nil {
		t.Error("a second ObserveStorage succeeded, want an error")
	}
	want := map[string]int64{
		"greeter.quota.rejections{subject=bytes}":   2,
		"greeter.quota.rejections{subject=objects}": 1,
		"greeter.quota.rejections{subject=other}":   1,
		"greeter.storage.bytes{}":                   1000,
		"greeter.storage.objects{}":                 3,
	}
	got := series(t, reader)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %d, want %d (all: %v)", k, got[k], v, got)
		}
	}
	used = 10
	if got := series(t, reader)["greeter.storage.bytes{}"]; got != 10 {
		t.Errorf("greeter.storage.bytes after a change = %d, want 10", got)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := series(t, reader)["greeter.storage.bytes{}"]; ok {
		t.Error("greeter.storage.bytes still observed after Close")
	}
	var nilMetrics *telemetry.Metrics
	nilMetrics.QuotaExceeded(ctx, telemetry.QuotaBytes)
	if err := nilMetrics.ObserveStorage(nil); err != nil {
		t.Error(err)
	}
}
