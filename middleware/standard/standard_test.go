package standard_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	"github.com/greeter/greeter/middleware"
	"github.com/greeter/greeter/middleware/auth"
	"github.com/greeter/greeter/middleware/internal/authtest"
	"github.com/greeter/greeter/middleware/internal/greetertest"
	"github.com/greeter/greeter/middleware/ratelimit"
	"github.com/greeter/greeter/middleware/standard"
	"github.com/greeter/greeter/proto/greeterpb"
)

func TestChainWithoutAuthFailsClosed(t *testing.T) {
	cc := greetertest.Start(t, standard.Chain(standard.Config{}).ServerOptions())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := greeterpb.NewGreeterClient(cc).SayHello(ctx, &greeterpb.HelloRequest{Name: "bob"})
	if st := status.Convert(err); st.Code() != codes.Unauthenticated {
		t.Errorf("SayHello through a chain without auth: got %v %q, want Unauthenticated", st.Code(), st.Message())
	}
}

func TestPublicMethodsKeepThePeerLimit(t *testing.T) {
	limiter := ratelimit.New(ratelimit.Options{PerPeer: ratelimit.Rate{PerSecond: 0.001, Burst: 2}})
	cc := greetertest.Start(t, standard.Chain(standard.Config{Limiter: limiter}).ServerOptions())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h := healthpb.NewHealthClient(cc)
	tests := []struct {
		name string
		want codes.Code
	}{
		{"first check, no identity needed", codes.OK},
		{"second check", codes.OK},
		{"third check, over the per-peer burst", codes.ResourceExhausted},
	}
	for _, tc := range tests {
		if _, err := h.Check(ctx, &healthpb.HealthCheckRequest{}); status.Code(err) != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
}

// rpcTag is the context key under which tagger marks each RPC.
type rpcTag struct{}

// tagger is a stats handler, as telemetry's would be, that marks each RPC's
// context with its method.
type tagger struct{}

func (tagger) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	return context.WithValue(ctx, rpcTag{}, info.FullMethodName)
}
func (tagger) HandleRPC(context.Context, stats.RPCStats) {}
func (tagger) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}
func (tagger) HandleConn(context.Context, stats.ConnStats) {}

// hookCalls records, per hook, the method tag of the context each call got.
type hookCalls struct {
	mu  sync.Mutex
	got map[string][]string
}

func (h *hookCalls) record(hook string) func(ctx context.Context) {
	return func(ctx context.Context) {
		tag, _ := ctx.Value(rpcTag{}).(string)
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.got == nil {
			h.got = map[string][]string{}
		}
		h.got[hook] = append(h.got[hook], tag)
	}
}

// TestHooksGetTheRequestContext: the stats handler, installed through an
// Outer plugin's ServerOptions, tags every RPC, and every hook of the chain
// (auth's OnResult, authz's OnDeny, the limiter's OnReject, recovery's
// OnPanic) is called with that RPC's context, so the metrics it records
// carry the RPC's trace.
func TestHooksGetTheRequestContext(t *testing.T) {
	var calls hookCalls
	key := authtest.NewKey(t, t.TempDir(), "ed25519", "k1")
	cfg := authtest.Config(key)
	onResult := calls.record("OnResult")
	cfg.OnResult = func(ctx context.Context, _ string) { onResult(ctx) }
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, err := auth.New(ctx, cfg)
	if err != nil {
		t.Fatalf("auth.New: %v", err)
	}
	onReject, onDeny, onPanic := calls.record("OnReject"), calls.record("OnDeny"), calls.record("OnPanic")
	chain := standard.Chain(standard.Config{
		Auth: a.Plugin(),
		Limiter: ratelimit.New(ratelimit.Options{
			PerPeer:  ratelimit.Rate{PerSecond: -1},
			Unary:    ratelimit.Rate{PerSecond: 0.001, Burst: 2},
			OnReject: func(ctx context.Context, _ string) { onReject(ctx) },
		}),
		OnDeny:  func(ctx context.Context, _, _ string) { onDeny(ctx) },
		OnPanic: func(ctx context.Context, _ string) { onPanic(ctx) },
		Outer:   []middleware.Plugin{{Name: "stats", ServerOptions: []grpc.ServerOption{grpc.StatsHandler(tagger{})}}},
	})
	if got, want := chain.Names()[0], "stats"; got != want {
		t.Errorf("first plugin: got %q, want the Outer plugin %q", got, want)
	}
	cc := greetertest.Start(t, chain.ServerOptions())
	c := greeterpb.NewGreeterClient(cc)
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+key.Token(t, "alice", "files:read"))

	_, err = c.DeleteFile(ctx, &greeterpb.MetaData{Filename: "a"})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("DeleteFile without its scope: got %v, want PermissionDenied", err)
	}
	_, err = c.SayHello(ctx, &greeterpb.HelloRequest{Name: greetertest.PanicName})
	if status.Code(err) != codes.Internal {
		t.Fatalf("SayHello that panics: got %v, want Internal", err)
	}
	_, _ = c.SayHello(ctx, &greeterpb.HelloRequest{Name: "bob"})
	_, err = c.SayHello(ctx, &greeterpb.HelloRequest{Name: "bob"})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("SayHello over the unary burst: got %v, want ResourceExhausted", err)
	}

	del, hello := greeterpb.Greeter_DeleteFile_FullMethodName, greeterpb.Greeter_SayHello_FullMethodName
	want := map[string][]string{
		"OnResult": {del, hello, hello, hello},
		"OnDeny":   {del},
		"OnPanic":  {hello},
		"OnReject": {hello},
	}
	calls.mu.Lock()
	defer calls.mu.Unlock()
	for hook, w := range want {
		if got := calls.got[hook]; !slices.Equal(got, w) {
			t.Errorf("%s called with contexts tagged %q, want %q", hook, got, w)
		}
	}
}
