package servicetest_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/greeter/greeter/identity"
	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/service/servicetest"
)

// TestFaults fails counted calls of one unary and one streaming method and
// lets the others through.
func TestFaults(t *testing.T) {
	f := new(servicetest.Faults)
	unavailable := status.Error(codes.Unavailable, "injected")
	f.Fail(pb.Greeter_SayHello_FullMethodName, 2, unavailable)
	f.Fail(pb.Greeter_UploadFile_FullMethodName, -1, unavailable)
	s := servicetest.Start(t, servicetest.Config{
		Unary:  []grpc.UnaryServerInterceptor{f.Unary},
		Stream: []grpc.StreamServerInterceptor{f.Stream},
	})
	ctx := testCtx(t)
	for i, want := range []codes.Code{codes.Unavailable, codes.Unavailable, codes.OK} {
		if _, err := s.Client.SayHello(ctx, &pb.HelloRequest{Name: "x"}); status.Code(err) != want {
			t.Errorf("SayHello %d: got %v, want %v", i+1, err, want)
		}
	}
	for i := range 3 {
		if _, err := upload(ctx, s.Client, "f", "", []byte("x"), 1); status.Code(err) != codes.Unavailable {
			t.Errorf("upload %d with every call failing: got %v, want Unavailable", i+1, err)
		}
	}
	f.Fail(pb.Greeter_UploadFile_FullMethodName, 0, nil)
	if _, err := upload(ctx, s.Client, "f", "", []byte("x"), 1); err != nil {
		t.Errorf("upload after Fail(0): %v", err)
	}
	for _, c := range []struct {
		method string
		want   int
	}{{pb.Greeter_SayHello_FullMethodName, 3}, {pb.Greeter_UploadFile_FullMethodName, 4}, {pb.Greeter_StatFile_FullMethodName, 0}} {
		if got := f.Calls(c.method); got != c.want {
			t.Errorf("Calls(%s) = %d, want %d", c.method, got, c.want)
		}
	}
}

// TestAnswer answers one method in place of the service.
func TestAnswer(t *testing.T) {
	answer := servicetest.Answer(pb.Greeter_StatFile_FullMethodName, func(_ context.Context, req any) (any, error) {
		return &pb.FileInfo{Name: "made up " + req.(*pb.MetaData).GetFilename()}, nil
	})
	s := servicetest.Start(t, servicetest.Config{Unary: []grpc.UnaryServerInterceptor{answer}})
	ctx := testCtx(t)
	info, err := s.Client.StatFile(ctx, &pb.MetaData{Filename: "missing"})
	if err != nil || info.GetName() != "made up missing" {
		t.Errorf("StatFile answered by Answer: %v, %v; want the made-up answer", info, err)
	}
	if _, err := s.Client.SayHello(ctx, &pb.HelloRequest{Name: "x"}); err != nil {
		t.Errorf("SayHello past Answer for StatFile: %v", err)
	}
}

// TestServerOptionsAndNewConn puts an interceptor of ServerOptions between
// the identity plugin and Config.Unary, and reaches the service with dial
// options of the test's own.
func TestServerOptionsAndNewConn(t *testing.T) {
	var order []string
	authn := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
		id, _ := identity.FromContext(ctx)
		order = append(order, "server option sees "+id.Name)
		return next(identity.NewContext(ctx, identity.Identity{Kind: identity.KindJWT, Issuer: "other", Name: "dave"}), req)
	}
	hook := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
		id, _ := identity.FromContext(ctx)
		order = append(order, "Unary sees "+id.Name)
		return next(ctx, req)
	}
	s := servicetest.Start(t, servicetest.Config{
		ServerOptions: []grpc.ServerOption{grpc.ChainUnaryInterceptor(authn)},
		Unary:         []grpc.UnaryServerInterceptor{hook},
	})
	tagged := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		return invoker(metadata.AppendToOutgoingContext(ctx, servicetest.OwnerHeader, "erin"), method, req, reply, cc, opts...)
	}
	conn, err := s.NewConn(grpc.WithUnaryInterceptor(tagged))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := pb.NewGreeterClient(conn).SayHello(testCtx(t), &pb.HelloRequest{Name: "x"}); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(order, "; "), "server option sees erin; Unary sees dave"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestStopAtOnce stops servers that may not have begun to serve yet.
func TestStopAtOnce(t *testing.T) {
	for range 20 {
		servicetest.Start(t, servicetest.Config{}).Stop()
	}
}
