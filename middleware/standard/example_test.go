package standard_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/greeter/greeter/middleware"
	"github.com/greeter/greeter/middleware/auth"
	"github.com/greeter/greeter/middleware/authz"
	"github.com/greeter/greeter/middleware/internal/greetertest"
	"github.com/greeter/greeter/middleware/ratelimit"
	"github.com/greeter/greeter/middleware/standard"
	"github.com/greeter/greeter/proto/greeterpb"
)

// traced wraps p so that it prints its name when a unary RPC enters it. A
// plugin without a unary interceptor (the public stream cap) is kept as is.
func traced(p middleware.Plugin) middleware.Plugin {
	inner := p.Unary
	if inner == nil {
		return p
	}
	p.Unary = func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		fmt.Print(p.Name, " → ")
		return inner(ctx, req, info, h)
	}
	return p
}

// The chain greeterd runs, outermost first, and what callers see.
func ExampleChain() {
	cfg := standard.Config{
		Auth:    auth.Anonymous("owner", authz.ScopeRead),
		Limiter: ratelimit.New(ratelimit.Options{MaxPublicStreamsPerPeer: 1}),
	}
	fmt.Println(strings.Join(standard.Chain(cfg).Names(), " → "))

	var plugins []middleware.Plugin
	for _, p := range standard.Plugins(cfg) {
		plugins = append(plugins, traced(p))
	}
	cc, stop, err := greetertest.Serve(greetertest.Server{}, middleware.NewChain(plugins...).ServerOptions())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := greeterpb.NewGreeterClient(cc)

	_, err = c.SayHello(ctx, &greeterpb.HelloRequest{Name: "bob"})
	fmt.Println("handler:", status.Code(err))
	_, err = c.DeleteFile(ctx, &greeterpb.MetaData{Filename: "a"})
	fmt.Println(status.Code(err), status.Convert(err).Message())
	_, err = c.SayHello(ctx, &greeterpb.HelloRequest{Name: greetertest.PanicName})
	fmt.Println(status.Code(err), status.Convert(err).Message())

	// realip acts only with trusted proxies and public-streams only on
	// streams: neither shows above. Public streams skip authentication but
	// not the cap (here one per peer).
	hc := healthpb.NewHealthClient(cc)
	for range 2 {
		w, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{})
		if err == nil {
			_, err = w.Recv()
		}
		fmt.Println(strings.TrimSpace("health watch: " + status.Code(err).String() + " " + status.Convert(err).Message()))
	}
	// Output:
	// recovery → logging → realip → ratelimit-peer → public-streams → auth → authz → ratelimit
	// recovery → logging → ratelimit-peer → auth → authz → ratelimit → handler: OK
	// recovery → logging → ratelimit-peer → auth → authz → PermissionDenied missing scope files:delete
	// recovery → logging → ratelimit-peer → auth → authz → ratelimit → Internal internal error
	// health watch: OK
	// health watch: ResourceExhausted too many open health or reflection streams from this address (at most 1)
}
