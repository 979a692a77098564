package telemetry

import (
	"fmt"
	"strconv"
	"strings"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// DefaultSampleRatio is the fraction of new root traces recorded when
// neither Config nor OTEL_TRACES_SAMPLER chooses a sampler. One in ten keeps
// a recorded span's cost (attributes, allocation, export) off nine calls in
// ten, which is what makes the full chain cheap for small calls, and still
// records hundreds of traces a minute at a few requests per second. The
// sampler is parent-based, so a trusted caller that samples its own trace
// (the greeter CLI samples every command) still gets the server's spans.
const DefaultSampleRatio = 0.1

// Environment variables read by Setup itself. The OTLP exporters read the
// other OTEL_EXPORTER_OTLP_* variables on their own.
const (
	envSDKDisabled         = "OTEL_SDK_DISABLED"
	envTracesExporter      = "OTEL_TRACES_EXPORTER"
	envOTLPEndpoint        = "OTEL_EXPORTER_OTLP_ENDPOINT"
	envOTLPTracesEndpoint  = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	envTracesSampler       = "OTEL_TRACES_SAMPLER"
	envTracesSamplerArg    = "OTEL_TRACES_SAMPLER_ARG"
	envOTLPProtocol        = "OTEL_EXPORTER_OTLP_PROTOCOL"
	envOTLPTracesProtocol  = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	samplerParentRatioName = "parentbased_traceidratio"
)

// tracesExporterName decides which span exporter Setup builds, and why.
// In order, the first that applies wins:
//
//  1. Config.TracesExporter (greeterd's --traces-exporter): an explicit
//     choice on the command line wins over every variable, including
//     OTEL_SDK_DISABLED.
//  2. OTEL_SDK_DISABLED=true: none, as the specification says.
//  3. OTEL_TRACES_EXPORTER.
//  4. OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT set:
//     otlp, the specification's default exporter.
//  5. Nothing configured: none. The specification's default would be otlp
//     to localhost:4318, which would make every greeter process that has
//     no collector retry exports forever; naming an endpoint turns it on.
func tracesExporterName(cfg Config, getenv func(string) string) (name, reason string) {
	if v := strings.TrimSpace(cfg.TracesExporter); v != "" {
		return strings.ToLower(v), "configured"
	}
	if sdkDisabled(getenv) {
		return ExporterNone, envSDKDisabled + "=true"
	}
	if v := strings.TrimSpace(getenv(envTracesExporter)); v != "" {
		return strings.ToLower(v), envTracesExporter
	}
	for _, k := range []string{envOTLPTracesEndpoint, envOTLPEndpoint} {
		if strings.TrimSpace(getenv(k)) != "" {
			return ExporterOTLP, k
		}
	}
	return ExporterNone, "nothing configured"
}

// sdkDisabled reports whether OTEL_SDK_DISABLED is true. The specification
// makes any other value, including an unparsable one, mean false.
func sdkDisabled(getenv func(string) string) bool {
	return strings.EqualFold(strings.TrimSpace(getenv(envSDKDisabled)), "true")
}

// newSampler decides which sampler the TracerProvider uses:
//
//  1. Config.Sampler, when set.
//  2. OTEL_TRACES_SAMPLER (with OTEL_TRACES_SAMPLER_ARG for the ratio
//     samplers, 1.0 when absent, as the specification says), when set.
//  3. parentbased_traceidratio with OTEL_TRACES_SAMPLER_ARG when set, else
//     Config.SampleRatio when positive, else DefaultSampleRatio.
//
// The samplers are built here rather than left to the SDK's own reading of
// the variables, because the SDK reports a bad value to the global error
// handler and then samples everything: a typo would turn 1 % into 100 %.
func newSampler(cfg Config, getenv func(string) string) (sdktrace.Sampler, error) {
	if cfg.Sampler != nil {
		return cfg.Sampler, nil
	}
	name := strings.ToLower(strings.TrimSpace(getenv(envTracesSampler)))
	arg := strings.TrimSpace(getenv(envTracesSamplerArg))
	ratio := func(def float64) (float64, error) {
		if arg == "" {
			return def, nil
		}
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil || r < 0 || r > 1 {
			return 0, fmt.Errorf("telemetry: %s %q is not a ratio between 0 and 1", envTracesSamplerArg, arg)
		}
		return r, nil
	}
	switch name {
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "traceidratio":
		r, err := ratio(1)
		if err != nil {
			return nil, err
		}
		return sdktrace.TraceIDRatioBased(r), nil
	case samplerParentRatioName:
		r, err := ratio(1)
		if err != nil {
			return nil, err
		}
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(r)), nil
	case "":
		def := DefaultSampleRatio
		if cfg.SampleRatio > 0 {
			def = min(cfg.SampleRatio, 1)
		}
		r, err := ratio(def)
		if err != nil {
			return nil, err
		}
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(r)), nil
	default:
		return nil, fmt.Errorf("telemetry: unsupported %s %q", envTracesSampler, name)
	}
}

// RatioSampler returns the default sampler, parentbased_traceidratio, with
// ratio: a trusted parent's decision is kept, and that fraction of new root
// traces is recorded. greeterd's --trace-sample-ratio, when given, passes
// it as Config.Sampler.
func RatioSampler(ratio float64) sdktrace.Sampler {
	return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))
}

// otlpProtocol is the OTLP transport: Config.OTLPProtocol, then
// OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, then OTEL_EXPORTER_OTLP_PROTOCOL, then
// DefaultOTLPProtocol.
func otlpProtocol(cfg Config, getenv func(string) string) string {
	return firstNonEmpty(cfg.OTLPProtocol, getenv(envOTLPTracesProtocol), getenv(envOTLPProtocol), DefaultOTLPProtocol)
}
