package telemetry

import (
	"context"

	"go.opentelemetry.io/otel/metric"
)

func newCoordinationFallbacks(meter metric.Meter) (metric.Int64Counter, error) {
	return meter.Int64Counter("greeter.coordination.fallbacks",
		metric.WithUnit("{decision}"),
		metric.WithDescription("Limit decisions made by this replica alone because the shared store (Redis) did not answer."))
}

// CoordinationFallback counts one limit decision made locally because the
// shared store did not answer. It has the signature of
// redislimit.Options.OnFallback. Prometheus shows it as
// greeter_coordination_fallbacks_total; while it grows, each replica grants
// the full per-identity quota.
func (m *Metrics) CoordinationFallback(ctx context.Context) {
	if m == nil {
		return
	}
	m.fallbacks.Add(ctx, 1)
}
