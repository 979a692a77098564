package telemetry_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/greeter/greeter/telemetry"
)

// TestSetupExporterSelection checks how Config and OTEL_TRACES_EXPORTER,
// OTEL_EXPORTER_OTLP_PROTOCOL and OTEL_TRACES_SAMPLER choose the exporter,
// and that bad values are errors instead of silent defaults.
func TestSetupExporterSelection(t *testing.T) {
	tests := []struct {
		name        string
		env         map[string]string
		cfg         telemetry.Config
		wantTracing bool
		wantErr     string
	}{
		{name: "nothing configured"},
		{name: "explicit none", cfg: telemetry.Config{TracesExporter: "none"}},
		{name: "env none", env: map[string]string{"OTEL_TRACES_EXPORTER": "none"}},
		{name: "env console", env: map[string]string{"OTEL_TRACES_EXPORTER": "console"}, wantTracing: true},
		{name: "env stdout", env: map[string]string{"OTEL_TRACES_EXPORTER": "stdout"}, wantTracing: true},
		{name: "config wins over env", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, cfg: telemetry.Config{TracesExporter: "none"}},
		{name: "env otlp over grpc", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, wantTracing: true},
		{name: "env otlp over http", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, wantTracing: true},
		{name: "unknown exporter", env: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, wantErr: "zipkin"},
		{name: "exporter list", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp,console"}, wantErr: "otlp,console"},
		{name: "unsupported protocol", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, wantErr: "http/json"},
		{name: "traces protocol wins", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}, wantTracing: true},
		{name: "unknown sampler", env: map[string]string{"OTEL_TRACES_EXPORTER": "console", "OTEL_TRACES_SAMPLER": "sometimes"}, wantErr: "sometimes"},
		{name: "ratio above one", env: map[string]string{"OTEL_TRACES_EXPORTER": "console", "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1.5"}, wantErr: "1.5"},
		{name: "ratio not a number", env: map[string]string{"OTEL_TRACES_EXPORTER": "console", "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "ten"}, wantErr: "ten"},
		{name: "valid ratio", env: map[string]string{"OTEL_TRACES_EXPORTER": "console", "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1.0"}, wantTracing: true},
		{name: "bad sampler ignored with explicit Sampler", env: map[string]string{"OTEL_TRACES_EXPORTER": "console", "OTEL_TRACES_SAMPLER": "sometimes"}, cfg: telemetry.Config{Sampler: sdktrace.AlwaysSample()}, wantTracing: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cleanEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			ctx := testContext(t)
			tt.cfg.Stdout = io.Discard
			tt.cfg.SampleRatio = 1
			p, err := telemetry.Setup(ctx, tt.cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Setup: got error %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Setup: %v", err)
			}
			t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
			if got := p.TracingEnabled(); got != tt.wantTracing {
				t.Errorf("TracingEnabled: got %v, want %v", got, tt.wantTracing)
			}
			// The span is not ended, so nothing is exported to the default
			// OTLP endpoints.
			_, span := p.TracerProvider().Tracer("test").Start(ctx, "probe")
			if got := span.IsRecording(); got != tt.wantTracing {
				t.Errorf("span recording: got %v, want %v", got, tt.wantTracing)
			}
		})
	}
}

// TestSetupStdout checks that the stdout exporter writes finished spans to
// Config.Stdout by the time Shutdown returns, and that Shutdown can be
// repeated.
func TestSetupStdout(t *testing.T) {
	cleanEnv(t)
	ctx := testContext(t)
	var buf bytes.Buffer
	p, err := telemetry.Setup(ctx, telemetry.Config{TracesExporter: "stdout", Stdout: &buf, SampleRatio: 1})
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	_, span := p.TracerProvider().Tracer("test").Start(ctx, "stdout-probe")
	span.End()
	if err := p.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := p.Shutdown(ctx); err != nil {
		t.Errorf("second Shutdown: got %v, want nil", err)
	}
	if !strings.Contains(buf.String(), `"stdout-probe"`) {
		t.Errorf("stdout: got %q, want the span stdout-probe", buf.String())
	}
}

// TestSetupResource checks the precedence of service name sources and that
// OTEL_RESOURCE_ATTRIBUTES reaches the spans.
func TestSetupResource(t *testing.T) {
	tests := []struct {
		name        string
		env         map[string]string
		cfg         telemetry.Config
		wantService string
		wantVersion string
		wantEnv     string
		wantErr     bool
	}{
		{name: "default", wantService: "greeter"},
		{name: "resource attributes", env: map[string]string{"OTEL_RESOURCE_ATTRIBUTES": "service.name=attrs,deployment.environment=staging"}, wantService: "attrs", wantEnv: "staging"},
		{name: "OTEL_SERVICE_NAME wins over attributes", env: map[string]string{"OTEL_SERVICE_NAME": "env", "OTEL_RESOURCE_ATTRIBUTES": "service.name=attrs"}, wantService: "env"},
		{name: "config wins over env", env: map[string]string{"OTEL_SERVICE_NAME": "env"}, cfg: telemetry.Config{ServiceName: "cfg", ServiceVersion: "1.2.3"}, wantService: "cfg", wantVersion: "1.2.3"},
		{name: "malformed attributes", env: map[string]string{"OTEL_RESOURCE_ATTRIBUTES": "no-equals-sign"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cleanEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			ctx := testContext(t)
			exp := tracetest.NewInMemoryExporter()
			tt.cfg.SpanExporter = exp
			tt.cfg.SampleRatio = 1
			p, err := telemetry.Setup(ctx, tt.cfg)
			if tt.wantErr {
				if err == nil {
					_ = p.Shutdown(ctx)
					t.Fatalf("Setup: got no error, want one")
				}
				return
			}
			if err != nil {
				t.Fatalf("Setup: %v", err)
			}
			t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
			_, span := p.TracerProvider().Tracer("test").Start(ctx, "probe")
			span.End()
			if err := p.ForceFlush(ctx); err != nil {
				t.Fatalf("ForceFlush: %v", err)
			}
			spans := exp.GetSpans()
			if len(spans) != 1 {
				t.Fatalf("spans: got %d, want 1", len(spans))
			}
			attrs := spans[0].Resource.Attributes()
			for key, want := range map[string]string{
				"service.name":           tt.wantService,
				"service.version":        tt.wantVersion,
				"deployment.environment": tt.wantEnv,
			} {
				got, _ := attrValue(attrs, attribute.Key(key))
				if got != want {
					t.Errorf("%s: got %q, want %q", key, got, want)
				}
			}
		})
	}
}

// TestSetupSamplerFromEnv checks that OTEL_TRACES_SAMPLER and
// OTEL_TRACES_SAMPLER_ARG take effect when Config.Sampler is nil, and that
// Config.Sampler wins over them.
func TestSetupSamplerFromEnv(t *testing.T) {
	tests := []struct {
		name      string
		sampler   string
		arg       string
		cfg       sdktrace.Sampler
		wantSpans int
	}{
		{name: "default ratio 1 from config samples roots", wantSpans: 1},
		{name: "arg sets the default sampler's ratio", arg: "0", wantSpans: 0},
		{name: "always_off", sampler: "always_off", wantSpans: 0},
		{name: "parentbased_always_off", sampler: "parentbased_always_off", wantSpans: 0},
		{name: "traceidratio 0", sampler: "traceidratio", arg: "0", wantSpans: 0},
		{name: "traceidratio 1", sampler: "traceidratio", arg: "1", wantSpans: 1},
		{name: "config wins", sampler: "always_on", cfg: sdktrace.NeverSample(), wantSpans: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cleanEnv(t)
			t.Setenv("OTEL_TRACES_SAMPLER", tt.sampler)
			t.Setenv("OTEL_TRACES_SAMPLER_ARG", tt.arg)
			ctx := testContext(t)
			exp := tracetest.NewInMemoryExporter()
			p, err := telemetry.Setup(ctx, telemetry.Config{SpanExporter: exp, Sampler: tt.cfg, SampleRatio: 1})
			if err != nil {
				t.Fatalf("Setup: %v", err)
			}
			t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
			_, span := p.TracerProvider().Tracer("test").Start(ctx, "probe")
			span.End()
			if err := p.ForceFlush(ctx); err != nil {
				t.Fatalf("ForceFlush: %v", err)
			}
			if got := len(exp.GetSpans()); got != tt.wantSpans {
				t.Errorf("exported spans: got %d, want %d", got, tt.wantSpans)
			}
		})
	}
}

// received is one export request seen by a fake collector.
type received struct {
	req    *collectorpb.ExportTraceServiceRequest
	header string
}

type grpcCollector struct {
	collectorpb.UnimplementedTraceServiceServer
	got chan received
}

func (c *grpcCollector) Export(ctx context.Context, req *collectorpb.ExportTraceServiceRequest) (*collectorpb.ExportTraceServiceResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	c.got <- received{req: req, header: strings.Join(md.Get("x-tenant"), ",")}
	return &collectorpb.ExportTraceServiceResponse{}, nil
}

// startGRPCCollector serves the OTLP trace service on a loopback port.
func startGRPCCollector(t *testing.T) (addr string, got chan received) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	got = make(chan received, 16)
	srv := grpc.NewServer()
	collectorpb.RegisterTraceServiceServer(srv, &grpcCollector{got: got})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return lis.Addr().String(), got
}

// startHTTPCollector serves OTLP/HTTP protobuf trace exports at path on a
// loopback port.
func startHTTPCollector(t *testing.T, path string) (addr string, got chan received) {
	t.Helper()
	got = make(chan received, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != path {
			http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusNotFound)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var req collectorpb.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		got <- received{req: &req, header: r.Header.Get("x-tenant")}
		w.Header().Set("Content-Type", "application/x-protobuf")
		out, _ := proto.Marshal(&collectorpb.ExportTraceServiceResponse{})
		_, _ = w.Write(out)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), got
}

// TestSetupOTLPFromEnv runs the real OTLP exporters against fake collectors
// on loopback, configured only through the standard environment variables.
func TestSetupOTLPFromEnv(t *testing.T) {
	tests := []struct {
		name  string
		start func(t *testing.T) (addr string, got chan received)
		env   func(addr string) map[string]string
	}{
		{
			name:  "grpc, OTEL_EXPORTER_OTLP_ENDPOINT",
			start: startGRPCCollector,
			env: func(addr string) map[string]string {
				return map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://" + addr}
			},
		},
		{
			name:  "grpc, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
			start: startGRPCCollector,
			env: func(addr string) map[string]string {
				return map[string]string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://" + addr}
			},
		},
		{
			name:  "http/protobuf by default, OTEL_EXPORTER_OTLP_ENDPOINT",
			start: func(t *testing.T) (string, chan received) { return startHTTPCollector(t, "/v1/traces") },
			env: func(addr string) map[string]string {
				return map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://" + addr}
			},
		},
		{
			name:  "http/protobuf, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT with path",
			start: func(t *testing.T) (string, chan received) { return startHTTPCollector(t, "/custom/traces") },
			env: func(addr string) map[string]string {
				return map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://" + addr + "/custom/traces"}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cleanEnv(t)
			addr, got := tt.start(t)
			// No OTEL_TRACES_EXPORTER: an endpoint variable alone turns
			// OTLP export on, as the specification's default says.
			t.Setenv("OTEL_SERVICE_NAME", "greeter-under-test")
			t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=blue")
			for k, v := range tt.env(addr) {
				t.Setenv(k, v)
			}
			ctx := testContext(t)
			p, err := telemetry.Setup(ctx, telemetry.Config{SampleRatio: 1})
			if err != nil {
				t.Fatalf("Setup: %v", err)
			}
			_, span := p.TracerProvider().Tracer("test").Start(ctx, "otlp-probe")
			span.End()
			if err := p.Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}

			var rcv received
			select {
			case rcv = <-got:
			default:
				t.Fatalf("collector: got no export by the time Shutdown returned")
			}
			if rcv.header != "blue" {
				t.Errorf("x-tenant header: got %q, want %q", rcv.header, "blue")
			}
			var names []string
			var service string
			for _, rs := range rcv.req.GetResourceSpans() {
				for _, kv := range rs.GetResource().GetAttributes() {
					if kv.GetKey() == "service.name" {
						service = kv.GetValue().GetStringValue()
					}
				}
				for _, ss := range rs.GetScopeSpans() {
					for _, s := range ss.GetSpans() {
						names = append(names, s.GetName())
					}
				}
			}
			if service != "greeter-under-test" {
				t.Errorf("service.name: got %q, want %q", service, "greeter-under-test")
			}
			if len(names) != 1 || names[0] != "otlp-probe" {
				t.Errorf("spans: got %v, want [otlp-probe]", names)
			}
		})
	}
}

// TestMetricsHandler checks that /metrics serves the private registry and
// that nothing leaks into Prometheus' process-wide default registry.
func TestMetricsHandler(t *testing.T) {
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
	m.AddUploaded(ctx, 42)

	rec := httptest.NewRecorder()
	p.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: got status %d, want 200", rec.Code)
	}
	body := rec.Body.String()
	for _, want := range []string{"greeter_transfer_bytes_total{", `direction="upload"`, "go_goroutines ", "target_info{"} {
		if !strings.Contains(body, want) {
			t.Errorf("GET /metrics: body lacks %q", want)
		}
	}

	families, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatalf("DefaultGatherer.Gather: %v", err)
	}
	for _, f := range families {
		if strings.HasPrefix(f.GetName(), "greeter_") || strings.HasPrefix(f.GetName(), "rpc_") {
			t.Errorf("default registry has %s, want it untouched", f.GetName())
		}
	}

	var nilProviders *telemetry.Providers
	rec = httptest.NewRecorder()
	nilProviders.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("nil Providers GET /metrics: got status %d, want 404", rec.Code)
	}
}
