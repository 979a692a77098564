package telemetry_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/telemetry"
)

// otelEnv lists the environment variables Setup or the SDK read. Tests
// blank them so the machine's environment cannot change the outcome.
var otelEnv = []string{
	"OTEL_TRACES_EXPORTER", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG",
	"OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES",
	"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
	"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
	"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
	"OTEL_SEMCONV_STABILITY_OPT_IN",
}

func cleanEnv(t *testing.T) {
	t.Helper()
	for _, k := range otelEnv {
		t.Setenv(k, "")
	}
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// setupMemory returns providers that export spans to memory and metrics to
// a manual reader as well as to Prometheus.
func setupMemory(t *testing.T, cfg telemetry.Config) (*telemetry.Providers, *tracetest.InMemoryExporter, *sdkmetric.ManualReader) {
	t.Helper()
	cleanEnv(t)
	exp := tracetest.NewInMemoryExporter()
	reader := sdkmetric.NewManualReader()
	cfg.SpanExporter = exp
	cfg.MetricReaders = append(cfg.MetricReaders, reader)
	p, err := telemetry.Setup(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return p, exp, reader
}

// spansOfKind flushes p and returns the exported spans of kind.
func spansOfKind(t *testing.T, ctx context.Context, p *telemetry.Providers, exp *tracetest.InMemoryExporter, kind trace.SpanKind) tracetest.SpanStubs {
	t.Helper()
	if err := p.ForceFlush(ctx); err != nil {
		t.Fatalf("ForceFlush: %v", err)
	}
	var out tracetest.SpanStubs
	for _, s := range exp.GetSpans() {
		if s.SpanKind == kind {
			out = append(out, s)
		}
	}
	return out
}

func oneServerSpan(t *testing.T, ctx context.Context, p *telemetry.Providers, exp *tracetest.InMemoryExporter) tracetest.SpanStub {
	t.Helper()
	spans := spansOfKind(t, ctx, p, exp, trace.SpanKindServer)
	if len(spans) != 1 {
		t.Fatalf("server spans: got %d, want 1", len(spans))
	}
	return spans[0]
}

func attrValue(attrs []attribute.KeyValue, key attribute.Key) (string, bool) {
	for _, kv := range attrs {
		if kv.Key == key {
			return kv.Value.Emit(), true
		}
	}
	return "", false
}

// TestServerSpanStatus pins RELIABILITY O4: every RPC, failed or not, gets a
// server span with rpc.response.status_code, and the span status is Error
// only for server faults.
func TestServerSpanStatus(t *testing.T) {
	p, exp, _ := setupMemory(t, telemetry.Config{})
	ts := startServer(t, p, insecureCreds)
	client := pb.NewGreeterClient(ts.dial(t, nil, insecureCreds))

	tests := []struct {
		name       string
		code       codes.Code
		plainError bool
		wantStatus otelcodes.Code
		wantAttr   string
	}{
		{name: "OK", code: codes.OK, wantStatus: otelcodes.Unset, wantAttr: "OK"},
		{name: "InvalidArgument", code: codes.InvalidArgument, wantStatus: otelcodes.Unset, wantAttr: "INVALID_ARGUMENT"},
		{name: "Unauthenticated", code: codes.Unauthenticated, wantStatus: otelcodes.Unset, wantAttr: "UNAUTHENTICATED"},
		{name: "PermissionDenied", code: codes.PermissionDenied, wantStatus: otelcodes.Unset, wantAttr: "PERMISSION_DENIED"},
		{name: "NotFound", code: codes.NotFound, wantStatus: otelcodes.Unset, wantAttr: "NOT_FOUND"},
		{name: "AlreadyExists", code: codes.AlreadyExists, wantStatus: otelcodes.Unset, wantAttr: "ALREADY_EXISTS"},
		{name: "ResourceExhausted", code: codes.ResourceExhausted, wantStatus: otelcodes.Unset, wantAttr: "RESOURCE_EXHAUSTED"},
		{name: "FailedPrecondition", code: codes.FailedPrecondition, wantStatus: otelcodes.Unset, wantAttr: "FAILED_PRECONDITION"},
		{name: "Canceled", code: codes.Canceled, wantStatus: otelcodes.Unset, wantAttr: "CANCELLED"},
		{name: "Internal", code: codes.Internal, wantStatus: otelcodes.Error, wantAttr: "INTERNAL"},
		{name: "Unknown", code: codes.Unknown, wantStatus: otelcodes.Error, wantAttr: "UNKNOWN"},
		{name: "DataLoss", code: codes.DataLoss, wantStatus: otelcodes.Error, wantAttr: "DATA_LOSS"},
		{name: "Unavailable", code: codes.Unavailable, wantStatus: otelcodes.Error, wantAttr: "UNAVAILABLE"},
		// otelgrpc v0.72.0 also counts these as server faults.
		{name: "Unimplemented", code: codes.Unimplemented, wantStatus: otelcodes.Error, wantAttr: "UNIMPLEMENTED"},
		{name: "DeadlineExceeded", code: codes.DeadlineExceeded, wantStatus: otelcodes.Error, wantAttr: "DEADLINE_EXCEEDED"},
		{name: "plain Go error", plainError: true, wantStatus: otelcodes.Error, wantAttr: "UNKNOWN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			exp.Reset()
			name := strconv.Itoa(int(tt.code))
			if tt.plainError {
				name = "plain"
			}
			_, err := client.SayHello(ctx, &pb.HelloRequest{Name: name})
			if tt.plainError {
				if got := status.Code(err); got != codes.Unknown {
					t.Fatalf("SayHello: got code %v, want Unknown", got)
				}
			} else if got := status.Code(err); got != tt.code {
				t.Fatalf("SayHello: got code %v, want %v", got, tt.code)
			}
			<-ts.seen
			ts.waitEnd(t, ctx)

			span := oneServerSpan(t, ctx, p, exp)
			if span.Status.Code != tt.wantStatus {
				t.Errorf("span status: got %v, want %v", span.Status.Code, tt.wantStatus)
			}
			if got, _ := attrValue(span.Attributes, "rpc.response.status_code"); got != tt.wantAttr {
				t.Errorf("rpc.response.status_code: got %q, want %q", got, tt.wantAttr)
			}
			if got, _ := attrValue(span.Attributes, "rpc.method"); got != "Greeter/SayHello" {
				t.Errorf("rpc.method: got %q, want %q", got, "Greeter/SayHello")
			}
		})
	}
}

// TestRejectedByInterceptor pins RELIABILITY O4 for interceptors: an RPC
// that an interceptor rejects before the handler runs still has a server
// span with its status code, not marked Error, and without the token.
func TestRejectedByInterceptor(t *testing.T) {
	const token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJtYWxsb3J5In0.Zm9yZ2Vk"
	ctx := testContext(t)
	p, exp, _ := setupMemory(t, telemetry.Config{})
	reject := func(ctx context.Context, _ any, _ *grpc.UnaryServerInfo, _ grpc.UnaryHandler) (any, error) {
		return nil, status.Error(codes.Unauthenticated, "invalid token")
	}
	ts := startServerWith(t, p, insecureCreds, []grpc.ServerOption{grpc.UnaryInterceptor(reject)})
	client := pb.NewGreeterClient(ts.dial(t, nil, insecureCreds))
	callCtx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	if _, err := client.SayHello(callCtx, &pb.HelloRequest{Name: "OK"}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("SayHello: got %v, want Unauthenticated", err)
	}
	ts.waitEnd(t, ctx)
	select {
	case <-ts.seen:
		t.Fatalf("handler ran, want the interceptor to reject first")
	default:
	}
	span := oneServerSpan(t, ctx, p, exp)
	if span.Status.Code != otelcodes.Unset {
		t.Errorf("span status: got %v, want Unset", span.Status.Code)
	}
	if got, _ := attrValue(span.Attributes, "rpc.response.status_code"); got != "UNAUTHENTICATED" {
		t.Errorf("rpc.response.status_code: got %q, want UNAUTHENTICATED", got)
	}
	if text := spanText(span); strings.Contains(text, token) {
		t.Errorf("span contains the token:\n%s", text)
	}
}

// spanText gathers every string a span exports: name, status, attributes,
// events, links and resource.
func spanText(s tracetest.SpanStub) string {
	var b strings.Builder
	add := func(attrs []attribute.KeyValue) {
		for _, kv := range attrs {
			b.WriteString(string(kv.Key) + "=" + kv.Value.Emit() + "\n")
		}
	}
	b.WriteString(s.Name + "\n" + s.Status.Description + "\n")
	add(s.Attributes)
	for _, e := range s.Events {
		b.WriteString(e.Name + "\n")
		add(e.Attributes)
	}
	for _, l := range s.Links {
		add(l.Attributes)
	}
	if s.Resource != nil {
		add(s.Resource.Attributes())
	}
	return b.String()
}

// TestNoSecretsOrMessageEvents pins RELIABILITY O2 and O3: the bearer token
// and file bytes reach no span on either side, and streams of 100 messages
// record no per-message events.
func TestNoSecretsOrMessageEvents(t *testing.T) {
	const token = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXNlY3JldA"
	const fileMarker = "FILE-BYTES-MUST-NOT-LEAK"

	p, exp, _ := setupMemory(t, telemetry.Config{})
	ts := startServer(t, p, insecureCreds)
	client := pb.NewGreeterClient(ts.dial(t, p, insecureCreds))
	ctx := metadata.AppendToOutgoingContext(testContext(t),
		"authorization", "Bearer "+token, "x-api-key", token)

	if _, err := client.SayHello(ctx, &pb.HelloRequest{Name: "OK"}); err != nil {
		t.Fatalf("SayHello: %v", err)
	}
	<-ts.seen
	ts.waitEnd(t, ctx)

	up, err := client.UploadFile(ctx)
	if err != nil {
		t.Fatalf("UploadFile: %v", err)
	}
	if err := up.Send(&pb.UploadFileRequest{Request: &pb.UploadFileRequest_Metadata{Metadata: &pb.MetaData{Filename: "notes.txt"}}}); err != nil {
		t.Fatalf("Send metadata: %v", err)
	}
	for range 99 {
		if err := up.Send(&pb.UploadFileRequest{Request: &pb.UploadFileRequest_ChunkData{ChunkData: []byte(fileMarker)}}); err != nil {
			t.Fatalf("Send chunk: %v", err)
		}
	}
	if _, err := up.CloseAndRecv(); err != nil {
		t.Fatalf("CloseAndRecv: %v", err)
	}
	ts.waitEnd(t, ctx)

	down, err := client.DownloadFile(ctx, &pb.MetaData{Filename: "notes.txt"})
	if err != nil {
		t.Fatalf("DownloadFile: %v", err)
	}
	chunks := 0
	for {
		_, err := down.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("Recv: %v", err)
		}
		chunks++
	}
	if chunks != 100 {
		t.Fatalf("download chunks: got %d, want 100", chunks)
	}
	ts.waitEnd(t, ctx)

	for _, kind := range []trace.SpanKind{trace.SpanKindServer, trace.SpanKindClient} {
		spans := spansOfKind(t, ctx, p, exp, kind)
		if len(spans) != 3 {
			t.Fatalf("%v spans: got %d, want 3", kind, len(spans))
		}
		for _, s := range spans {
			if len(s.Events) != 0 {
				t.Errorf("%v span %q: got %d events, want 0", kind, s.Name, len(s.Events))
			}
			text := spanText(s)
			for _, secret := range []string{token, "eyJ", "Bearer", "authorization", "x-api-key", fileMarker} {
				if strings.Contains(text, secret) {
					t.Errorf("%v span %q contains %q:\n%s", kind, s.Name, secret, text)
				}
			}
		}
	}
}

// TestIncomingTraceContext pins RELIABILITY O1: only a verified mTLS peer
// may parent our span and pass baggage; any other caller's trace context
// becomes a link on a new trace.
func TestIncomingTraceContext(t *testing.T) {
	pki := newTestPKI(t)
	remoteTrace, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	remoteSpan, _ := trace.SpanIDFromHex("b7ad6b7169203331")
	traceparent := "00-" + remoteTrace.String() + "-" + remoteSpan.String() + "-01"

	tests := []struct {
		name        string
		serverCreds credentials.TransportCredentials
		clientCreds credentials.TransportCredentials
		opts        []telemetry.HandlerOption
		wantParent  bool
	}{
		{name: "plaintext caller", serverCreds: insecureCreds, clientCreds: insecureCreds},
		{name: "TLS caller without certificate", serverCreds: pki.serverCreds(), clientCreds: pki.clientCreds(false)},
		{name: "verified mTLS service", serverCreds: pki.serverCreds(), clientCreds: pki.clientCreds(true), wantParent: true},
		{
			name:        "mTLS service distrusted by WithTrustedCaller",
			serverCreds: pki.serverCreds(), clientCreds: pki.clientCreds(true),
			opts: []telemetry.HandlerOption{telemetry.WithTrustedCaller(func(context.Context) bool { return false })},
		},
		{
			name:        "plaintext caller trusted by WithTrustedCaller",
			serverCreds: insecureCreds, clientCreds: insecureCreds,
			opts:       []telemetry.HandlerOption{telemetry.WithTrustedCaller(func(context.Context) bool { return true })},
			wantParent: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			p, exp, _ := setupMemory(t, telemetry.Config{})
			ts := startServer(t, p, tt.serverCreds, tt.opts...)
			client := pb.NewGreeterClient(ts.dial(t, nil, tt.clientCreds))

			callCtx := metadata.AppendToOutgoingContext(ctx, "traceparent", traceparent, "baggage", "tenant=acme")
			if _, err := client.SayHello(callCtx, &pb.HelloRequest{Name: "OK"}); err != nil {
				t.Fatalf("SayHello: %v", err)
			}
			seen := <-ts.seen
			ts.waitEnd(t, ctx)
			span := oneServerSpan(t, ctx, p, exp)

			if got := seen.span.TraceID(); got != span.SpanContext.TraceID() {
				t.Errorf("handler's trace ID: got %v, want the server span's %v", got, span.SpanContext.TraceID())
			}
			if tt.wantParent {
				if got := span.Parent.TraceID(); got != remoteTrace {
					t.Errorf("parent trace ID: got %v, want %v", got, remoteTrace)
				}
				if got := span.Parent.SpanID(); got != remoteSpan {
					t.Errorf("parent span ID: got %v, want %v", got, remoteSpan)
				}
				if len(span.Links) != 0 {
					t.Errorf("links: got %d, want 0", len(span.Links))
				}
				if seen.baggage != "acme" {
					t.Errorf("handler's baggage tenant: got %q, want %q", seen.baggage, "acme")
				}
				return
			}
			if span.Parent.IsValid() {
				t.Errorf("parent: got %v, want none (new root)", span.Parent)
			}
			if span.SpanContext.TraceID() == remoteTrace {
				t.Errorf("trace ID: got the caller's %v, want a new one", remoteTrace)
			}
			if len(span.Links) != 1 {
				t.Fatalf("links: got %d, want 1", len(span.Links))
			}
			if got := span.Links[0].SpanContext; got.TraceID() != remoteTrace || got.SpanID() != remoteSpan {
				t.Errorf("link: got %v/%v, want %v/%v", got.TraceID(), got.SpanID(), remoteTrace, remoteSpan)
			}
			if seen.baggage != "" {
				t.Errorf("handler's baggage tenant: got %q, want none", seen.baggage)
			}
		})
	}
}

// TestCallerCannotForceSampling checks that a sampled=1 traceparent records
// a span only when a trusted caller sends it and the local sampler follows
// parents.
func TestCallerCannotForceSampling(t *testing.T) {
	pki := newTestPKI(t)
	const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tests := []struct {
		name        string
		clientCreds credentials.TransportCredentials
		wantSpans   int
	}{
		{name: "TLS caller without certificate", clientCreds: pki.clientCreds(false), wantSpans: 0},
		{name: "verified mTLS service", clientCreds: pki.clientCreds(true), wantSpans: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			p, exp, _ := setupMemory(t, telemetry.Config{Sampler: sdktrace.ParentBased(sdktrace.NeverSample())})
			ts := startServer(t, p, pki.serverCreds())
			client := pb.NewGreeterClient(ts.dial(t, nil, tt.clientCreds))
			callCtx := metadata.AppendToOutgoingContext(ctx, "traceparent", traceparent)
			if _, err := client.SayHello(callCtx, &pb.HelloRequest{Name: "OK"}); err != nil {
				t.Fatalf("SayHello: %v", err)
			}
			<-ts.seen
			ts.waitEnd(t, ctx)
			if got := len(spansOfKind(t, ctx, p, exp, trace.SpanKindServer)); got != tt.wantSpans {
				t.Errorf("recorded server spans: got %d, want %d", got, tt.wantSpans)
			}
		})
	}
}

// TestTracingOffIgnoresCallerContext checks that with tracing off a caller's
// traceparent and baggage do not reach the handler (so logs cannot be
// stamped with a caller-chosen trace ID) while RPC metrics are still
// recorded.
func TestTracingOffIgnoresCallerContext(t *testing.T) {
	cleanEnv(t)
	ctx := testContext(t)
	reader := sdkmetric.NewManualReader()
	p, err := telemetry.Setup(ctx, telemetry.Config{MetricReaders: []sdkmetric.Reader{reader}})
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	if p.TracingEnabled() {
		t.Fatalf("TracingEnabled: got true, want false with no exporter configured")
	}
	ts := startServer(t, p, insecureCreds, telemetry.WithTrustedCaller(func(context.Context) bool { return true }))
	client := pb.NewGreeterClient(ts.dial(t, p, insecureCreds))
	callCtx := metadata.AppendToOutgoingContext(ctx,
		"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "baggage", "tenant=acme")
	if _, err := client.SayHello(callCtx, &pb.HelloRequest{Name: "OK"}); err != nil {
		t.Fatalf("SayHello: %v", err)
	}
	seen := <-ts.seen
	ts.waitEnd(t, ctx)
	if seen.span.IsValid() {
		t.Errorf("handler's span context: got %v, want none", seen.span)
	}
	if seen.baggage != "" {
		t.Errorf("handler's baggage tenant: got %q, want none", seen.baggage)
	}
	if got := len(points(t, reader, "rpc.server.call.duration")); got != 1 {
		t.Errorf("rpc.server.call.duration series: got %d, want 1", got)
	}
}

// points returns the attribute sets of the histogram name's data points.
func points(t *testing.T, reader sdkmetric.Reader, name string) []attribute.Set {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatalf("Collect: %v", err)
	}
	var sets []attribute.Set
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			h, ok := m.Data.(metricdata.Histogram[float64])
			if !ok {
				t.Fatalf("%s: got %T, want a float64 histogram", name, m.Data)
			}
			for _, dp := range h.DataPoints {
				sets = append(sets, dp.Attributes)
			}
		}
	}
	return sets
}

func keys(set attribute.Set) []string {
	var ks []string
	for _, kv := range set.ToSlice() {
		ks = append(ks, string(kv.Key))
	}
	slices.Sort(ks)
	return ks
}

// TestRPCMetricLabels pins RELIABILITY O3 for metrics: otelgrpc v0.72.0
// records rpc.server.call.duration and rpc.client.call.duration labelled
// only by method, system, status code and, for failures, error type; no
// address or port, and no server series for method names the server does
// not serve.
func TestRPCMetricLabels(t *testing.T) {
	pki := newTestPKI(t)
	ctx := testContext(t)
	p, _, reader := setupMemory(t, telemetry.Config{})
	ts := startServer(t, p, pki.serverCreds())
	conn := ts.dial(t, p, pki.clientCreds(true))
	client := pb.NewGreeterClient(conn)

	for _, name := range []string{"OK", strconv.Itoa(int(codes.NotFound)), strconv.Itoa(int(codes.Internal))} {
		_, _ = client.SayHello(ctx, &pb.HelloRequest{Name: name})
		<-ts.seen
		ts.waitEnd(t, ctx)
	}
	for _, method := range []string{"/Greeter/NoSuchMethod", "/attacker.Chosen/Name1"} {
		err := conn.Invoke(ctx, method, &pb.HelloRequest{}, &pb.StringResponse{})
		if got := status.Code(err); got != codes.Unimplemented {
			t.Fatalf("Invoke(%s): got %v, want Unimplemented", method, got)
		}
	}

	allowed := []string{"error.type", "rpc.method", "rpc.response.status_code", "rpc.system.name"}
	tests := []struct {
		metric string
		want   map[string][]string // status code of Greeter/SayHello -> sorted label keys
	}{
		{
			metric: "rpc.server.call.duration",
			want: map[string][]string{
				"OK":        {"rpc.method", "rpc.response.status_code", "rpc.system.name"},
				"NOT_FOUND": {"rpc.method", "rpc.response.status_code", "rpc.system.name"},
				"INTERNAL":  {"error.type", "rpc.method", "rpc.response.status_code", "rpc.system.name"},
			},
		},
		{
			metric: "rpc.client.call.duration",
			want: map[string][]string{
				"OK":        {"rpc.method", "rpc.response.status_code", "rpc.system.name"},
				"NOT_FOUND": {"error.type", "rpc.method", "rpc.response.status_code", "rpc.system.name"},
				"INTERNAL":  {"error.type", "rpc.method", "rpc.response.status_code", "rpc.system.name"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.metric, func(t *testing.T) {
			got := map[string][]string{}
			for _, set := range points(t, reader, tt.metric) {
				for _, k := range keys(set) {
					if !slices.Contains(allowed, k) {
						t.Errorf("label %q in %s, want only %v", k, set.Encoded(attribute.DefaultEncoder()), allowed)
					}
				}
				method, _ := set.Value("rpc.method")
				if method.AsString() != "Greeter/SayHello" {
					// The client labels the method it called; the server must
					// not create series for methods it does not serve.
					if tt.metric == "rpc.server.call.duration" {
						t.Errorf("server series for method %q, want only Greeter/SayHello", method.AsString())
					}
					continue
				}
				code, _ := set.Value("rpc.response.status_code")
				if _, dup := got[code.AsString()]; dup {
					t.Errorf("code %s: two series for Greeter/SayHello", code.AsString())
				}
				got[code.AsString()] = keys(set)
			}
			if len(got) != len(tt.want) {
				t.Errorf("Greeter/SayHello series: got %v, want %v", got, tt.want)
			}
			for code, want := range tt.want {
				if !slices.Equal(got[code], want) {
					t.Errorf("%s labels: got %v, want %v", code, got[code], want)
				}
			}
		})
	}
}

// TestHandlerFilter checks that WithFilter leaves RPCs out of tracing.
func TestHandlerFilter(t *testing.T) {
	ctx := testContext(t)
	p, exp, _ := setupMemory(t, telemetry.Config{})
	ts := startServer(t, p, insecureCreds, telemetry.WithFilter(func(method string) bool {
		return method != pb.Greeter_SayHello_FullMethodName
	}))
	client := pb.NewGreeterClient(ts.dial(t, nil, insecureCreds))
	if _, err := client.SayHello(ctx, &pb.HelloRequest{Name: "OK"}); err != nil {
		t.Fatalf("SayHello: %v", err)
	}
	<-ts.seen
	ts.waitEnd(t, ctx)
	if _, err := client.StatFile(ctx, &pb.MetaData{Filename: "x"}); status.Code(err) != codes.Unimplemented {
		t.Fatalf("StatFile: got %v, want Unimplemented", err)
	}
	ts.waitEnd(t, ctx)
	spans := spansOfKind(t, ctx, p, exp, trace.SpanKindServer)
	var names []string
	for _, s := range spans {
		names = append(names, s.Name)
	}
	if want := []string{"Greeter/StatFile"}; !slices.Equal(names, want) {
		t.Errorf("server spans: got %v, want %v", names, want)
	}
}
