package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/servicetest"
)

// cutChunks are the service options of tests that cut download connections
// after a few MiB: several 256 KiB messages fit in one connection's budget.
var cutChunks = service.Options{ChunkSize: 256 << 10}

// dial returns a Client of s whose connections go through cut (nil: no
// cuts) and that records the delays it waits instead of waiting.
func dial(t *testing.T, s *servicetest.Server, opts Options, cut *cutter) (*Client, *sleeps) {
	t.Helper()
	opts.Plaintext = true
	opts.DialOptions = append(opts.DialOptions, grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
		conn, err := s.DialContext(ctx, addr)
		if err != nil || cut == nil {
			return conn, err
		}
		return cut.wrap(conn), nil
	}))
	c, err := New(servicetest.Target, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	rec := &sleeps{}
	c.sleep = rec.sleep
	return c, rec
}

// waitForServer makes c wait, between attempts, until s has finished every
// upload stream: what a backoff long enough for the server to notice a
// broken connection does, without the test sleeping.
func waitForServer(s *servicetest.Server, c *Client) {
	c.sleep = func(ctx context.Context, _ time.Duration) error {
		select {
		case <-s.Idle(pb.Greeter_UploadFile_FullMethodName):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// waitHandled waits until s has finished a call of method.
func waitHandled(t *testing.T, ctx context.Context, s *servicetest.Server, method string) {
	t.Helper()
	if err := s.WaitHandled(ctx, method); err != nil {
		t.Fatalf("the server did not finish a %s call: %v", method, err)
	}
}

// sleeps records the delays a Client asked to wait, and returns at once.
type sleeps struct {
	mu     sync.Mutex
	delays []time.Duration
}

func (r *sleeps) sleep(ctx context.Context, d time.Duration) error {
	r.mu.Lock()
	r.delays = append(r.delays, d)
	r.mu.Unlock()
	return ctx.Err()
}

func (r *sleeps) all() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Duration(nil), r.delays...)
}

// randomFile writes n random bytes to a new file and returns its path and
// contents.
func randomFile(t *testing.T, n int) (string, []byte) {
	t.Helper()
	data := make([]byte, n)
	rand.Read(data)
	path := filepath.Join(t.TempDir(), "src.bin")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, data
}

// startWithFile starts the service as cfg says and uploads n random bytes
// to it under name. It returns the server, the Client (of dial, without
// cuts) that uploaded them, and the bytes.
func startWithFile(t *testing.T, ctx context.Context, cfg servicetest.Config, name string, n int) (*servicetest.Server, *Client, []byte) {
	t.Helper()
	srv := servicetest.Start(t, cfg)
	c, _ := dial(t, srv, Options{}, nil)
	path, data := randomFile(t, n)
	if _, err := c.UploadFile(ctx, path, name, nil); err != nil {
		t.Fatalf("uploading %s: %v", name, err)
	}
	return srv, c, data
}

// wantStored fails t unless the server stores data under name.
func wantStored(t *testing.T, ctx context.Context, c *Client, name string, data []byte) {
	t.Helper()
	var buf bytes.Buffer
	if _, err := c.Download(ctx, name, &buf, nil); err != nil {
		t.Fatalf("downloading %s: %v", name, err)
	}
	if !bytes.Equal(buf.Bytes(), data) {
		t.Fatalf("the server stores %d bytes under %s that differ from the %d uploaded", buf.Len(), name, len(data))
	}
}

// wantFile fails t unless the file at path holds data.
func wantFile(t *testing.T, path string, data []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("%s holds %d bytes that differ from the %d expected", path, len(got), len(data))
	}
}
