// Package greetertest runs the real generated Greeter service, backed by a
// small fake, behind a middleware chain over an in-memory connection, for the
// tests of the middleware packages.
//
// The fake echoes the caller's identity and panics on demand, so that tests
// can observe what the chain let through.
package greetertest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/greeter/greeter/identity"
	"github.com/greeter/greeter/proto/greeterpb"
)

// PanicName makes the fake panic: as a SayHello name, as an upload's or
// download's filename, or as a StatFile filename.
const PanicName = "panic"

// PanicValue is the value the fake panics with. It plays a secret that must
// never reach a client.
const PanicValue = "secret-panic-value-s3cr3t"

// ChunkSize is the size of each chunk DownloadFile sends.
const ChunkSize = 64 << 10

// Server is a fake Greeter. SayHello answers "hello NAME from KEY[SCOPES]"
// (KEY is the caller's identity.Identity.Key); UploadFile counts the bytes it receives; DownloadFile sends
// MetaData.Limit bytes in ChunkSize chunks; StatFile names the caller.
type Server struct {
	greeterpb.UnimplementedGreeterServer
}

// Who describes the identity in ctx, or "nobody".
func Who(ctx context.Context) string {
	id, ok := identity.FromContext(ctx)
	if !ok {
		return "nobody"
	}
	return fmt.Sprintf("%s[%s]", id.Key(), strings.Join(id.Scopes, " "))
}

// SayHello implements greeterpb.GreeterServer.
func (Server) SayHello(ctx context.Context, r *greeterpb.HelloRequest) (*greeterpb.StringResponse, error) {
	if r.GetName() == PanicName {
		panic(PanicValue)
	}
	return &greeterpb.StringResponse{Message: "hello " + r.GetName() + " from " + Who(ctx)}, nil
}

// UploadFile implements greeterpb.GreeterServer.
func (Server) UploadFile(s grpc.ClientStreamingServer[greeterpb.UploadFileRequest, greeterpb.StringResponse]) error {
	var n int64
	for {
		m, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return s.SendAndClose(&greeterpb.StringResponse{Message: Who(s.Context()), Size: n})
		}
		if err != nil {
			return err
		}
		if m.GetMetadata().GetFilename() == PanicName {
			panic(PanicValue)
		}
		n += int64(len(m.GetChunkData()))
	}
}

// DownloadFile implements greeterpb.GreeterServer.
func (Server) DownloadFile(m *greeterpb.MetaData, s grpc.ServerStreamingServer[greeterpb.FileResponse]) error {
	buf := make([]byte, ChunkSize)
	for left := m.GetLimit(); left > 0; {
		n := min(left, int64(len(buf)))
		if err := s.Send(&greeterpb.FileResponse{ChunkData: buf[:n]}); err != nil {
			return err
		}
		if m.GetFilename() == PanicName {
			panic(PanicValue)
		}
		left -= n
	}
	return nil
}

// ListFiles implements greeterpb.GreeterServer.
func (Server) ListFiles(ctx context.Context, _ *greeterpb.ListFilesRequest) (*greeterpb.ListFilesResponse, error) {
	return &greeterpb.ListFilesResponse{}, nil
}

// StatFile implements greeterpb.GreeterServer.
func (Server) StatFile(ctx context.Context, m *greeterpb.MetaData) (*greeterpb.FileInfo, error) {
	if m.GetFilename() == PanicName {
		panic(PanicValue)
	}
	return &greeterpb.FileInfo{Name: Who(ctx)}, nil
}

// DeleteFile implements greeterpb.GreeterServer. A filename starting with
// "missing" gives NotFound with the raw filename in the message, as a
// careless handler might.
func (Server) DeleteFile(ctx context.Context, m *greeterpb.MetaData) (*greeterpb.StringResponse, error) {
	if strings.HasPrefix(m.GetFilename(), "missing") {
		return nil, status.Error(codes.NotFound, "no such file: "+m.GetFilename())
	}
	return &greeterpb.StringResponse{Message: "deleted by " + Who(ctx)}, nil
}

// QueryUpload implements greeterpb.GreeterServer.
func (Server) QueryUpload(ctx context.Context, r *greeterpb.QueryUploadRequest) (*greeterpb.UploadStatus, error) {
	return &greeterpb.UploadStatus{UploadId: r.GetUploadId()}, nil
}

// Start serves the fake Greeter (and the standard health service) with serverOpts over bufconn and returns a
// client connection made with dialOpts (insecure transport unless dialOpts
// sets other credentials). Both are closed when the test ends.
func Start(t testing.TB, serverOpts []grpc.ServerOption, dialOpts ...grpc.DialOption) *grpc.ClientConn {
	return StartService(t, Server{}, serverOpts, dialOpts...)
}

// StartService is Start with a caller-supplied Greeter implementation.
func StartService(t testing.TB, svc greeterpb.GreeterServer, serverOpts []grpc.ServerOption, dialOpts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	cc, stop, err := Serve(svc, serverOpts, dialOpts...)
	if err != nil {
		t.Fatalf("serve: %v", err)
	}
	t.Cleanup(stop)
	return cc
}

// Serve is StartService for callers without a testing.TB (examples). stop
// closes the connection and stops the server.
func Serve(svc greeterpb.GreeterServer, serverOpts []grpc.ServerOption, dialOpts ...grpc.DialOption) (cc *grpc.ClientConn, stop func(), err error) {
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer(serverOpts...)
	greeterpb.RegisterGreeterServer(srv, svc)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	opts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
	}, dialOpts...)
	cc, err = grpc.NewClient("passthrough:///bufnet", opts...)
	if err != nil {
		srv.Stop()
		<-done
		return nil, nil, err
	}
	return cc, func() {
		_ = cc.Close()
		srv.Stop()
		<-done
	}, nil
}
