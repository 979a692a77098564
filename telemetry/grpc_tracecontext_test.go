package telemetry_test

import (
	"context"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/telemetry"
)

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
