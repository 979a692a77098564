// Package telemetry gives the greeter server and its clients traces, metrics
// and trace-correlated logs without any global state.
//
// It guarantees:
//
//   - Tracing off costs nothing. Setup returns a no-op TracerProvider, which
//     makes no sampling decision at all, unless an exporter is chosen.
//   - Tracing on records a tenth of new root traces by default
//     (parentbased_traceidratio, DefaultSampleRatio), so small calls stay
//     cheap; a trusted caller's sampled trace is always followed.
//   - A slow or unreachable collector never blocks an RPC. Finished spans go
//     through a bounded queue; when it is full they are dropped and counted in
//     the greeter.trace.spans.dropped metric.
//   - Callers cannot take over tracing. ServerHandler parents a server span on
//     the caller's trace context only when the caller is a verified mTLS peer;
//     any other caller's context becomes a link on a new root span, so the
//     local sampler decides, and its baggage is dropped.
//   - Span status is Error only for server faults (Unknown, DeadlineExceeded,
//     Unimplemented, Internal, Unavailable, DataLoss), never for caller
//     mistakes such as InvalidArgument or Unauthenticated.
//   - Telemetry carries no secrets and bounded cardinality: no per-message
//     span events, no metadata on spans, no peer or server address labels on
//     metrics, metric labels only from fixed sets, and object names truncated
//     by spanattr.ObjectName.
//   - Metrics are served from a private Prometheus registry by
//     Providers.MetricsHandler, never from the process-wide default.
//
// # Configuration
//
// Setup reads Config first and the standard environment variables for what
// Config leaves empty. An explicit Config field (a command-line flag) wins
// over every variable.
//
//   - OTEL_SDK_DISABLED=true: no tracing at all (a no-op provider, no
//     exporter, no sampler), unless Config.TracesExporter asks for one.
//     Metrics are served only where the program mounts MetricsHandler (a
//     flag, such as greeterd's --metrics-listen), so they stay as that flag
//     says.
//   - OTEL_TRACES_EXPORTER: otlp, console (or stdout), none. One value only.
//   - OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: when
//     either is set and OTEL_TRACES_EXPORTER is not, the exporter is otlp,
//     as the specification's default says. With nothing configured at all
//     the exporter is none (the specification's default would send to
//     localhost:4318 from every process that has no collector).
//   - OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, OTEL_EXPORTER_OTLP_PROTOCOL: grpc
//     or http/protobuf (the default, as the specification says).
//   - OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT, _HEADERS, _TIMEOUT, _INSECURE,
//     _CERTIFICATE, _COMPRESSION: read by the OTLP exporters themselves.
//   - OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES: the resource; an explicit
//     Config.ServiceName wins over both.
//   - OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG: the sampler when
//     Config.Sampler is nil; OTEL_TRACES_SAMPLER_ARG alone sets the default
//     sampler's ratio. Setup rejects values the SDK would silently ignore.
//
// Providers.TracingDecision says what was chosen and why, for a start-up log
// line.
//
// # Clients
//
// The Go client package (github.com/greeter/greeter/client) stays free of
// OpenTelemetry. A program traces its calls by passing
// grpc.WithStatsHandler(ClientHandler(p)) in client.Options.DialOptions,
// with p from Setup, so the same rules above apply to it as to the greeter
// CLI, which does exactly that.
//
// OTEL_BSP_* are not used: the span queue is sized by Config.MaxQueueSize.
//
// # Instruments
//
// ServerHandler and ClientHandler use otelgrpc v0.72.0, which records one
// histogram per side, rpc.server.call.duration and rpc.client.call.duration
// (seconds), labelled rpc.method, rpc.system.name, rpc.response.status_code
// and, for failures, error.type. A view on the MeterProvider removes address
// and port labels from every instrument. NewMetrics adds the service's own
// instruments, and Setup adds greeter.trace.spans.dropped.
//
// Nothing here calls otel.SetTracerProvider, otel.SetMeterProvider or
// otel.SetTextMapPropagator; the program's main decides whether to.
package telemetry
