package service_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"

	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/diskstore"
	"github.com/greeter/greeter/service/servicetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// tester is one test's handle on a servicetest.Server: the calls and checks
// the tests repeat, failing t.
type tester struct {
	t *testing.T
	*servicetest.Server
}

// start serves the service as cfg says, for the length of t.
func start(t *testing.T, cfg servicetest.Config) *tester {
	t.Helper()
	return &tester{t: t, Server: servicetest.Start(t, cfg)}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitHandled blocks until the server finished handling a call of method.
func (h *tester) waitHandled(method string) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.WaitHandled(ctx, method); err != nil {
		h.t.Fatalf("the server never finished a call of %s", method)
	}
}

func TestSayHello(t *testing.T) {
	h := start(t, servicetest.Config{})
	for _, c := range []struct {
		name string
		age  int32
		code codes.Code
		want string
	}{
		{"John Doe", 30, codes.OK, "Hello, John Doe! Your age is 30"},
		{"Zoë", 0, codes.OK, "Hello, Zoë! Your age is 0"},
		{"", 30, codes.InvalidArgument, "name must not be empty"},
		{strings.Repeat("a", 257), 30, codes.InvalidArgument, "at most 256 bytes"},
		{"Old", 151, codes.InvalidArgument, "age must be between 0 and 150"},
		{"Negative", -1, codes.InvalidArgument, "age must be between 0 and 150"},
	} {
		resp, err := h.Client.SayHello(testCtx(t), &pb.HelloRequest{Name: c.name, Age: c.age})
		wantCode(t, err, c.code, map[bool]string{true: "", false: c.want}[c.code == codes.OK])
		if c.code == codes.OK && resp.GetMessage() != c.want {
			t.Errorf("SayHello(%q, %d) = %q, want %q", c.name, c.age, resp.GetMessage(), c.want)
		}
	}
}

func TestNoIdentityNoDefaultOwnerIsUnauthenticated(t *testing.T) {
	store, err := diskstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	s := service.New(store, service.Options{})
	_, err = s.StatFile(context.Background(), &pb.MetaData{Filename: "a"})
	wantCode(t, err, codes.Unauthenticated, "no authenticated caller")
}
