package telemetry

import (
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/semconv/v1.43.0/rpcconv"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// serverDuration records rpc.server.call.duration exactly as otelgrpc
// v0.72.0 does (same scope, instrument, buckets and attributes), but with
// the attribute set of each method and status code built once, not per
// RPC. otelgrpc builds a new attribute.Set at the end of every RPC: an
// allocation, a hash of every attribute, and a 3.5 KB stack frame
// (attribute.newSet) on the RPC's fresh goroutine, which made its stack
// grow and be copied on every small call.
type serverDuration struct {
	hist metric.Float64Histogram

	mu      sync.RWMutex
	methods map[string]*methodSets
}

// maxCachedMethods bounds the methods whose sets are kept: gRPC reports
// unknown method names too, which clients choose. Past it, sets are built
// per RPC, as otelgrpc does.
const maxCachedMethods = 256

// methodSets holds one method's measurement options, one per status code,
// each in the variadic slice Record takes, so that no call allocates one.
type methodSets struct {
	byCode [len(canonicalCodes)][]metric.RecordOption
	base   []attribute.KeyValue
}

// newServerDuration returns the instrument, or nil when
// OTEL_SEMCONV_STABILITY_OPT_IN asks otelgrpc for the old conventions
// (rpc/old, rpc/dup), which otelgrpc then records itself.
func newServerDuration(mp metric.MeterProvider) (*serverDuration, error) {
	for p := range strings.SplitSeq(os.Getenv("OTEL_SEMCONV_STABILITY_OPT_IN"), ",") {
		if p = strings.TrimSpace(p); p == "rpc/old" || p == "rpc/dup" {
			return nil, nil
		}
	}
	meter := mp.Meter(otelgrpc.ScopeName,
		metric.WithInstrumentationVersion(otelgrpc.Version),
		metric.WithSchemaURL(semconv.SchemaURL))
	h, err := rpcconv.NewServerCallDuration(meter, metric.WithExplicitBucketBoundaries(
		0.005, 0.01, 0.025, 0.05, 0.075, 0.1,
		0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10,
	))
	if err != nil {
		return nil, err
	}
	return &serverDuration{hist: h.Inst(), methods: map[string]*methodSets{}}, nil
}

// forMethod returns the sets of fullMethod, built on first use.
func (d *serverDuration) forMethod(fullMethod string) *methodSets {
	d.mu.RLock()
	m := d.methods[fullMethod]
	d.mu.RUnlock()
	if m != nil {
		return m
	}
	m = newMethodSets(fullMethod)
	d.mu.Lock()
	defer d.mu.Unlock()
	if old := d.methods[fullMethod]; old != nil {
		return old
	}
	if len(d.methods) < maxCachedMethods {
		d.methods[fullMethod] = m
	}
	return m
}

func newMethodSets(fullMethod string) *methodSets {
	// As otelgrpc's internal.ParseFullMethod.
	var base []attribute.KeyValue
	if name, ok := strings.CutPrefix(fullMethod, "/"); ok {
		base = append(base, semconv.RPCMethod(name))
	}
	m := &methodSets{base: append(base, semconv.RPCSystemNameGRPC)}
	for c := range m.byCode {
		m.byCode[c] = m.option(codes.Code(c))
	}
	return m
}

// option builds the measurement options for code.
func (m *methodSets) option(code codes.Code) []metric.RecordOption {
	attrs := append(slices.Clip(m.base), semconv.RPCResponseStatusCode(canonicalCode(code)))
	if isServerFault(code) {
		attrs = append(attrs, semconv.ErrorTypeKey.String(canonicalCode(code)))
	}
	return []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(attrs...))}
}

// record adds one RPC of m that ended with err after elapsed.
func (d *serverDuration) record(ctx context.Context, m *methodSets, err error, elapsed time.Duration) {
	code := status.Code(err)
	if int(code) < len(m.byCode) {
		d.hist.Record(ctx, elapsed.Seconds(), m.byCode[code]...)
		return
	}
	d.hist.Record(ctx, elapsed.Seconds(), m.option(code)...) // a code outside the standard ones
}

// isServerFault reports the codes otelgrpc's server side counts as errors
// (span status Error, error.type on the duration).
func isServerFault(c codes.Code) bool {
	switch c {
	case codes.Unknown, codes.DeadlineExceeded, codes.Unimplemented, codes.Internal, codes.Unavailable, codes.DataLoss:
		return true
	}
	return false
}

// canonicalCodes are the status codes as otelgrpc spells them: the
// upper-case names of the gRPC specification ("CANCELLED", not "Canceled").
var canonicalCodes = [...]string{
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
	"ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
	"UNAUTHENTICATED",
}

func canonicalCode(c codes.Code) string {
	if int(c) < len(canonicalCodes) {
		return canonicalCodes[c]
	}
	return "CODE(" + strconv.FormatInt(int64(c), 10) + ")"
}
