package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/greeter/greeter/telemetry"
)

// telemetryConfig holds the tracing flags. The OTEL_* variables fill in what
// they leave unset (see package telemetry); a flag given on the command line,
// in the config file or as GREETERD_* wins over them.
type telemetryConfig struct {
	tracesExporter   string
	traceSampleRatio float64
}

func (c *telemetryConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.tracesExporter, "traces-exporter", "", "span exporter: otlp, stdout or none (default: none if OTEL_SDK_DISABLED=true, else $OTEL_TRACES_EXPORTER, else otlp if an OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT is set, else none)")
	fs.Float64Var(&c.traceSampleRatio, "trace-sample-ratio", telemetry.DefaultSampleRatio, "fraction of new root traces recorded (parentbased_traceidratio; a trusted caller's sampled trace is always followed); when not given, OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG apply")
}

// setup builds the providers. fs tells whether --trace-sample-ratio was
// given; only then does it override the OTEL_TRACES_SAMPLER variables.
func (c *telemetryConfig) setup(ctx context.Context, fs *flag.FlagSet, stdout io.Writer, log *slog.Logger) (*telemetry.Providers, error) {
	cfg := telemetry.Config{TracesExporter: c.tracesExporter, ServiceName: "greeterd", Stdout: stdout}
	if isSet(fs, "trace-sample-ratio") {
		if !(c.traceSampleRatio >= 0 && c.traceSampleRatio <= 1) {
			return nil, usageError{fmt.Errorf("--trace-sample-ratio must be between 0 and 1, got %v", c.traceSampleRatio)}
		}
		cfg.Sampler = telemetry.RatioSampler(c.traceSampleRatio)
	}
	tel, err := telemetry.Setup(ctx, cfg)
	if err != nil {
		return nil, usageError{fmt.Errorf("telemetry: %v", err)}
	}
	exporter, reason, sampler := tel.TracingDecision()
	attrs := []any{slog.String("exporter", exporter), slog.String("because", reason)}
	if sampler != "" {
		attrs = append(attrs, slog.String("sampler", sampler))
	}
	log.Info("tracing", attrs...)
	return tel, nil
}

// isSet reports whether the flag name was given (on the command line, in the
// config file or in the environment, which envflag applies with fs.Set).
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// newLogger returns greeterd's logger and the func that writes out what it
// holds. Records are formatted and written by a telemetry.LogBuffer: the
// access log (a record per RPC) then costs an RPC a queue send, not a
// write(2) and not the formatting's stack. A record reaches stderr within
// telemetry.DefaultLogFlushInterval, an ERROR record at once, and all of
// them before greeterd exits. Buffering was chosen over logging OK calls at
// DEBUG because the access log of successful uploads and downloads is the
// audit trail of who moved which file.
func newLogger(w io.Writer, format, level string) (*slog.Logger, func(), error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, nil, usageError{fmt.Errorf("--log-level: %v", err)}
	}
	opts := &slog.HandlerOptions{Level: lv}
	var newHandler func(io.Writer) slog.Handler
	switch format {
	case "text":
		newHandler = func(w io.Writer) slog.Handler { return telemetry.NewLogHandler(slog.NewTextHandler(w, opts)) }
	case "json":
		newHandler = func(w io.Writer) slog.Handler { return telemetry.NewLogHandler(slog.NewJSONHandler(w, opts)) }
	default:
		return nil, nil, usageError{fmt.Errorf("--log-format must be text or json, got %q", format)}
	}
	buf, h := telemetry.NewLogBuffer(w, telemetry.DefaultLogFlushInterval, newHandler)
	return slog.New(h), func() { _ = buf.Close() }, nil
}
