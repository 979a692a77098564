package bench

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/greeter/greeter/certs"
	"github.com/greeter/greeter/client"
	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/diskstore"
)

// baseline is the naive server the service is measured against: a bare
// grpc-go stream that hashes and writes each chunk to a file and fsyncs it
// at the end (upload), or reads and sends a file (download). It validates
// nothing, commits nothing atomically and keeps no digest.
type baseline struct {
	pb.UnimplementedGreeterServer
	dir   string
	chunk int
}

func (b *baseline) UploadFile(stream pb.Greeter_UploadFileServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(b.dir, first.GetMetadata().GetFilename()))
	if err != nil {
		return status.Error(codes.Internal, err.Error())
	}
	defer f.Close()
	h := sha256.New()
	var n int64
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		h.Write(msg.GetChunkData())
		if _, err := f.Write(msg.GetChunkData()); err != nil {
			return status.Error(codes.Internal, err.Error())
		}
		n += int64(len(msg.GetChunkData()))
	}
	if err := f.Sync(); err != nil {
		return status.Error(codes.Internal, err.Error())
	}
	return stream.SendAndClose(&pb.StringResponse{Message: "Success!", Size: n, Sha256: fmt.Sprintf("%x", h.Sum(nil))})
}

func (b *baseline) DownloadFile(md *pb.MetaData, stream pb.Greeter_DownloadFileServer) error {
	f, err := os.Open(filepath.Join(b.dir, md.GetFilename()))
	if err != nil {
		return status.Error(codes.NotFound, err.Error())
	}
	defer f.Close()
	buf := make([]byte, b.chunk)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			if err := stream.Send(&pb.FileResponse{ChunkData: buf[:n]}); err != nil {
				return err
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return status.Error(codes.Internal, err.Error())
		}
	}
}

// env is a service server and a baseline server on loopback TLS, and a
// client of each.
type env struct {
	svc, base *client.Client
	baseDir   string
	payload   string // path of the file uploaded
	size      int64
}

func tlsConfigs(tb testing.TB) (server, clientCfg *tls.Config) {
	dev, err := certs.InitDev(tb.TempDir(), certs.DevOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	server, reloader, err := certs.ServerConfig(certs.ServerOptions{CertFile: dev.ServerCert, KeyFile: dev.ServerKey})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { reloader.Close() })
	clientCfg, err = certs.ClientConfig(certs.ClientOptions{CAFile: dev.CA})
	if err != nil {
		tb.Fatal(err)
	}
	return server, clientCfg
}

func serve(tb testing.TB, serverTLS, clientTLS *tls.Config, register func(*grpc.Server), chunk int) *client.Client {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(serverTLS)), grpc.MaxRecvMsgSize(4<<20))
	register(srv)
	go srv.Serve(lis)
	tb.Cleanup(srv.Stop)
	c, err := client.New(lis.Addr().String(), client.Options{TLS: clientTLS, ChunkSize: chunk})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

func newEnv(tb testing.TB, size int64, chunk int) *env {
	serverTLS, clientTLS := tlsConfigs(tb)
	store, err := diskstore.Open(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { store.Close() })
	e := &env{baseDir: tb.TempDir(), size: size}
	e.svc = serve(tb, serverTLS, clientTLS, func(s *grpc.Server) {
		service.New(store, service.Options{ChunkSize: chunk, DefaultOwner: "bench", MaxFileSize: size + 1}).Register(s)
	}, chunk)
	e.base = serve(tb, serverTLS, clientTLS, func(s *grpc.Server) {
		pb.RegisterGreeterServer(s, &baseline{dir: e.baseDir, chunk: chunk})
	}, chunk)
	e.payload = filepath.Join(tb.TempDir(), "payload.bin")
	f, err := os.Create(e.payload)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		tb.Fatal(err)
	}
	f.Close()
	return e
}

// timeIt runs fn and returns how long it took.
func timeIt(tb testing.TB, fn func() error) time.Duration {
	start := time.Now()
	if err := fn(); err != nil {
		tb.Fatal(err)
	}
	return time.Since(start)
}

var chunkSizes = []int{16 << 10, 64 << 10, 256 << 10, 1 << 20}

const transferSize = 64 << 20

// BenchmarkUpload uploads a 64 MiB file with the greeter client to the
// service and to the baseline, alternating, and reports both throughputs
// and their ratio (service/baseline, higher is better).
func BenchmarkUpload(b *testing.B) {
	for _, chunk := range chunkSizes {
		b.Run(fmt.Sprintf("chunk=%dKiB", chunk>>10), func(b *testing.B) {
			e := newEnv(b, transferSize, chunk)
			ctx := context.Background()
			var svc, base time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				svc += timeIt(b, func() error { _, err := e.svc.UploadFile(ctx, e.payload, "f.bin", nil, client.NoResume()); return err })
				base += timeIt(b, func() error { _, err := e.base.UploadFile(ctx, e.payload, "f.bin", nil, client.NoResume()); return err })
			}
			report(b, svc, base)
		})
	}
}

// BenchmarkDownload does the same for downloads into a file, with the
// client verifying size and SHA-256 in both cases.
func BenchmarkDownload(b *testing.B) {
	for _, chunk := range chunkSizes {
		b.Run(fmt.Sprintf("chunk=%dKiB", chunk>>10), func(b *testing.B) {
			e := newEnv(b, transferSize, chunk)
			ctx := context.Background()
			if _, err := e.svc.UploadFile(ctx, e.payload, "f.bin", nil, client.NoResume()); err != nil {
				b.Fatal(err)
			}
			if _, err := e.base.UploadFile(ctx, e.payload, "f.bin", nil, client.NoResume()); err != nil {
				b.Fatal(err)
			}
			out := filepath.Join(b.TempDir(), "out.bin")
			var svc, base time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				svc += timeIt(b, func() error { _, err := e.svc.DownloadFile(ctx, "f.bin", out, nil, client.NoResume()); return err })
				base += timeIt(b, func() error { return rawDownload(ctx, e.base, "f.bin", out) })
			}
			report(b, svc, base)
		})
	}
}

// rawDownload fetches from the baseline, which announces no digest, and
// hashes and writes what arrives, as the greeter client does.
func rawDownload(ctx context.Context, c *client.Client, name, path string) error {
	stream, err := c.Greeter().DownloadFile(ctx, &pb.MetaData{Filename: name})
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			return f.Sync()
		}
		if err != nil {
			return err
		}
		h.Write(msg.GetChunkData())
		if _, err := f.Write(msg.GetChunkData()); err != nil {
			return err
		}
	}
}

func report(b *testing.B, svc, base time.Duration) {
	b.StopTimer()
	mb := float64(transferSize) * float64(b.N) / 1e6
	b.ReportMetric(mb/svc.Seconds(), "service-MB/s")
	b.ReportMetric(mb/base.Seconds(), "baseline-MB/s")
	b.ReportMetric(base.Seconds()/svc.Seconds(), "ratio")
}
