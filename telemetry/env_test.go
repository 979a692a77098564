package telemetry_test

import (
	"context"
	"io"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/greeter/greeter/telemetry"
)

// TestSetupExporterDecision is the decision table of which exporter Setup
// builds: an explicit choice first, then OTEL_SDK_DISABLED, then
// OTEL_TRACES_EXPORTER, then an OTLP endpoint variable, then none. The
// endpoints point at a closed loopback port; no span is ended, so nothing is
// sent.
func TestSetupExporterDecision(t *testing.T) {
	const endpoint = "http://127.0.0.1:9"
	tests := []struct {
		name       string
		env        map[string]string
		cfg        telemetry.Config
		wantExp    string
		wantReason string
	}{
		{name: "nothing", wantExp: "none", wantReason: "nothing configured"},
		{name: "endpoint alone", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}, wantExp: "otlp", wantReason: "OTEL_EXPORTER_OTLP_ENDPOINT"},
		{name: "traces endpoint alone", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": endpoint}, wantExp: "otlp", wantReason: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"},
		{name: "blank endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}, wantExp: "none", wantReason: "nothing configured"},
		{name: "exporter variable wins over endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_TRACES_EXPORTER": "none"}, wantExp: "none", wantReason: "OTEL_TRACES_EXPORTER"},
		{name: "console with endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_TRACES_EXPORTER": "console"}, wantExp: "console", wantReason: "OTEL_TRACES_EXPORTER"},
		{name: "sdk disabled wins over endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_SDK_DISABLED": "true"}, wantExp: "none", wantReason: "OTEL_SDK_DISABLED=true"},
		{name: "sdk disabled wins over exporter variable", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "TRUE"}, wantExp: "none", wantReason: "OTEL_SDK_DISABLED=true"},
		{name: "sdk disabled false", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_SDK_DISABLED": "false"}, wantExp: "otlp", wantReason: "OTEL_EXPORTER_OTLP_ENDPOINT"},
		{name: "sdk disabled garbage means false", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_SDK_DISABLED": "yes"}, wantExp: "otlp", wantReason: "OTEL_EXPORTER_OTLP_ENDPOINT"},
		{name: "flag none wins over endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}, cfg: telemetry.Config{TracesExporter: "none"}, wantExp: "none", wantReason: "configured"},
		{name: "flag wins over sdk disabled", env: map[string]string{"OTEL_SDK_DISABLED": "true"}, cfg: telemetry.Config{TracesExporter: "stdout"}, wantExp: "stdout", wantReason: "configured"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cleanEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			ctx := testContext(t)
			tt.cfg.Stdout = io.Discard
			p, err := telemetry.Setup(ctx, tt.cfg)
			if err != nil {
				t.Fatalf("Setup: %v", err)
			}
			t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
			exp, reason, sampler := p.TracingDecision()
			if exp != tt.wantExp || reason != tt.wantReason {
				t.Errorf("decision: got %q because %q, want %q because %q", exp, reason, tt.wantExp, tt.wantReason)
			}
			wantTracing := tt.wantExp != "none"
			if got := p.TracingEnabled(); got != wantTracing {
				t.Errorf("TracingEnabled: got %v, want %v", got, wantTracing)
			}
			if (sampler != "") != wantTracing {
				t.Errorf("sampler %q with tracing %v; want a sampler exactly when tracing", sampler, wantTracing)
			}
			_, span := p.TracerProvider().Tracer("test").Start(ctx, "probe")
			if _, isSDK := p.TracerProvider().(*sdktrace.TracerProvider); isSDK != wantTracing {
				t.Errorf("SDK tracer provider: got %v, want %v (a no-op provider when off, so no sampling cost)", isSDK, wantTracing)
			}
			if !wantTracing && span.SpanContext().IsValid() {
				t.Error("tracing off, yet the span has a valid span context")
			}
		})
	}
}

// TestSetupSamplerDecision is the decision table of the sampler: Config
// first, then OTEL_TRACES_SAMPLER (with its argument), then
// parentbased_traceidratio with OTEL_TRACES_SAMPLER_ARG, Config.SampleRatio
// or DefaultSampleRatio.
func TestSetupSamplerDecision(t *testing.T) {
	tests := []struct {
		name    string
		sampler string
		arg     string
		cfg     telemetry.Config
		want    string
		wantErr string
	}{
		{name: "default", want: telemetry.RatioSampler(telemetry.DefaultSampleRatio).Description()},
		{name: "default ratio is a tenth", want: "ParentBased{root:TraceIDRatioBased{0.1}"},
		{name: "config ratio", cfg: telemetry.Config{SampleRatio: 1}, want: "ParentBased{root:TraceIDRatioBased{1}"},
		{name: "arg wins over config ratio", arg: "0.25", cfg: telemetry.Config{SampleRatio: 1}, want: "ParentBased{root:TraceIDRatioBased{0.25}"},
		{name: "sampler variable", sampler: "always_on", want: "AlwaysOnSampler"},
		{name: "sampler variable ignores config ratio", sampler: "parentbased_always_on", cfg: telemetry.Config{SampleRatio: 0.5}, want: "ParentBased{root:AlwaysOnSampler"},
		{name: "named ratio without arg is 1", sampler: "parentbased_traceidratio", want: "ParentBased{root:TraceIDRatioBased{1}"},
		{name: "named ratio with arg", sampler: "traceidratio", arg: "0.5", want: "TraceIDRatioBased{0.5}"},
		{name: "explicit sampler wins", sampler: "always_on", arg: "0.5", cfg: telemetry.Config{Sampler: sdktrace.NeverSample()}, want: "AlwaysOffSampler"},
		{name: "explicit ratio flag wins", sampler: "always_off", cfg: telemetry.Config{Sampler: telemetry.RatioSampler(0.3)}, want: "ParentBased{root:TraceIDRatioBased{0.3}"},
		{name: "bad arg for the default", arg: "lots", wantErr: "lots"},
		{name: "bad sampler", sampler: "sometimes", wantErr: "sometimes"},
		{name: "negative ratio", sampler: "traceidratio", arg: "-0.1", wantErr: "-0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cleanEnv(t)
			t.Setenv("OTEL_TRACES_SAMPLER", tt.sampler)
			t.Setenv("OTEL_TRACES_SAMPLER_ARG", tt.arg)
			tt.cfg.SpanExporter = tracetest.NewInMemoryExporter()
			p, err := telemetry.Setup(testContext(t), tt.cfg)
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
			_, _, got := p.TracingDecision()
			if !strings.HasPrefix(got, tt.want) {
				t.Errorf("sampler: got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestSetupDefaultRatioSamplesRoots checks that the default sampler records
// about a tenth of new root traces, and every child of a sampled parent.
func TestSetupDefaultRatioSamplesRoots(t *testing.T) {
	cleanEnv(t)
	exp := tracetest.NewInMemoryExporter()
	ctx := testContext(t)
	p, err := telemetry.Setup(ctx, telemetry.Config{SpanExporter: exp})
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	tr := p.TracerProvider().Tracer("test")
	const roots = 4000
	sampled := 0
	for range roots {
		rctx, root := tr.Start(ctx, "root")
		if root.SpanContext().IsSampled() {
			sampled++
			_, child := tr.Start(rctx, "child")
			if !child.SpanContext().IsSampled() {
				t.Fatal("child of a sampled root not sampled")
			}
			child.End()
		}
		root.End()
	}
	// Binomial(4000, 0.1): mean 400, standard deviation 19; the bounds are
	// more than 7 deviations away.
	if sampled < 260 || sampled > 540 {
		t.Errorf("sampled %d of %d roots, want about %d", sampled, roots, roots/10)
	}
	if err := p.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := len(exp.GetSpans()); got != 2*sampled {
		t.Errorf("exported %d spans, want %d (each sampled root and its child)", got, 2*sampled)
	}
}
