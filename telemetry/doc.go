// Package telemetry gives the greeter server and its clients traces, metrics
// and trace-correlated logs without any global state.
//
// It guarantees:
//
//   - Tracing off costs nothing. Setup returns a no-op TracerProvider unless an
//     exporter is configured (Config.TracesExporter, OTEL_TRACES_EXPORTER or
//     Config.SpanExporter).
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
//     by ObjectAttr.
//   - Metrics are served from a private Prometheus registry by
//     Providers.MetricsHandler, never from the process-wide default.
//
// Nothing here calls otel.SetTracerProvider, otel.SetMeterProvider or
// otel.SetTextMapPropagator; the program's main decides whether to.
package telemetry
