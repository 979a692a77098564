package telemetry_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/telemetry"
)

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

// TestServerDurationAsOtelgrpc runs one server with both ServerHandler and a
// plain otelgrpc server handler, each on its own MeterProvider, and checks
// that ServerHandler's rpc.server.call.duration (attribute sets built once
// per method) is what otelgrpc records: same scope, unit, description,
// buckets, series and counts.
func TestServerDurationAsOtelgrpc(t *testing.T) {
	pki := newTestPKI(t)
	ctx := testContext(t)
	p, _, reader := setupMemory(t, telemetry.Config{})
	ref, _, refReader := setupMemory(t, telemetry.Config{})
	plain := otelgrpc.NewServerHandler(otelgrpc.WithMeterProvider(ref.MeterProvider()), otelgrpc.WithTracerProvider(tracenoop.NewTracerProvider()))
	// grpc calls the plain handler after ServerHandler: wait for its End too.
	plainEnds := make(chan struct{}, 16)
	ts := startServerWith(t, p, pki.serverCreds(), []grpc.ServerOption{grpc.StatsHandler(endSignal{Handler: plain, ends: plainEnds})})
	client := pb.NewGreeterClient(ts.dial(t, nil, pki.clientCreds(true)))
	for _, name := range []string{"OK", "OK", strconv.Itoa(int(codes.NotFound)), strconv.Itoa(int(codes.Internal)), strconv.Itoa(int(codes.Unavailable)), "OK"} {
		_, _ = client.SayHello(ctx, &pb.HelloRequest{Name: name})
		<-ts.seen
		ts.waitEnd(t, ctx)
		select {
		case <-plainEnds:
		case <-ctx.Done():
			t.Fatal("the plain otelgrpc handler saw no End")
		}
	}
	collect := func(r sdkmetric.Reader) (instrumentation.Scope, metricdata.Metrics) {
		var rm metricdata.ResourceMetrics
		if err := r.Collect(ctx, &rm); err != nil {
			t.Fatalf("Collect: %v", err)
		}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if m.Name == "rpc.server.call.duration" {
					return sm.Scope, m
				}
			}
		}
		t.Fatal("no rpc.server.call.duration")
		return instrumentation.Scope{}, metricdata.Metrics{}
	}
	gotScope, got := collect(reader)
	wantScope, want := collect(refReader)
	if gotScope != wantScope {
		t.Errorf("scope: got %+v, want %+v", gotScope, wantScope)
	}
	if got.Unit != want.Unit || got.Description != want.Description {
		t.Errorf("unit, description: got %q, %q, want %q, %q", got.Unit, got.Description, want.Unit, want.Description)
	}
	series := func(m metricdata.Metrics) map[attribute.Distinct]string {
		out := map[attribute.Distinct]string{}
		for _, dp := range m.Data.(metricdata.Histogram[float64]).DataPoints {
			out[dp.Attributes.Equivalent()] = fmt.Sprintf("%s count=%d bounds=%v", dp.Attributes.Encoded(attribute.DefaultEncoder()), dp.Count, dp.Bounds)
		}
		return out
	}
	g, w := series(got), series(want)
	if len(w) != 4 {
		t.Fatalf("otelgrpc recorded %d series, want 4 (OK, NOT_FOUND, INTERNAL, UNAVAILABLE)", len(w))
	}
	for k, ws := range w {
		if g[k] != ws {
			t.Errorf("series: got %q, want %q", g[k], ws)
		}
	}
	if len(g) != len(w) {
		t.Errorf("%d series, want %d", len(g), len(w))
	}
}
