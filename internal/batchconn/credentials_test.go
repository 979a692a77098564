package batchconn_test

import (
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"

	"github.com/greeter/greeter/internal/batchconn"
)

// authSeen records the AuthInfo of each call's peer.
type authSeen struct {
	healthpb.HealthServer
	got chan credentials.AuthInfo
}

func (a authSeen) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	p, _ := peer.FromContext(ctx)
	a.got <- p.AuthInfo
	return a.HealthServer.Check(ctx, req)
}

// gRPC over Credentials on both ends: a real TLS 1.3 handshake, calls
// answered, and the server still sees the peer's TLS state, which identity
// is read from.
func TestCredentialsCarryTLSInfo(t *testing.T) {
	scfg, ccfg := selfSigned(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(batchconn.Credentials(credentials.NewTLS(scfg))))
	seen := authSeen{HealthServer: health.NewServer(), got: make(chan credentials.AuthInfo, 1)}
	healthpb.RegisterHealthServer(srv, seen)
	go srv.Serve(ln)
	defer srv.Stop()

	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(batchconn.Credentials(credentials.NewTLS(ccfg))))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Check = %v, %v; want SERVING", resp, err)
	}
	info, ok := (<-seen.got).(credentials.TLSInfo)
	if !ok || info.State.Version != tls.VersionTLS13 || !info.State.HandshakeComplete {
		t.Fatalf("the server saw AuthInfo %#v; want a completed TLS 1.3 TLSInfo", info)
	}
}
