package telemetry

import (
	"context"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/stats"
)

// HandlerOption configures ServerHandler.
type HandlerOption func(*handlerOptions)

type handlerOptions struct {
	trusted func(context.Context) bool
	filter  func(fullMethod string) bool
}

// WithTrustedCaller replaces the rule deciding whose trace context a server
// span may take as its parent. The default is VerifiedMTLSPeer. fn receives
// the RPC's context, which carries the grpc peer; it runs once per RPC
// before any interceptor, so it cannot see the authenticated identity. Use it
// when client certificates from the same CA are also issued to end users, for
// example to trust only the SPIFFE IDs of our own services.
func WithTrustedCaller(fn func(ctx context.Context) bool) HandlerOption {
	return func(o *handlerOptions) {
		if fn != nil {
			o.trusted = fn
		}
	}
}

// WithFilter excludes RPCs from tracing and metrics: fn receives the full
// method name ("/grpc.health.v1.Health/Check") and returns false for RPCs to
// leave out.
func WithFilter(fn func(fullMethod string) bool) HandlerOption {
	return func(o *handlerOptions) {
		if fn != nil {
			o.filter = fn
		}
	}
}

// VerifiedMTLSPeer reports whether the RPC in ctx arrived over TLS with a
// client certificate that the server verified against its client CAs.
func VerifiedMTLSPeer(ctx context.Context) bool {
	pr, ok := peer.FromContext(ctx)
	if !ok {
		return false
	}
	info, ok := pr.AuthInfo.(credentials.TLSInfo)
	return ok && len(info.State.VerifiedChains) > 0
}

// ServerHandler returns the stats.Handler to install with grpc.StatsHandler
// on the server. It records a server span and the rpc.server.call.duration
// histogram for every RPC, including those rejected by interceptors.
//
// A caller that the trust rule (VerifiedMTLSPeer unless WithTrustedCaller)
// rejects is treated as a public endpoint: its traceparent becomes a link on
// a new root span, so it can neither choose our trace ID nor force sampling,
// and its baggage is removed from the context. With tracing off nothing is
// extracted from the request at all. Per-message span events stay off.
func ServerHandler(p *Providers, opts ...HandlerOption) stats.Handler {
	o := handlerOptions{trusted: VerifiedMTLSPeer}
	for _, opt := range opts {
		opt(&o)
	}
	// rpc.server.call.duration is recorded by serverHandler, with attribute
	// sets built once per method (see serverDuration); otelgrpc then gets a
	// no-op meter. If that fails, otelgrpc records it as usual.
	dur, err := newServerDuration(p.MeterProvider())
	if err != nil {
		dur = nil
	}
	var otelMeter metric.MeterProvider = p.MeterProvider()
	if dur != nil {
		otelMeter = metricnoop.NewMeterProvider()
	}
	otelOpts := []otelgrpc.Option{
		otelgrpc.WithTracerProvider(p.TracerProvider()),
		otelgrpc.WithMeterProvider(otelMeter),
		otelgrpc.WithPropagators(p.Propagator()),
		otelgrpc.WithPublicEndpointFn(func(ctx context.Context, _ *stats.RPCTagInfo) bool {
			return !o.trusted(ctx)
		}),
	}
	if o.filter != nil {
		otelOpts = append(otelOpts, otelgrpc.WithFilter(func(info *stats.RPCTagInfo) bool {
			return o.filter(info.FullMethodName)
		}))
	}
	return &serverHandler{Handler: otelgrpc.NewServerHandler(otelOpts...), trusted: o.trusted, filter: o.filter, dur: dur}
}

// serverHandler removes an untrusted caller's baggage after otelgrpc has
// extracted it, so it is not forwarded on outgoing calls, and records
// rpc.server.call.duration when dur is set.
type serverHandler struct {
	stats.Handler
	trusted func(context.Context) bool
	filter  func(fullMethod string) bool
	dur     *serverDuration
}

// methodSetsKey is the context key of an RPC's *methodSets.
type methodSetsKey struct{}

// TagRPC starts the server span, strips untrusted baggage and notes the
// method's duration attribute sets.
func (h *serverHandler) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	ctx = h.Handler.TagRPC(ctx, info)
	if baggage.FromContext(ctx).Len() > 0 && !h.trusted(ctx) {
		ctx = baggage.ContextWithoutBaggage(ctx)
	}
	if h.dur != nil && (h.filter == nil || h.filter(info.FullMethodName)) {
		ctx = context.WithValue(ctx, methodSetsKey{}, h.dur.forMethod(info.FullMethodName))
	}
	return ctx
}

// HandleRPC passes rs to otelgrpc and records the duration at the end.
func (h *serverHandler) HandleRPC(ctx context.Context, rs stats.RPCStats) {
	h.Handler.HandleRPC(ctx, rs)
	if end, ok := rs.(*stats.End); ok && h.dur != nil {
		if m, ok := ctx.Value(methodSetsKey{}).(*methodSets); ok {
			h.dur.record(ctx, m, end.Error, end.EndTime.Sub(end.BeginTime))
		}
	}
}

// ClientHandler returns the stats.Handler to install with
// grpc.WithStatsHandler on a client connection. It records a client span,
// propagates the W3C trace context when tracing is on, and records the
// rpc.client.call.duration histogram without server address labels.
func ClientHandler(p *Providers) stats.Handler {
	return otelgrpc.NewClientHandler(
		otelgrpc.WithTracerProvider(p.TracerProvider()),
		otelgrpc.WithMeterProvider(p.MeterProvider()),
		otelgrpc.WithPropagators(p.Propagator()),
	)
}
