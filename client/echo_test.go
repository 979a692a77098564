package client_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/greeter/greeter/identity"
	"github.com/greeter/greeter/middleware/auth"
	pb "github.com/greeter/greeter/proto/greeterpb"
)

// echoServer is a fake Greeter that names its caller, so that tests of the
// unary interceptors and credentials see what reached the server. SayHello
// answers "hello NAME from KEY[SCOPES]" (KEY is the identity's typed key).
type echoServer struct {
	pb.UnimplementedGreeterServer
}

// who describes the identity in ctx, or "nobody".
func who(ctx context.Context) string {
	id, ok := identity.FromContext(ctx)
	if !ok {
		return "nobody"
	}
	return fmt.Sprintf("%s[%s]", id.Key(), strings.Join(id.Scopes, " "))
}

func (echoServer) SayHello(ctx context.Context, r *pb.HelloRequest) (*pb.StringResponse, error) {
	return &pb.StringResponse{Message: "hello " + r.GetName() + " from " + who(ctx)}, nil
}

func (echoServer) StatFile(ctx context.Context, _ *pb.MetaData) (*pb.FileInfo, error) {
	return &pb.FileInfo{Name: who(ctx)}, nil
}

func (echoServer) DeleteFile(ctx context.Context, _ *pb.MetaData) (*pb.StringResponse, error) {
	return &pb.StringResponse{Message: "deleted by " + who(ctx)}, nil
}

func (echoServer) UploadFile(s grpc.ClientStreamingServer[pb.UploadFileRequest, pb.StringResponse]) error {
	var n int64
	for {
		m, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return s.SendAndClose(&pb.StringResponse{Message: who(s.Context()), Size: n})
		}
		if err != nil {
			return err
		}
		n += int64(len(m.GetChunkData()))
	}
}

// serveGreeter serves svc with serverOpts over bufconn and returns a client
// connection made with dialOpts (insecure transport unless dialOpts sets
// other credentials). stop closes both.
func serveGreeter(svc pb.GreeterServer, serverOpts []grpc.ServerOption, dialOpts ...grpc.DialOption) (cc *grpc.ClientConn, stop func(), err error) {
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer(serverOpts...)
	pb.RegisterGreeterServer(srv, svc)
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

// startGreeter is serveGreeter stopped when the test ends.
func startGreeter(t testing.TB, svc pb.GreeterServer, serverOpts []grpc.ServerOption, dialOpts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	cc, stop, err := serveGreeter(svc, serverOpts, dialOpts...)
	if err != nil {
		t.Fatalf("serve: %v", err)
	}
	t.Cleanup(stop)
	return cc
}

// signedToken returns an auth configuration that trusts a new Ed25519 key,
// and a token that key signed for subject with scope.
func signedToken(t testing.TB, subject, scope string) (auth.Config, string) {
	t.Helper()
	const issuer, audience, kid = "https://issuer.test", "greeterd", "k1"
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatalf("marshal public key: %v", err)
	}
	path := filepath.Join(t.TempDir(), kid+".pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatalf("write public key: %v", err)
	}
	token, err := auth.Mint(priv, auth.MintOptions{
		Subject: subject, Scopes: []string{scope}, Issuer: issuer, Audience: []string{audience},
		TTL: 10 * time.Minute, KeyID: kid,
	})
	if err != nil {
		t.Fatalf("mint: %v", err)
	}
	return auth.Config{Issuer: issuer, Audience: []string{audience}, PublicKeyFiles: []string{path}}, token
}

// logBuffer collects log output for assertions. It is safe for concurrent
// use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newLogger returns a debug-level text logger writing to a new logBuffer.
func newLogger() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}
