package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/greeter/greeter/identity"
	"github.com/greeter/greeter/middleware"
	"github.com/greeter/greeter/middleware/internal/greetertest"
	"github.com/greeter/greeter/proto/greeterpb"
)

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// rpcs runs one RPC of each kind and returns what the fake service echoed.
var rpcs = []struct {
	name string
	run  func(ctx context.Context, c greeterpb.GreeterClient) (string, error)
}{
	{"unary", func(ctx context.Context, c greeterpb.GreeterClient) (string, error) {
		r, err := c.SayHello(ctx, &greeterpb.HelloRequest{Name: "bob"})
		return r.GetMessage(), err
	}},
	{"client stream", func(ctx context.Context, c greeterpb.GreeterClient) (string, error) {
		s, err := c.UploadFile(ctx)
		if err != nil {
			return "", err
		}
		msgs := []*greeterpb.UploadFileRequest{
			{Request: &greeterpb.UploadFileRequest_Metadata{Metadata: &greeterpb.MetaData{Filename: "f"}}},
			{Request: &greeterpb.UploadFileRequest_ChunkData{ChunkData: []byte("a")}},
			{Request: &greeterpb.UploadFileRequest_ChunkData{ChunkData: []byte("b")}},
			{Request: &greeterpb.UploadFileRequest_ChunkData{ChunkData: []byte("c")}},
		}
		for _, m := range msgs {
			if err := s.Send(m); err != nil && !errors.Is(err, io.EOF) {
				return "", err
			}
		}
		r, err := s.CloseAndRecv()
		return r.GetMessage(), err
	}},
	{"server stream", func(ctx context.Context, c greeterpb.GreeterClient) (string, error) {
		s, err := c.DownloadFile(ctx, &greeterpb.MetaData{Filename: "f", Limit: 3 * greetertest.ChunkSize})
		if err != nil {
			return "", err
		}
		n := 0
		for {
			if _, err := s.Recv(); errors.Is(err, io.EOF) {
				return fmt.Sprintf("%d chunks", n), nil
			} else if err != nil {
				return "", err
			}
			n++
		}
	}},
}

func TestFromFuncHandlerSeesDerivedContext(t *testing.T) {
	p := middleware.FromFunc("who", func(ctx context.Context, _ *middleware.Call, next middleware.Next) error {
		return next(identity.NewContext(ctx, identity.Identity{Kind: identity.KindAnonymous, Name: "zoe"}))
	})
	cc := greetertest.Start(t, middleware.NewChain(p).ServerOptions())
	c := greeterpb.NewGreeterClient(cc)
	for _, rpc := range rpcs[:2] { // the fake echoes the identity for these
		t.Run(rpc.name, func(t *testing.T) {
			got, err := rpc.run(testContext(t), c)
			if err != nil {
				t.Fatalf("got %v, want OK", err)
			}
			if want := "anonymous:zoe["; !strings.Contains(got, want) {
				t.Errorf("got %q, want it to contain %q", got, want)
			}
		})
	}
}

func TestMessageHooksSeeEveryMessage(t *testing.T) {
	type counts struct{ recv, send int }
	var (
		mu  sync.Mutex
		got = map[string]*counts{}
	)
	p := middleware.FromFunc("count", func(ctx context.Context, call *middleware.Call, next middleware.Next) error {
		n := &counts{}
		mu.Lock()
		got[call.FullMethod] = n
		mu.Unlock()
		call.OnRecv(func(context.Context, any) error { mu.Lock(); n.recv++; mu.Unlock(); return nil })
		call.OnSend(func(context.Context, any) error { mu.Lock(); n.send++; mu.Unlock(); return nil })
		return next(ctx)
	})
	cc := greetertest.Start(t, middleware.NewChain(p).ServerOptions())
	c := greeterpb.NewGreeterClient(cc)
	tests := []struct {
		rpc    int
		method string
		want   counts
	}{
		{0, "/Greeter/SayHello", counts{recv: 1, send: 1}},
		{1, "/Greeter/UploadFile", counts{recv: 4, send: 1}},
		{2, "/Greeter/DownloadFile", counts{recv: 1, send: 3}},
	}
	for _, tc := range tests {
		t.Run(rpcs[tc.rpc].name, func(t *testing.T) {
			if _, err := rpcs[tc.rpc].run(testContext(t), c); err != nil {
				t.Fatalf("got %v, want OK", err)
			}
			mu.Lock()
			defer mu.Unlock()
			if n := got[tc.method]; n == nil || *n != tc.want {
				t.Errorf("%s hooks: got %+v, want %+v", tc.method, n, tc.want)
			}
		})
	}
}

// TestHookPanicGoesToPanicHandler makes the receive hook panic on every
// kind of RPC (RELIABILITY.md R9): with a PanicHandler in the context, the
// handler gets the value and the stack of the panicking hook and the RPC
// ends with Internal "internal error"; without one, the panic continues to
// the interceptors outside, as a handler's panic would.
func TestHookPanicGoesToPanicHandler(t *testing.T) {
	const value = "hook-panic-value"
	panicky := middleware.FromFunc("panicky", func(ctx context.Context, call *middleware.Call, next middleware.Next) error {
		call.OnRecv(func(context.Context, any) error { panic(value) })
		return next(ctx)
	})
	var (
		mu     sync.Mutex
		caught []string // what the PanicHandler, or else the outer recover, saw
	)
	record := func(s string) { mu.Lock(); caught = append(caught, s); mu.Unlock() }
	handler := func(_ context.Context, p any, stack []byte) {
		record(fmt.Sprintf("handler %v %t", p, strings.Contains(string(stack), "TestHookPanicGoesToPanicHandler")))
	}
	for _, withHandler := range []bool{true, false} {
		// outer stands in for the recovery plugin: it installs the handler,
		// or recovers what unwinds past it.
		outer := middleware.FromFunc("outer", func(ctx context.Context, _ *middleware.Call, next middleware.Next) (err error) {
			if withHandler {
				return next(middleware.NewPanicContext(ctx, handler))
			}
			defer func() {
				if p := recover(); p != nil {
					record(fmt.Sprintf("unwound %v", p))
					err = status.Error(codes.Internal, "internal error")
				}
			}()
			return next(ctx)
		})
		cc := greetertest.Start(t, middleware.NewChain(outer, panicky).ServerOptions())
		c := greeterpb.NewGreeterClient(cc)
		for _, rpc := range rpcs {
			t.Run(fmt.Sprintf("%s handler=%t", rpc.name, withHandler), func(t *testing.T) {
				mu.Lock()
				caught = nil
				mu.Unlock()
				_, err := rpc.run(testContext(t), c)
				if st := status.Convert(err); st.Code() != codes.Internal || st.Message() != "internal error" {
					t.Errorf("got %v %q, want Internal %q", st.Code(), st.Message(), "internal error")
				}
				want := "unwound " + value
				if withHandler {
					want = "handler " + value + " true"
				}
				mu.Lock()
				defer mu.Unlock()
				if len(caught) != 1 || caught[0] != want {
					t.Errorf("caught %q, want [%q]", caught, want)
				}
			})
		}
	}
}

func TestPluginErrorsAreStatusErrors(t *testing.T) {
	tests := []struct {
		name     string
		f        middleware.Func
		wantCode codes.Code
		wantMsg  string
	}{
		{"status error passes", func(context.Context, *middleware.Call, middleware.Next) error {
			return status.Error(codes.FailedPrecondition, "not now")
		}, codes.FailedPrecondition, "not now"},
		{"plain error becomes Internal", func(context.Context, *middleware.Call, middleware.Next) error {
			return errors.New("db password is hunter2")
		}, codes.Internal, "internal error"},
		{"deadline becomes DeadlineExceeded", func(context.Context, *middleware.Call, middleware.Next) error {
			return fmt.Errorf("waiting: %w", context.DeadlineExceeded)
		}, codes.DeadlineExceeded, "context deadline exceeded"},
		{"cancel becomes Canceled", func(context.Context, *middleware.Call, middleware.Next) error {
			return context.Canceled
		}, codes.Canceled, "context canceled"},
		{"neither next nor error", func(context.Context, *middleware.Call, middleware.Next) error {
			return nil
		}, codes.Internal, "internal error"},
		{"next twice", func(ctx context.Context, _ *middleware.Call, next middleware.Next) error {
			if err := next(ctx); err != nil {
				return err
			}
			return next(ctx)
		}, codes.Internal, "internal error"},
		{"recv hook plain error", func(ctx context.Context, call *middleware.Call, next middleware.Next) error {
			call.OnRecv(func(context.Context, any) error { return errors.New("secret") })
			return next(ctx)
		}, codes.Internal, "internal error"},
		{"send hook status error", func(ctx context.Context, call *middleware.Call, next middleware.Next) error {
			call.OnSend(func(context.Context, any) error { return status.Error(codes.ResourceExhausted, "slow down") })
			return next(ctx)
		}, codes.ResourceExhausted, "slow down"},
	}
	for _, tc := range tests {
		cc := greetertest.Start(t, middleware.NewChain(middleware.FromFunc("p", tc.f)).ServerOptions())
		c := greeterpb.NewGreeterClient(cc)
		for _, rpc := range rpcs {
			t.Run(tc.name+"/"+rpc.name, func(t *testing.T) {
				_, err := rpc.run(testContext(t), c)
				st := status.Convert(err)
				if st.Code() != tc.wantCode || st.Message() != tc.wantMsg {
					t.Errorf("got %v %q, want %v %q", st.Code(), st.Message(), tc.wantCode, tc.wantMsg)
				}
			})
		}
	}
}

func TestHandlerErrorsPassUnchanged(t *testing.T) {
	p := middleware.FromFunc("p", func(ctx context.Context, _ *middleware.Call, next middleware.Next) error {
		return next(ctx)
	})
	cc := greetertest.Start(t, middleware.NewChain(p, p).ServerOptions())
	_, err := greeterpb.NewGreeterClient(cc).DeleteFile(testContext(t), &greeterpb.MetaData{Filename: "missing.txt"})
	if st := status.Convert(err); st.Code() != codes.NotFound || st.Message() != "no such file: missing.txt" {
		t.Errorf("got %v %q, want NotFound %q", st.Code(), st.Message(), "no such file: missing.txt")
	}
}

// recorder returns a plugin that appends "name>" on the way in and "<name"
// on the way out.
func recorder(name string, mu *sync.Mutex, trace *[]string) middleware.Plugin {
	add := func(s string) {
		mu.Lock()
		*trace = append(*trace, s)
		mu.Unlock()
	}
	return middleware.FromFunc(name, func(ctx context.Context, _ *middleware.Call, next middleware.Next) error {
		add(name + ">")
		defer add("<" + name)
		return next(ctx)
	})
}

func TestChainRunsInOrder(t *testing.T) {
	var (
		mu    sync.Mutex
		trace []string
	)
	chain := middleware.NewChain(recorder("a", &mu, &trace), recorder("b", &mu, &trace), recorder("c", &mu, &trace))
	if got, want := strings.Join(chain.Names(), " "), "a b c"; got != want {
		t.Errorf("Names: got %q, want %q", got, want)
	}
	cc := greetertest.Start(t, chain.ServerOptions())
	c := greeterpb.NewGreeterClient(cc)
	for _, rpc := range rpcs {
		t.Run(rpc.name, func(t *testing.T) {
			mu.Lock()
			trace = nil
			mu.Unlock()
			if _, err := rpc.run(testContext(t), c); err != nil {
				t.Fatalf("got %v, want OK", err)
			}
			mu.Lock()
			defer mu.Unlock()
			if got, want := strings.Join(trace, " "), "a> b> c> <c <b <a"; got != want {
				t.Errorf("call order: got %q, want %q", got, want)
			}
		})
	}
}

func TestOnlyAndSkip(t *testing.T) {
	mark := func() middleware.Plugin {
		return middleware.FromFunc("mark", func(ctx context.Context, _ *middleware.Call, next middleware.Next) error {
			return next(identity.NewContext(ctx, identity.Identity{Kind: identity.KindAnonymous, Name: "marked"}))
		})
	}
	sayHello := middleware.MethodPrefix("/Greeter/SayHello")
	tests := []struct {
		name       string
		plugin     middleware.Plugin
		rpc        int
		wantMarked bool
	}{
		{"Only, matching unary", middleware.Only(mark(), sayHello), 0, true},
		{"Only, other stream", middleware.Only(mark(), sayHello), 1, false},
		{"Skip, matching unary", middleware.Skip(mark(), sayHello), 0, false},
		{"Skip, other stream", middleware.Skip(mark(), sayHello), 1, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cc := greetertest.Start(t, middleware.NewChain(tc.plugin).ServerOptions())
			got, err := rpcs[tc.rpc].run(testContext(t), greeterpb.NewGreeterClient(cc))
			if err != nil {
				t.Fatalf("got %v, want OK", err)
			}
			if marked := strings.Contains(got, "marked"); marked != tc.wantMarked {
				t.Errorf("plugin ran: got %v, want %v (reply %q)", marked, tc.wantMarked, got)
			}
		})
	}
}

func TestServerOptionsKeepPluginOptions(t *testing.T) {
	p := middleware.Plugin{Name: "opts", ServerOptions: []grpc.ServerOption{grpc.MaxRecvMsgSize(1 << 10)}}
	cc := greetertest.Start(t, middleware.NewChain(middleware.Only(p, func(string) bool { return false })).ServerOptions())
	_, err := greeterpb.NewGreeterClient(cc).SayHello(testContext(t), &greeterpb.HelloRequest{Name: strings.Repeat("x", 2<<10)})
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("request over the plugin's MaxRecvMsgSize: got %v, want ResourceExhausted", err)
	}
}
