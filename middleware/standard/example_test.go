package standard_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/greeter/greeter/middleware"
	"github.com/greeter/greeter/middleware/auth"
	"github.com/greeter/greeter/middleware/authz"
	"github.com/greeter/greeter/middleware/internal/greetertest"
	"github.com/greeter/greeter/middleware/standard"
	"github.com/greeter/greeter/proto/greeterpb"
)

// traced wraps p so that it prints its name when a unary RPC enters it.
func traced(p middleware.Plugin) middleware.Plugin {
	inner := p.Unary
	p.Unary = func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		fmt.Print(p.Name, " → ")
		return inner(ctx, req, info, h)
	}
	return p
}

// The chain greeterd runs, outermost first, and what callers see.
func ExampleChain() {
	cfg := standard.Config{Auth: auth.Anonymous("owner", authz.ScopeRead)}
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
	// Output:
	// recovery → logging → ratelimit-peer → auth → authz → ratelimit
	// recovery → logging → ratelimit-peer → auth → authz → ratelimit → handler: OK
	// recovery → logging → ratelimit-peer → auth → authz → PermissionDenied missing scope files:delete
	// recovery → logging → ratelimit-peer → auth → authz → ratelimit → Internal internal error
}
