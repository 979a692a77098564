package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// Names of span exporters accepted by Config.TracesExporter and by the
// OTEL_TRACES_EXPORTER environment variable. "console" is accepted as an alias
// of ExporterStdout.
const (
	ExporterNone   = "none"
	ExporterOTLP   = "otlp"
	ExporterStdout = "stdout"
)

// OTLP transport protocols accepted by Config.OTLPProtocol and by the
// OTEL_EXPORTER_OTLP_TRACES_PROTOCOL and OTEL_EXPORTER_OTLP_PROTOCOL
// environment variables.
const (
	ProtocolGRPC         = "grpc"
	ProtocolHTTPProtobuf = "http/protobuf"
)

// Defaults for Config.
const (
	DefaultServiceName  = "greeter"
	DefaultMaxQueueSize = 2048
	// DefaultOTLPProtocol is the OpenTelemetry specification's default.
	DefaultOTLPProtocol = ProtocolHTTPProtobuf
)

// ScopeName is the instrumentation scope of the meters and tracers this
// package creates.
const ScopeName = "github.com/greeter/greeter/telemetry"

// batchSize is both the queue and the batch size of the SDK batch span
// processor behind the package's own bounded queue.
const batchSize = 512

// Config selects what Setup builds. The zero value is valid: tracing off,
// metrics on, service name "greeter", unless the standard OTEL_* environment
// variables say otherwise. A non-empty field wins over the environment.
type Config struct {
	// ServiceName becomes the service.name resource attribute. Empty means
	// OTEL_SERVICE_NAME, then service.name in OTEL_RESOURCE_ATTRIBUTES, then
	// DefaultServiceName.
	ServiceName string
	// ServiceVersion becomes the service.version resource attribute when
	// set.
	ServiceVersion string

	// TracesExporter is ExporterNone, ExporterOTLP or ExporterStdout, and
	// wins over every environment variable. Empty means: none when
	// OTEL_SDK_DISABLED is true, else OTEL_TRACES_EXPORTER, else otlp when
	// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is
	// set, else ExporterNone (see tracesExporterName). The OTLP exporters
	// read their endpoint, headers, TLS files, timeout and compression from
	// the standard OTEL_EXPORTER_OTLP_* variables themselves.
	TracesExporter string
	// OTLPProtocol is ProtocolGRPC or ProtocolHTTPProtobuf. Empty means
	// OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, then OTEL_EXPORTER_OTLP_PROTOCOL,
	// then DefaultOTLPProtocol.
	OTLPProtocol string
	// Stdout receives spans when TracesExporter is ExporterStdout. Nil means
	// os.Stdout.
	Stdout io.Writer
	// SpanExporter, when set, receives the spans and TracesExporter is
	// ignored. Tests pass an in-memory exporter here.
	SpanExporter sdktrace.SpanExporter

	// Sampler decides which new traces are recorded, and wins over the
	// environment. Nil means OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG
	// when set, else parentbased_traceidratio with SampleRatio (see
	// newSampler). Setup rejects values of those variables that the SDK
	// would silently ignore.
	Sampler sdktrace.Sampler
	// SampleRatio is the default sampler's ratio of new root traces, used
	// when neither Sampler nor OTEL_TRACES_SAMPLER_ARG gives one. Zero means
	// DefaultSampleRatio; a program that wants every root sampled unless
	// told otherwise (the CLI: one trace per command) passes 1.
	SampleRatio float64
	// MaxQueueSize bounds the finished spans waiting for export. When the
	// queue is full, new spans are dropped and counted. Zero means
	// DefaultMaxQueueSize.
	MaxQueueSize int

	// MetricReaders are extra readers for the MeterProvider, for example an
	// OTLP periodic reader or, in tests, a ManualReader. The Prometheus
	// reader is always present.
	MetricReaders []sdkmetric.Reader
}

// Providers holds the telemetry pipelines built by Setup. A nil *Providers is
// valid and provides no-op telemetry.
type Providers struct {
	tracerProvider trace.TracerProvider
	meterProvider  metric.MeterProvider
	tracing        bool
	exporter       string
	exporterReason string
	sampler        string
	registry       *prometheus.Registry

	shutdownOnce sync.Once
	shutdownErr  error
	shutdown     []func(context.Context) error
}

// Setup builds a TracerProvider, a MeterProvider exporting to a private
// Prometheus registry, and the resource describing this service. It does not
// install anything globally. Call Shutdown to flush and release them.
func Setup(ctx context.Context, cfg Config) (_ *Providers, err error) {
	p := &Providers{}
	defer func() {
		if err != nil {
			err = errors.Join(err, p.Shutdown(ctx))
		}
	}()

	res, err := newResource(ctx, cfg)
	if err != nil {
		return nil, err
	}

	p.registry = prometheus.NewRegistry()
	if err := p.registry.Register(collectors.NewGoCollector()); err != nil {
		return nil, fmt.Errorf("telemetry: register Go collector: %w", err)
	}
	if err := p.registry.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, fmt.Errorf("telemetry: register process collector: %w", err)
	}
	promReader, err := otelprom.New(otelprom.WithRegisterer(p.registry))
	if err != nil {
		return nil, fmt.Errorf("telemetry: prometheus exporter: %w", err)
	}
	mopts := []sdkmetric.Option{
		sdkmetric.WithResource(res),
		sdkmetric.WithReader(promReader),
		sdkmetric.WithView(addressFreeView()),
	}
	for _, r := range cfg.MetricReaders {
		mopts = append(mopts, sdkmetric.WithReader(r))
	}
	mp := sdkmetric.NewMeterProvider(mopts...)
	p.meterProvider = mp
	p.shutdown = append(p.shutdown, mp.Shutdown)

	exporter, err := p.newSpanExporter(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if exporter == nil {
		// No exporter, no SDK tracer provider: spans cost nothing, not even
		// a sampling decision.
		p.tracerProvider = tracenoop.NewTracerProvider()
		return p, nil
	}

	sampler, err := newSampler(cfg, os.Getenv)
	if err != nil {
		// The exporter has not been handed to a processor yet.
		return nil, errors.Join(err, exporter.Shutdown(ctx))
	}
	p.sampler = sampler.Description()
	topts := []sdktrace.TracerProviderOption{sdktrace.WithSampler(sampler)}
	dropped, err := mp.Meter(ScopeName).Int64Counter("greeter.trace.spans.dropped",
		metric.WithUnit("{span}"),
		metric.WithDescription("Finished spans dropped because the export queue was full."))
	if err != nil {
		return nil, errors.Join(fmt.Errorf("telemetry: dropped-span counter: %w", err), exporter.Shutdown(ctx))
	}
	// Exported as 0 from the start, so that dashboards and alerts see a
	// series before the first drop rather than no data.
	dropped.Add(ctx, 0)
	queueSize := cfg.MaxQueueSize
	if queueSize <= 0 {
		queueSize = DefaultMaxQueueSize
	}
	batcher := sdktrace.NewBatchSpanProcessor(exporter,
		sdktrace.WithBlocking(),
		sdktrace.WithMaxQueueSize(batchSize),
		sdktrace.WithMaxExportBatchSize(batchSize))
	topts = append(topts,
		sdktrace.WithResource(res),
		sdktrace.WithSpanProcessor(newDroppingProcessor(batcher, queueSize, dropped)))
	tp := sdktrace.NewTracerProvider(topts...)
	p.tracerProvider = tp
	p.tracing = true
	// Spans are flushed before the meter provider stops, so the last drops
	// are still counted.
	p.shutdown = append([]func(context.Context) error{tp.Shutdown}, p.shutdown...)
	return p, nil
}

// TracerProvider returns the provider of tracers: an SDK provider when
// tracing is on, a no-op one otherwise.
func (p *Providers) TracerProvider() trace.TracerProvider {
	if p == nil || p.tracerProvider == nil {
		return tracenoop.NewTracerProvider()
	}
	return p.tracerProvider
}

// MeterProvider returns the provider of meters, whose metrics are served by
// MetricsHandler.
func (p *Providers) MeterProvider() metric.MeterProvider {
	if p == nil || p.meterProvider == nil {
		return metricnoop.NewMeterProvider()
	}
	return p.meterProvider
}

// Propagator returns the W3C trace-context and baggage propagator when
// tracing is on, and a propagator that carries nothing when it is off.
func (p *Providers) Propagator() propagation.TextMapPropagator {
	if !p.TracingEnabled() {
		return propagation.NewCompositeTextMapPropagator()
	}
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// TracingEnabled reports whether spans are recorded and exported.
func (p *Providers) TracingEnabled() bool {
	return p != nil && p.tracing
}

// TracingDecision describes, for a start-up log line, which exporter Setup
// chose and why (for example "otlp" because of
// "OTEL_EXPORTER_OTLP_ENDPOINT") and the sampler's description, empty when
// tracing is off.
func (p *Providers) TracingDecision() (exporter, reason, sampler string) {
	if p == nil {
		return ExporterNone, "", ""
	}
	return p.exporter, p.exporterReason, p.sampler
}

// MetricsHandler returns an http.Handler serving the private registry in the
// Prometheus exposition formats. Mount it at /metrics.
func (p *Providers) MetricsHandler() http.Handler {
	if p == nil || p.registry == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(p.registry, promhttp.HandlerOpts{})
}

// ForceFlush exports the spans ended so far, waiting no longer than ctx
// allows. Tracing off makes it a no-op.
func (p *Providers) ForceFlush(ctx context.Context) error {
	if tp, ok := p.TracerProvider().(*sdktrace.TracerProvider); ok {
		return tp.ForceFlush(ctx)
	}
	return nil
}

// Shutdown flushes buffered spans and stops the providers. It waits no
// longer than ctx allows and may be called more than once; later calls
// return the first result.
func (p *Providers) Shutdown(ctx context.Context) error {
	if p == nil {
		return nil
	}
	p.shutdownOnce.Do(func() {
		var errs []error
		for _, f := range p.shutdown {
			errs = append(errs, f(ctx))
		}
		p.shutdownErr = errors.Join(errs...)
	})
	return p.shutdownErr
}

// newResource describes the service. Precedence, lowest first: defaults,
// OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME, explicit Config fields.
func newResource(ctx context.Context, cfg Config) (*resource.Resource, error) {
	fromEnv, err := resource.New(ctx, resource.WithTelemetrySDK(), resource.WithFromEnv())
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource from environment: %w", err)
	}
	res, err := resource.Merge(resource.NewSchemaless(semconv.ServiceName(DefaultServiceName)), fromEnv)
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	var explicit []attribute.KeyValue
	if cfg.ServiceName != "" {
		explicit = append(explicit, semconv.ServiceName(cfg.ServiceName))
	}
	if cfg.ServiceVersion != "" {
		explicit = append(explicit, semconv.ServiceVersion(cfg.ServiceVersion))
	}
	res, err = resource.Merge(res, resource.NewSchemaless(explicit...))
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	return res, nil
}

// newSpanExporter returns the configured exporter, or nil when tracing is
// off, and records the decision in p.
func (p *Providers) newSpanExporter(ctx context.Context, cfg Config) (sdktrace.SpanExporter, error) {
	if cfg.SpanExporter != nil {
		p.exporter, p.exporterReason = "custom", "Config.SpanExporter"
		return cfg.SpanExporter, nil
	}
	name, reason := tracesExporterName(cfg, os.Getenv)
	p.exporter, p.exporterReason = name, reason
	switch name {
	case ExporterNone:
		return nil, nil
	case ExporterStdout, "console":
		w := cfg.Stdout
		if w == nil {
			w = os.Stdout
		}
		exp, err := stdouttrace.New(stdouttrace.WithWriter(w))
		if err != nil {
			return nil, fmt.Errorf("telemetry: stdout exporter: %w", err)
		}
		return exp, nil
	case ExporterOTLP:
		protocol := otlpProtocol(cfg, os.Getenv)
		var (
			exp sdktrace.SpanExporter
			err error
		)
		switch strings.ToLower(protocol) {
		case ProtocolGRPC:
			exp, err = otlptracegrpc.New(ctx)
		case ProtocolHTTPProtobuf:
			exp, err = otlptracehttp.New(ctx)
		default:
			return nil, fmt.Errorf("telemetry: unsupported OTLP protocol %q (want %q or %q)", protocol, ProtocolGRPC, ProtocolHTTPProtobuf)
		}
		if err != nil {
			return nil, fmt.Errorf("telemetry: OTLP %s exporter: %w", protocol, err)
		}
		return exp, nil
	default:
		return nil, fmt.Errorf("telemetry: unsupported traces exporter %q (want %q, %q or %q)", name, ExporterNone, ExporterOTLP, ExporterStdout)
	}
}

// addressLabels are attribute keys naming a network peer or server. They
// are dropped from every metric: a client-controlled address multiplies time
// series (CVE-2023-47108), and on the client side otelgrpc v0.72.0 still
// labels rpc.client.call.duration with server.address and server.port.
var addressLabels = []attribute.Key{
	"server.address", "server.port",
	"client.address", "client.port",
	"network.peer.address", "network.peer.port",
	"network.local.address", "network.local.port",
	"net.peer.name", "net.peer.port", "net.peer.ip",
	"net.sock.peer.addr", "net.sock.peer.port",
	"net.host.name", "net.host.port",
}

// addressFreeView removes addressLabels from every instrument's attributes.
func addressFreeView() sdkmetric.View {
	return sdkmetric.NewView(
		sdkmetric.Instrument{Name: "*"},
		sdkmetric.Stream{AttributeFilter: attribute.NewDenyKeysFilter(addressLabels...)},
	)
}

func firstNonEmpty(values ...string) string {
	for _, v := range values {
		if v = strings.TrimSpace(v); v != "" {
			return v
		}
	}
	return ""
}
