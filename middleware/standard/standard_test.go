package standard_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

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
