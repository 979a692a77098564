package telemetry

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Quota metrics (RELIABILITY.md R11). They carry no owner label: owners are
// as many as the identities that ever stored a file, and one series per
// owner would grow the metrics backend with the number of tenants and
// expose who stores what to whoever reads metrics. Each owner sees its own
// usage through GetUsage; the metrics give the operator the totals and how
// often quotas refuse uploads.

// Quota subjects, the values of the "subject" label of
// greeter.quota.rejections; anything else becomes QuotaOther.
const (
	QuotaBytes   = "bytes"
	QuotaObjects = "objects"
	QuotaOther   = "other"
)

func newQuotaRefusals(meter metric.Meter) (metric.Int64Counter, error) {
	return meter.Int64Counter("greeter.quota.rejections",
		metric.WithUnit("{upload}"),
		metric.WithDescription("Uploads refused because they would exceed their owner's quota."))
}

// QuotaExceeded counts an upload refused for the quota subject ("bytes" or
// "objects"). It has the signature of service.Options.OnQuotaExceeded.
func (m *Metrics) QuotaExceeded(ctx context.Context, subject string) {
	if m == nil {
		return
	}
	switch subject {
	case QuotaBytes, QuotaObjects:
	default:
		subject = QuotaOther
	}
	m.quotaRefusals.Add(ctx, 1, metric.WithAttributes(attribute.String("subject", subject)))
}

// ObserveStorage adds two gauges observed at each collection by calling
// totals: greeter.storage.bytes (By) and greeter.storage.objects
// ({object}), what all owners store, incomplete uploads included at what
// they set aside. Close stops them. It may be called once.
func (m *Metrics) ObserveStorage(totals func() (bytes, objects int64)) error {
	if m == nil {
		return nil
	}
	if m.storageReg != nil {
		return errors.New("telemetry: ObserveStorage called twice")
	}
	bytes, err1 := m.meter.Int64ObservableGauge("greeter.storage.bytes",
		metric.WithUnit("By"),
		metric.WithDescription("Bytes stored by all owners, incomplete uploads included at what they set aside."))
	objects, err2 := m.meter.Int64ObservableGauge("greeter.storage.objects",
		metric.WithUnit("{object}"),
		metric.WithDescription("Files stored by all owners, incomplete uploads included."))
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("telemetry: create storage metrics: %w", err)
	}
	reg, err := m.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		b, n := totals()
		o.ObserveInt64(bytes, b)
		o.ObserveInt64(objects, n)
		return nil
	}, bytes, objects)
	if err != nil {
		return fmt.Errorf("telemetry: create storage metrics: %w", err)
	}
	m.storageReg = reg
	return nil
}
