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
	"google.golang.org/grpc/test/bufconn"

	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/diskstore"
)

// testServer is the real service over the real disk store, served on a
// bufconn. Tests add interceptors to inject faults.
type testServer struct {
	t     *testing.T
	lis   *bufconn.Listener
	store *diskstore.Store
	// handled receives the full method name of every RPC once its handler
	// has returned.
	handled chan string

	mu      sync.Mutex
	uploads int           // UploadFile handlers running
	idle    chan struct{} // closed when uploads drops to 0
}

// serverConfig changes what startServer builds.
type serverConfig struct {
	// wrap picks what the service sees of the disk store.
	wrap   func(*diskstore.Store) service.Store
	unary  grpc.UnaryServerInterceptor
	stream grpc.StreamServerInterceptor
	opts   service.Options
}

func startServer(t *testing.T, cfg serverConfig) *testServer {
	t.Helper()
	store, err := diskstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.opts.ChunkSize == 0 {
		// The connection cutters count bytes in MiB; several download
		// messages must fit in one connection's budget.
		cfg.opts.ChunkSize = 256 << 10
	}
	s := &testServer{t: t, lis: bufconn.Listen(1 << 20), store: store, handled: make(chan string, 1024)}
	unary := []grpc.UnaryServerInterceptor{func(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
		defer func() { s.handled <- info.FullMethod }()
		return next(ctx, req)
	}}
	stream := []grpc.StreamServerInterceptor{func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, next grpc.StreamHandler) error {
		defer func() { s.handled <- info.FullMethod }()
		if info.FullMethod == pb.Greeter_UploadFile_FullMethodName {
			s.uploadStarted()
			defer s.uploadEnded()
		}
		return next(srv, ss)
	}}
	if cfg.unary != nil {
		unary = append(unary, cfg.unary)
	}
	if cfg.stream != nil {
		stream = append(stream, cfg.stream)
	}
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(unary...), grpc.ChainStreamInterceptor(stream...))
	opts := cfg.opts
	opts.DefaultOwner = "alice"
	var st service.Store = store
	if cfg.wrap != nil {
		st = cfg.wrap(store)
	}
	service.New(st, opts).Register(srv)
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(s.lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-served
		store.Close()
	})
	return s
}

// client returns a Client of s whose connections go through cut (nil: no
// cuts) and that records the delays it waits instead of waiting.
func (s *testServer) client(opts Options, cut *cutter) (*Client, *sleeps) {
	s.t.Helper()
	opts.Plaintext = true
	opts.DialOptions = append(opts.DialOptions, grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
		conn, err := s.lis.DialContext(ctx)
		if err != nil || cut == nil {
			return conn, err
		}
		return cut.wrap(conn), nil
	}))
	c, err := New("passthrough:///bufconn", opts)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { c.Close() })
	rec := &sleeps{}
	c.sleep = rec.sleep
	return c, rec
}

func (s *testServer) uploadStarted() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.uploads == 0 {
		s.idle = make(chan struct{})
	}
	s.uploads++
}

func (s *testServer) uploadEnded() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.uploads--
	if s.uploads == 0 {
		close(s.idle)
	}
}

// noUploads returns a channel that is closed when no UploadFile handler is
// running.
func (s *testServer) noUploads() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.uploads == 0 {
		done := make(chan struct{})
		close(done)
		return done
	}
	return s.idle
}

// waitForServer makes c wait, between attempts, until the server has
// finished every upload stream: what a backoff long enough for the server
// to notice a broken connection does, without the test sleeping.
func (s *testServer) waitForServer(c *Client) {
	c.sleep = func(ctx context.Context, _ time.Duration) error {
		select {
		case <-s.noUploads():
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// waitHandled waits until the server has finished an RPC of method.
func (s *testServer) waitHandled(ctx context.Context, method string) {
	s.t.Helper()
	for {
		select {
		case m := <-s.handled:
			if m == method {
				return
			}
		case <-ctx.Done():
			s.t.Fatalf("the server did not finish a %s call: %v", method, ctx.Err())
		}
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

// cutter breaks connections: the n-th connection dialed is closed once
// budgets[n] bytes went through it in either direction. Connections past
// the list are left alone.
type cutter struct {
	mu      sync.Mutex
	budgets []int64
	dialed  int
	cuts    int
}

func (c *cutter) wrap(conn net.Conn) net.Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.dialed
	c.dialed++
	if n >= len(c.budgets) {
		return conn
	}
	return &cutConn{Conn: conn, c: c, left: c.budgets[n]}
}

// cutCount returns how many connections were cut.
func (c *cutter) cutCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cuts
}

type cutConn struct {
	net.Conn
	c    *cutter
	mu   sync.Mutex
	left int64
	cut  bool
}

// spend counts n bytes and closes the connection once the budget is gone.
func (c *cutConn) spend(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.left -= int64(n)
	if c.left > 0 || c.cut {
		return
	}
	c.cut = true
	c.Conn.Close()
	c.c.mu.Lock()
	c.c.cuts++
	c.c.mu.Unlock()
}

func (c *cutConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.spend(n)
	return n, err
}

func (c *cutConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.spend(n)
	return n, err
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

// observedStore is the disk store whose resumable uploads call onWrite
// with their size after every write.
type observedStore struct {
	*diskstore.Store
	onWrite func(written int64)
}

func (o *observedStore) BeginResumable(ctx context.Context, owner string, r service.Resume) (service.ResumableUpload, error) {
	up, err := o.Store.BeginResumable(ctx, owner, r)
	if err != nil {
		return nil, err
	}
	return &observedUpload{ResumableUpload: up, onWrite: o.onWrite}, nil
}

type observedUpload struct {
	service.ResumableUpload
	onWrite func(int64)
}

func (u *observedUpload) Write(b []byte) (int, error) {
	n, err := u.ResumableUpload.Write(b)
	u.onWrite(u.ResumableUpload.Written())
	return n, err
}

// plainStore hides the disk store's resumable uploads, like a store that
// cannot keep them.
type plainStore struct{ service.Store }
