package telemetry

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

func newCoordinationFallbacks(meter metric.Meter) (metric.Int64Counter, error) {
	return meter.Int64Counter("greeter.coordination.fallbacks",
		metric.WithUnit("{decision}"),
		metric.WithDescription("Decisions made by this replica alone because the shared store (Redis) did not answer, by what was decided: limits, leases or usage."))
}

// The label sets of greeter.coordination.fallbacks, one per kind of
// shared state, built once.
var (
	fallbackLimits = metric.WithAttributeSet(attribute.NewSet(attribute.String("coordination", "limits")))
	fallbackLeases = metric.WithAttributeSet(attribute.NewSet(attribute.String("coordination", "leases")))
	fallbackUsage  = metric.WithAttributeSet(attribute.NewSet(attribute.String("coordination", "usage")))
)

// CoordinationFallback counts one limit decision made locally because the
// shared store did not answer. It has the signature of
// redislimit.Options.OnFallback. Prometheus shows it as
// greeter_coordination_fallbacks_total{coordination="limits"}; while it
// grows, each replica grants the full per-identity quota.
func (m *Metrics) CoordinationFallback(ctx context.Context) {
	if m == nil {
		return
	}
	m.fallbacks.Add(ctx, 1, fallbackLimits)
}

// LeaseFallback counts one upload lease granted without Redis, because it
// did not answer (redislease.Options.OnFallback):
// greeter_coordination_fallbacks_total{coordination="leases"}. While it
// grows, the one writer of an upload is kept by the state object's
// conditional writes alone, and a resume on another replica is not
// announced to the stream it replaces.
func (m *Metrics) LeaseFallback(ctx context.Context) {
	if m == nil {
		return
	}
	m.fallbacks.Add(ctx, 1, fallbackLeases)
}

// UsageFallback counts one quota decision (a reservation, release or
// reading of an owner's usage) made from this replica's own count because
// Redis did not answer (redisusage.Options.OnFallback):
// greeter_coordination_fallbacks_total{coordination="usage"}. While it
// grows, replicas may together let an owner exceed its quota.
func (m *Metrics) UsageFallback(ctx context.Context) {
	if m == nil {
		return
	}
	m.fallbacks.Add(ctx, 1, fallbackUsage)
}
