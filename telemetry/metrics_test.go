package telemetry_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/greeter/greeter/telemetry"
)

// series maps "instrument{label=value}" to the current value of each data
// point of the Int64 sums and gauges reader holds.
func series(t *testing.T, reader sdkmetric.Reader) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatalf("Collect: %v", err)
	}
	out := map[string]int64{}
	name := func(m string, set attribute.Set) string {
		return m + "{" + set.Encoded(attribute.DefaultEncoder()) + "}"
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch data := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range data.DataPoints {
					out[name(m.Name, dp.Attributes)] = dp.Value
				}
			case metricdata.Gauge[int64]:
				for _, dp := range data.DataPoints {
					out[name(m.Name, dp.Attributes)] = dp.Value
				}
			}
		}
	}
	return out
}

// TestMetrics checks each recording method, that labels come only from the
// fixed sets, and that ending a transfer twice counts once.
func TestMetrics(t *testing.T) {
	notAfter := time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		record func(ctx context.Context, m *telemetry.Metrics)
		want   map[string]int64
	}{
		{
			name: "bytes by direction",
			record: func(ctx context.Context, m *telemetry.Metrics) {
				m.AddUploaded(ctx, 100)
				m.AddUploaded(ctx, 28)
				m.AddDownloaded(ctx, 7)
				m.AddDownloaded(ctx, -5) // ignored
			},
			want: map[string]int64{
				"greeter.transfer.bytes{direction=upload}":   128,
				"greeter.transfer.bytes{direction=download}": 7,
			},
		},
		{
			name: "active transfers",
			record: func(ctx context.Context, m *telemetry.Metrics) {
				m.TransferStarted(ctx, telemetry.DirectionUpload)
				doneA := m.TransferStarted(ctx, telemetry.DirectionDownload)
				doneB := m.TransferStarted(ctx, telemetry.DirectionDownload)
				doneA()
				doneA() // a second call must not count again
				_ = doneB
				m.TransferStarted(ctx, "sideways")()
			},
			want: map[string]int64{
				"greeter.transfer.active{direction=upload}":   1,
				"greeter.transfer.active{direction=download}": 1,
				"greeter.transfer.active{direction=other}":    0,
			},
		},
		{
			name: "OnTransfer adapter for service.Options",
			record: func(ctx context.Context, m *telemetry.Metrics) {
				up := m.OnTransfer(ctx, "upload")
				down := m.OnTransfer(ctx, "download")
				up(4096)
				_ = down
			},
			want: map[string]int64{
				"greeter.transfer.active{direction=upload}":   0,
				"greeter.transfer.active{direction=download}": 1,
				"greeter.transfer.bytes{direction=upload}":    4096,
			},
		},
		{
			name: "rate limits from a fixed set",
			record: func(ctx context.Context, m *telemetry.Metrics) {
				m.RateLimited(ctx, telemetry.RateLimitRate)
				m.RateLimited(ctx, telemetry.RateLimitRate)
				m.RateLimited(ctx, telemetry.RateLimitConcurrency)
				m.RateLimited(ctx, "user alice exceeded 10 rps")
			},
			want: map[string]int64{
				"greeter.ratelimit.rejections{reason=rate}":        2,
				"greeter.ratelimit.rejections{reason=concurrency}": 1,
				"greeter.ratelimit.rejections{reason=other}":       1,
			},
		},
		{
			name: "auth failures from a fixed set",
			record: func(ctx context.Context, m *telemetry.Metrics) {
				m.AuthFailed(ctx, telemetry.AuthExpired)
				m.AuthFailed(ctx, telemetry.AuthMissingCredentials)
				m.AuthFailed(ctx, "token eyJhbGciOi... is bad")
			},
			want: map[string]int64{
				"greeter.auth.failures{reason=expired}":             1,
				"greeter.auth.failures{reason=missing_credentials}": 1,
				"greeter.auth.failures{reason=other}":               1,
			},
		},
		{
			name: "storage serving follows the last health check",
			record: func(ctx context.Context, m *telemetry.Metrics) {
				m.StorageServing(ctx, true)
				m.StorageServing(ctx, false)
			},
			want: map[string]int64{"greeter.storage.serving{}": 0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reader := sdkmetric.NewManualReader()
			mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
			m, err := telemetry.NewMetrics(mp, nil)
			if err != nil {
				t.Fatalf("NewMetrics: %v", err)
			}
			tt.record(testContext(t), m)
			got := series(t, reader)
			if len(got) != len(tt.want) {
				t.Errorf("series: got %v, want %v", got, tt.want)
			}
			for k, want := range tt.want {
				if v, ok := got[k]; !ok || v != want {
					t.Errorf("%s: got %d (present %v), want %d", k, v, ok, want)
				}
			}
		})
	}

	t.Run("certificate expiry", func(t *testing.T) {
		reader := sdkmetric.NewManualReader()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
		calls := 0
		m, err := telemetry.NewMetrics(mp, func() []telemetry.CertExpiry {
			calls++
			return []telemetry.CertExpiry{
				{Name: "server", NotAfter: notAfter},
				{Name: "client_ca", NotAfter: notAfter.Add(time.Duration(calls) * time.Hour)},
			}
		})
		if err != nil {
			t.Fatalf("NewMetrics: %v", err)
		}
		got := series(t, reader)
		if want := notAfter.Unix(); got["greeter.tls.certificate.not_after{cert=server}"] != want {
			t.Errorf("server not_after: got %d, want %d", got["greeter.tls.certificate.not_after{cert=server}"], want)
		}
		// A reloaded certificate shows up at the next collection.
		got = series(t, reader)
		if want := notAfter.Add(2 * time.Hour).Unix(); got["greeter.tls.certificate.not_after{cert=client_ca}"] != want {
			t.Errorf("client_ca not_after after reload: got %d, want %d", got["greeter.tls.certificate.not_after{cert=client_ca}"], want)
		}
		if err := m.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		before := calls
		series(t, reader)
		if calls != before {
			t.Errorf("callback calls after Close: got %d more, want 0", calls-before)
		}
	})
}

// TestNilMetrics checks that every method of a nil *Metrics is a no-op.
func TestNilMetrics(t *testing.T) {
	var m *telemetry.Metrics
	ctx := testContext(t)
	m.AddUploaded(ctx, 1)
	m.AddDownloaded(ctx, 1)
	m.TransferStarted(ctx, telemetry.DirectionUpload)()
	m.OnTransfer(ctx, "download")(10)
	m.RateLimited(ctx, telemetry.RateLimitRate)
	m.AuthFailed(ctx, telemetry.AuthExpired)
	m.StorageServing(ctx, true)
	if err := m.Close(); err != nil {
		t.Errorf("Close: got %v, want nil", err)
	}
}

// TestMetricsPrometheusNames pins the names Prometheus scrapes, which
// dashboards and alerts use.
func TestMetricsPrometheusNames(t *testing.T) {
	cleanEnv(t)
	ctx := testContext(t)
	p, err := telemetry.Setup(ctx, telemetry.Config{})
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	m, err := telemetry.NewMetrics(p.MeterProvider(), func() []telemetry.CertExpiry {
		return []telemetry.CertExpiry{{Name: "server", NotAfter: time.Unix(1800000000, 0)}}
	})
	if err != nil {
		t.Fatalf("NewMetrics: %v", err)
	}
	t.Cleanup(func() { _ = m.Close() })
	m.AddDownloaded(ctx, 5)
	m.TransferStarted(ctx, telemetry.DirectionUpload)
	m.RateLimited(ctx, telemetry.RateLimitGlobal)
	m.AuthFailed(ctx, telemetry.AuthBadSignature)
	m.StorageServing(ctx, true)

	rec := httptest.NewRecorder()
	p.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		`greeter_transfer_bytes_total{direction="download"`,
		`greeter_transfer_active{direction="upload"`,
		`greeter_ratelimit_rejections_total{`,
		`reason="global"`,
		`greeter_auth_failures_total{`,
		`reason="bad_signature"`,
		`greeter_tls_certificate_not_after_seconds{cert="server"`,
		`} 1.8e+09`,
		`greeter_storage_serving{`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("GET /metrics lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("body:\n%s", body)
	}
}

// TestDroppedSpansExportedFromZero: with tracing on, the dropped-span
// counter is on /metrics at 0 before any drop, so the dashboard and alerts
// see a series rather than no data.
func TestDroppedSpansExportedFromZero(t *testing.T) {
	cleanEnv(t)
	p, err := telemetry.Setup(testContext(t), telemetry.Config{TracesExporter: telemetry.ExporterStdout, Stdout: io.Discard})
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	rec := httptest.NewRecorder()
	p.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if !regexp.MustCompile(`(?m)^greeter_trace_spans_dropped_total\{[^}]*\} 0$`).MatchString(rec.Body.String()) {
		t.Errorf("GET /metrics lacks greeter_trace_spans_dropped_total at 0:\n%s", rec.Body.String())
	}
}
