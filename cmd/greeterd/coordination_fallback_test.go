package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/greeter/greeter/internal/redistest"
	"github.com/greeter/greeter/internal/s3test"
	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/telemetry"
)

// TestStorageCoordinationFallbacksAreCounted kills a real redis-server under
// an S3 store that shares its leases and usage through it: the uploads
// begun during the outage are served, each lease and usage decision made
// without Redis is counted in greeter.coordination.fallbacks under its own
// label, each outage is logged once per kind, and so is each recovery,
// after which nothing more falls back.
func TestStorageCoordinationFallbacksAreCounted(t *testing.T) {
	rs := redistest.Start(t)
	redisOpts, err := (&redisConfig{url: rs.URL()}).options(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	srv := s3test.Start(t)
	setS3Credentials(t, s3test.AccessKey, s3test.SecretKey)
	var c serveConfig
	if err := serveFlags(&c).Parse([]string{"--storage", "s3", "--s3-endpoint", srv.Endpoint, "--s3-bucket", srv.Bucket, "--s3-part-size", "5MiB"}); err != nil {
		t.Fatal(err)
	}
	var log redistest.LogBuffer
	coord := c.storage.coordination(redisOpts, slog.New(slog.NewTextHandler(&log, nil)))
	t.Cleanup(coord.close)
	quota := service.Quota{Objects: 100}
	store, _, err := c.storage.open(t.Context(), storeDeps{quotas: func(string) service.Quota { return quota }, log: slog.New(slog.DiscardHandler), coord: coord})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	reader := sdkmetric.NewManualReader()
	metrics, err := telemetry.NewMetrics(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)), nil)
	if err != nil {
		t.Fatal(err)
	}
	coord.countFallbacks(metrics)

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	const owner = "anonymous:fallbacks"
	data := []byte("an incomplete upload")
	begin := func(id string) {
		t.Helper()
		up, err := store.BeginResumable(ctx, owner, service.Resume{ID: id, Name: id, TTL: time.Hour,
			Want: service.Expect{Size: int64(len(data)), HasSize: true, SHA256: sha256.Sum256(data), HasSHA256: true}})
		if err != nil {
			t.Fatalf("BeginResumable %s: %v", id, err)
		}
		up.Abort()
	}
	begin("before-outage-0001")
	if got := fallbacks(t, reader); got["leases"]+got["usage"] != 0 {
		t.Fatalf("fallbacks with Redis up: %v, want none", got)
	}

	rs.Kill()
	const during = 3
	for i := range during {
		begin(fmt.Sprintf("during-outage-%04d", i))
	}
	got := fallbacks(t, reader)
	if got["leases"] != during {
		t.Errorf("lease fallbacks after %d uploads begun with Redis down: %d, want %d (one lease each)", during, got["leases"], during)
	}
	if got["usage"] < during {
		t.Errorf("usage fallbacks after %d uploads begun with Redis down: %d, want at least %d (one reservation each)", during, got["usage"], during)
	}
	for _, kind := range []string{"upload leases fall back", "usage and quotas fall back"} {
		if n := log.Count(kind); n != 1 {
			t.Errorf("outage of %q logged %d times, want once", kind, n)
		}
	}

	rs.Restart()
	for _, kind := range []string{"upload leases are shared again", "usage and quotas are shared again"} {
		redistest.Eventually(t, 15*time.Second, "recovery of "+kind+" logged", func() bool { return log.Count(kind) == 1 })
	}
	settled := fallbacks(t, reader)
	begin("after-outage-0001")
	if after := fallbacks(t, reader); after["leases"] != settled["leases"] || after["usage"] != settled["usage"] {
		t.Errorf("fallbacks grew after the recovery: %v, then %v", settled, after)
	}
	for _, kind := range []string{"upload leases fall back", "usage and quotas fall back", "upload leases are shared again", "usage and quotas are shared again"} {
		if n := log.Count(kind); n != 1 {
			t.Errorf("%q logged %d times in all, want once", kind, n)
		}
	}
}

// fallbacks returns greeter.coordination.fallbacks by its coordination
// label.
func fallbacks(t *testing.T, reader sdkmetric.Reader) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			if m.Name != "greeter.coordination.fallbacks" || !ok {
				continue
			}
			for _, dp := range sum.DataPoints {
				v, _ := dp.Attributes.Value(attribute.Key("coordination"))
				out[v.AsString()] += dp.Value
			}
		}
	}
	return out
}
