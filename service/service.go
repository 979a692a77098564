package service

import (
	"context"
	"fmt"
	"log/slog"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/greeter/greeter/identity"
	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/service/objname"
)

// Defaults for Options.
const (
	DefaultMaxFileSize  = 1 << 30
	DefaultChunkSize    = 256 << 10
	DefaultIdleTimeout  = 30 * time.Second
	DefaultListPageSize = 100
	MaxListPageSize     = 1000
	// DefaultResumableTTL is how long an incomplete resumable upload lives
	// after it was last written to, unless Options.ResumableTTL says
	// otherwise.
	DefaultResumableTTL = 24 * time.Hour
	maxHelloName        = 256
	maxHelloAge         = 150
)

// Options configure a Server. Zero values pick the defaults above.
type Options struct {
	// MaxFileSize is the largest file an upload may store, in bytes.
	MaxFileSize int64
	// ChunkSize is the number of bytes a download sends per message.
	ChunkSize int
	// IdleTimeout ends an upload that receives no message for this long,
	// and a download whose client reads nothing for this long.
	IdleTimeout time.Duration
	// DefaultOwner names the anonymous owner (identity key
	// anonymous:<DefaultOwner>) of requests whose context carries no
	// identity. Set it only when authentication is off: greeterd leaves it
	// empty with --auth=jwt, so that a context without an identity fails
	// closed instead of landing in a shared namespace. Empty means such
	// requests are Unauthenticated.
	DefaultOwner string
	// Logger receives server-side errors. Nil discards them.
	Logger *slog.Logger
	// Tracer starts child spans for storage work. Nil disables them.
	Tracer trace.Tracer
	// OnTransfer, when set, is called with the request's context and the
	// direction ("upload" or "download") when a transfer starts; the
	// returned func is called with the bytes moved when it ends. Metrics
	// hang here.
	OnTransfer func(ctx context.Context, direction string) func(bytes int64)
	// ResumableTTL is how long an incomplete resumable upload lives after
	// it was last written to. Zero means DefaultResumableTTL.
	ResumableTTL time.Duration
	// OnQuotaExceeded, when set, is called with the request's context and
	// the quota's subject (QuotaBytes or QuotaObjects) whenever an upload
	// is refused for a quota. Metrics hang here. The quotas themselves are
	// the store's (see Store.Usage).
	OnQuotaExceeded func(ctx context.Context, subject string)
}

// Server implements greeterpb.GreeterServer.
type Server struct {
	pb.UnimplementedGreeterServer

	store  Store
	opts   Options
	log    *slog.Logger
	tracer trace.Tracer
}

// New returns a Server that keeps files in store.
func New(store Store, opts Options) *Server {
	if opts.MaxFileSize <= 0 {
		opts.MaxFileSize = DefaultMaxFileSize
	}
	if opts.ChunkSize <= 0 {
		opts.ChunkSize = DefaultChunkSize
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.ResumableTTL <= 0 {
		opts.ResumableTTL = DefaultResumableTTL
	}
	s := &Server{store: store, opts: opts, log: opts.Logger, tracer: opts.Tracer}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.tracer == nil {
		s.tracer = noop.NewTracerProvider().Tracer("")
	}
	return s
}

// Register registers the Greeter service on r.
func (s *Server) Register(r grpc.ServiceRegistrar) {
	pb.RegisterGreeterServer(r, s)
}

// owner returns the namespace the request works in: the caller's typed
// identity key, or the anonymous default owner's when the context carries no
// identity and a DefaultOwner is configured. An identity that names no owner
// never falls back to the default.
func (s *Server) owner(ctx context.Context) (string, error) {
	id, ok := identity.FromContext(ctx)
	if !ok && s.opts.DefaultOwner != "" {
		id, ok = identity.Identity{Kind: identity.KindAnonymous, Name: s.opts.DefaultOwner}, true
	}
	if key := id.Key(); ok && key != "" {
		return key, nil
	}
	return "", status.Error(codes.Unauthenticated, "no authenticated caller")
}

// SayHello answers the tutorial's greeting.
func (s *Server) SayHello(_ context.Context, req *pb.HelloRequest) (*pb.StringResponse, error) {
	switch name := req.GetName(); {
	case name == "":
		return nil, status.Error(codes.InvalidArgument, "name must not be empty")
	case len(name) > maxHelloName:
		return nil, status.Errorf(codes.InvalidArgument, "name must be at most %d bytes, got %d", maxHelloName, len(name))
	case !utf8.ValidString(name):
		return nil, status.Error(codes.InvalidArgument, "name must be valid UTF-8")
	}
	if age := req.GetAge(); age < 0 || age > maxHelloAge {
		return nil, status.Errorf(codes.InvalidArgument, "age must be between 0 and %d, got %d", maxHelloAge, age)
	}
	return &pb.StringResponse{Message: fmt.Sprintf("Hello, %s! Your age is %d", req.GetName(), req.GetAge())}, nil
}

// objectName validates and joins a MetaData's name.
func objectName(md *pb.MetaData) (string, error) {
	name := objname.Join(md.GetFilename(), md.GetExtension())
	if err := objname.Validate(name); err != nil {
		return name, invalidInput("filename", "name", name, err)
	}
	return name, nil
}
