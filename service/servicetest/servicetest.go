// Package servicetest starts the real Greeter service for tests, in the
// spirit of net/http/httptest: over an in-memory connection (bufconn), on
// the real disk store in a temporary directory, behind a test identity
// plugin, with a fake clock for the store.
//
// It guarantees that:
//
//   - Stop, which runs when the test ends, returns only once Serve and every
//     handler have returned and the store is closed, so a test may inspect
//     the data directory afterwards and a leak checker sees none of the
//     server's goroutines;
//   - reports of handlers starting and returning (Await, WaitHandled, Idle)
//     are never lost and never block the server;
//   - time moves for the store only when the test calls Clock.Advance.
//
// A test reaches the service through Server.Client, through a connection
// with dial options of its own (Server.NewConn), or dials it itself with
// Server.DialContext and Target, for example to wrap the connection. Faults
// are injected with interceptors in Config.Unary and Config.Stream, such as
// those of Faults and Answer; Config.ServerOptions put the service behind
// TLS or a middleware chain.
package servicetest

import (
	"cmp"
	"context"
	"errors"
	"net"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/diskstore"
)

// Target is the address a test passes to grpc.NewClient, together with
// grpc.WithContextDialer(Server.DialContext), to reach the service.
const Target = "passthrough:///bufconn"

// DefaultOwner is the caller of calls that name no owner (see AsOwner),
// unless Config.Options.DefaultOwner says otherwise; its files are kept
// under OwnerKey(DefaultOwner).
const DefaultOwner = "alice"

// Config changes what Start builds. The zero Config serves the service with
// its default options on the disk store.
type Config struct {
	// Options configure the service. Options.DefaultOwner, if set, names
	// the caller of calls that name no owner instead of DefaultOwner; the
	// test identity plugin then gives them its identity, so the service's
	// own default-owner path is not used.
	Options service.Options
	// StoreOptions are passed to diskstore.Open after the one that installs
	// the fake clock.
	StoreOptions []diskstore.Option
	// Plain hides the store's resumable uploads from the service, as a store
	// that cannot keep uploads across streams would.
	Plain bool
	// Unary and Stream run around the handlers, inside the identity plugin
	// and inside the interceptors of ServerOptions, in order: the hooks
	// through which a test injects faults into the calls of a method (they
	// see info.FullMethod; see Faults and Answer) or observes them, for
	// example the identity an authentication plugin put into the context.
	Unary  []grpc.UnaryServerInterceptor
	Stream []grpc.StreamServerInterceptor
	// ServerOptions are passed to grpc.NewServer, for example grpc.Creds to
	// serve over TLS, or a middleware chain's options to run the service
	// behind it. The interceptors they chain (grpc.ChainUnaryInterceptor,
	// grpc.ChainStreamInterceptor) run inside the identity plugin, so an
	// authentication plugin among them replaces the test identity, and
	// outside Unary and Stream. With grpc.Creds, Conn and Client do not
	// reach the service: dial it with DialContext and matching credentials.
	ServerOptions []grpc.ServerOption
}

// Server is the Greeter service running for one test. Restart replaces
// Store, Conn and Client; read them after it, not before.
type Server struct {
	// Dir is the disk store's data directory. It outlives Restart and is
	// removed when the test ends.
	Dir string
	// Store is the disk store the service runs on.
	Store *Store
	// Clock is the store's clock.
	Clock *Clock
	// Conn is a client connection to the service.
	Conn *grpc.ClientConn
	// Client is a Greeter client over Conn.
	Client pb.GreeterClient

	tb    testing.TB
	cfg   Config
	calls *callLog

	mu       sync.Mutex // guards lis against Restart while dialers run
	lis      *bufconn.Listener
	srv      *grpc.Server
	served   chan struct{}
	serveErr error
	running  bool
}

// Start serves the service as cfg says, on a disk store in tb.TempDir(),
// and stops it when the test ends.
func Start(tb testing.TB, cfg Config) *Server {
	tb.Helper()
	s := &Server{Dir: tb.TempDir(), Clock: NewClock(), tb: tb, cfg: cfg, calls: newCallLog()}
	s.start()
	tb.Cleanup(s.Stop)
	return s
}

// start opens the store and serves it over a new listener.
func (s *Server) start() {
	s.tb.Helper()
	opts := append([]diskstore.Option{diskstore.WithClock(s.Clock.Now)}, s.cfg.StoreOptions...)
	disk, err := diskstore.Open(s.Dir, opts...)
	if err != nil {
		s.tb.Fatalf("servicetest: opening the store: %v", err)
	}
	s.Store = &Store{Store: disk}
	var store service.Store = s.Store
	if s.cfg.Plain {
		store = plainStore{s.Store}
	}

	// grpc-go runs chained interceptors in the order of their options.
	id := identityPlugin{defaultOwner: cmp.Or(s.cfg.Options.DefaultOwner, DefaultOwner)}
	serverOpts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(s.calls.unary, id.unary),
		grpc.ChainStreamInterceptor(s.calls.stream, id.stream),
	}
	serverOpts = append(serverOpts, s.cfg.ServerOptions...)
	serverOpts = append(serverOpts,
		grpc.ChainUnaryInterceptor(s.cfg.Unary...),
		grpc.ChainStreamInterceptor(s.cfg.Stream...),
		grpc.WaitForHandlers(true), // so that Stop returns after the handlers
	)
	srv := grpc.NewServer(serverOpts...)
	service.New(store, s.cfg.Options).Register(srv)
	lis := bufconn.Listen(1 << 20)
	served := make(chan struct{})
	go func() {
		defer close(served)
		// Serve started after Stop returns ErrServerStopped: a test that
		// ends at once is no failure.
		if err := srv.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			s.serveErr = err // read after served is closed
		}
	}()
	s.mu.Lock()
	s.lis, s.srv, s.served, s.running = lis, srv, served, true
	s.mu.Unlock()

	conn, err := s.NewConn()
	if err != nil {
		s.tb.Fatalf("servicetest: %v", err)
	}
	s.Conn, s.Client = conn, pb.NewGreeterClient(conn)
}

// DialContext connects to the service over its in-memory listener. It has
// the signature grpc.WithContextDialer takes, and ignores the address, so a
// test may wrap the connection it returns (to cut it, or count bytes).
func (s *Server) DialContext(ctx context.Context, _ string) (net.Conn, error) {
	s.mu.Lock()
	lis := s.lis
	s.mu.Unlock()
	return lis.DialContext(ctx)
}

// NewConn returns a new client connection to the service, made with
// insecure transport credentials and DialContext followed by opts, so that
// opts may replace either. The caller closes it.
func (s *Server) NewConn(opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithContextDialer(s.DialContext)}, opts...)
	return grpc.NewClient(Target, opts...)
}

// Restart stops the server and closes the store, then opens a new store on
// the same directory and serves it, as a restart of greeterd would. The
// clock and the reports of earlier calls carry over.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Stop()
	s.start()
}

// Stop closes Conn, stops the server, waits for Serve and every handler to
// return and closes the store. It runs when the test ends; calling it again
// does nothing.
func (s *Server) Stop() {
	s.tb.Helper()
	s.mu.Lock()
	running := s.running
	s.running = false
	s.mu.Unlock()
	if !running {
		return
	}
	s.Conn.Close()
	s.srv.Stop()
	<-s.served
	if s.serveErr != nil {
		s.tb.Errorf("servicetest: Serve: %v", s.serveErr)
	}
	if err := s.Store.Close(); err != nil {
		s.tb.Errorf("servicetest: closing the store: %v", err)
	}
}
