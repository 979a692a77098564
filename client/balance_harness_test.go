package client_test

import (
	"context"
	"crypto/rand"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/greeter/greeter/client"
	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/diskstore"
)

// replica is the real service on a disk store of its own, with the
// grpc.health.v1 service, served over a loopback TCP socket as one
// greeterd replica would be. Replicas of one test do not share storage.
type replica struct {
	addr   string
	health *health.Server
	srv    *grpc.Server
	// hellos counts the SayHello calls the replica handled.
	hellos atomic.Int64
	// hold, when set, runs around the replica's UploadFile and DownloadFile
	// handlers, so that a test can stop a transfer half way.
	hold atomic.Pointer[grpc.StreamServerInterceptor]
}

// startReplica serves a replica until the test ends; creds may be nil.
func startReplica(t *testing.T, creds credentials.TransportCredentials) *replica {
	t.Helper()
	store, err := diskstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := &replica{health: health.NewServer()}
	opts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
			if info.FullMethod == pb.Greeter_SayHello_FullMethodName {
				r.hellos.Add(1)
			}
			return next(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, next grpc.StreamHandler) error {
			if hold := r.hold.Load(); hold != nil {
				return (*hold)(srv, ss, info, next)
			}
			return next(srv, ss)
		}),
		grpc.WaitForHandlers(true),
	}
	if creds != nil {
		opts = append(opts, grpc.Creds(creds))
	}
	r.srv = grpc.NewServer(opts...)
	service.New(store, service.Options{DefaultOwner: "alice"}).Register(r.srv)
	healthpb.RegisterHealthServer(r.srv, r.health)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = lis.Addr().String()
	served := make(chan struct{})
	go func() {
		defer close(served)
		r.srv.Serve(lis)
	}()
	t.Cleanup(func() {
		r.srv.Stop()
		<-served
		store.Close()
	})
	return r
}

// setServing sets the replica's health status for the whole server.
func (r *replica) setServing(serving bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if serving {
		st = healthpb.HealthCheckResponse_SERVING
	}
	r.health.SetServingStatus("", st)
}

// stopHalfWay makes the next transfer of method on r stop after n messages
// (received for an upload, sent for a download) and hang until its
// connection goes. The returned channel is closed when it stops.
func (r *replica) stopHalfWay(method string, n int) <-chan struct{} {
	stopped := make(chan struct{})
	var once sync.Once
	hold := grpc.StreamServerInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, next grpc.StreamHandler) error {
		if info.FullMethod != method {
			return next(srv, ss)
		}
		return next(srv, &haltingStream{ServerStream: ss, left: n, halt: func() { once.Do(func() { close(stopped) }) }})
	})
	r.hold.Store(&hold)
	return stopped
}

// haltingStream passes left messages in either direction, then calls halt
// and blocks until the stream's context ends.
type haltingStream struct {
	grpc.ServerStream
	left int
	halt func()
}

func (s *haltingStream) pass() error {
	if s.left > 0 {
		s.left--
		return nil
	}
	s.halt()
	<-s.Context().Done()
	return status.FromContextError(s.Context().Err()).Err()
}

func (s *haltingStream) SendMsg(m any) error {
	if err := s.pass(); err != nil {
		return err
	}
	return s.ServerStream.SendMsg(m)
}

func (s *haltingStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return s.pass()
}

// balanced returns a Client of the replicas, plaintext, as a comma-separated
// address list.
func balanced(t *testing.T, opts client.Options, rs ...*replica) *client.Client {
	t.Helper()
	var addrs []string
	for _, r := range rs {
		addrs = append(addrs, r.addr)
	}
	if opts.TLS == nil {
		opts.Plaintext = true
	}
	c, err := client.New(strings.Join(addrs, ", "), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// hello makes one SayHello call and returns the replica that handled it.
func hello(t *testing.T, ctx context.Context, c *client.Client, rs ...*replica) *replica {
	t.Helper()
	before := make([]int64, len(rs))
	for i, r := range rs {
		before[i] = r.hellos.Load()
	}
	if _, err := c.Hello(ctx, "ada", 36); err != nil {
		t.Fatalf("hello: %v", err)
	}
	for i, r := range rs {
		if r.hellos.Load() != before[i] {
			return r
		}
	}
	t.Fatal("no replica counted the hello")
	return nil
}

// helloUntil calls hello until ok accepts the replica that handled the
// last n calls in a row, and fails t if ctx ends first.
func helloUntil(t *testing.T, ctx context.Context, c *client.Client, what string, n int, ok func(*replica) bool, rs ...*replica) {
	t.Helper()
	for run := 0; run < n; {
		if ctx.Err() != nil {
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		}
		if ok(hello(t, ctx, c, rs...)) {
			run++
		} else {
			run = 0
		}
	}
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	return b
}
