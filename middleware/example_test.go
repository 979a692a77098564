package middleware_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/greeter/greeter/middleware"
	"github.com/greeter/greeter/middleware/internal/greetertest"
	"github.com/greeter/greeter/proto/greeterpb"
)

// A library user adds a plugin in a few lines: the Func runs around unary
// and streaming RPCs alike.
func ExampleFromFunc() {
	servedBy := middleware.FromFunc("served-by", func(ctx context.Context, call *middleware.Call, next middleware.Next) error {
		if err := grpc.SetHeader(ctx, metadata.Pairs("x-served-by", "greeterd")); err != nil {
			return err
		}
		return next(ctx)
	})

	cc, stop, err := greetertest.Serve(greetertest.Server{}, middleware.NewChain(servedBy).ServerOptions())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var header metadata.MD
	if _, err := greeterpb.NewGreeterClient(cc).SayHello(ctx, &greeterpb.HelloRequest{Name: "bob"}, grpc.Header(&header)); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("x-served-by:", header.Get("x-served-by")[0])
	// Output: x-served-by: greeterd
}

// The first plugin given to NewChain is the outermost: it runs first on the
// way in and last on the way out, for unary and streaming RPCs alike.
func ExampleNewChain() {
	var (
		mu    sync.Mutex
		trace []string
	)
	step := func(name string) middleware.Plugin {
		return middleware.FromFunc(name, func(ctx context.Context, _ *middleware.Call, next middleware.Next) error {
			mu.Lock()
			trace = append(trace, name)
			mu.Unlock()
			return next(ctx)
		})
	}
	chain := middleware.NewChain(step("recovery"), step("logging"), step("auth"))
	fmt.Println("chain:", strings.Join(chain.Names(), " → "))

	cc, stop, err := greetertest.Serve(greetertest.Server{}, chain.ServerOptions())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := greeterpb.NewGreeterClient(cc).SayHello(ctx, &greeterpb.HelloRequest{Name: "bob"}); err != nil {
		fmt.Println(err)
		return
	}
	mu.Lock()
	defer mu.Unlock()
	fmt.Println("calls:", strings.Join(trace, " → "), "→ handler")
	// Output:
	// chain: recovery → logging → auth
	// calls: recovery → logging → auth → handler
}
