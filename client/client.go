package client

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/greeter/greeter/internal/batchconn"
	pb "github.com/greeter/greeter/proto/greeterpb"
)

// DefaultChunkSize is the upload chunk size used when Options.ChunkSize is 0.
const DefaultChunkSize = 256 << 10

// Options configure a Client.
type Options struct {
	// TLS verifies the server and may carry a client certificate. It is
	// required unless Plaintext is set.
	TLS *tls.Config
	// Plaintext sends everything in clear. Tokens are refused over it.
	Plaintext bool
	// PerRPC attaches credentials (a bearer token) to every call. It must
	// require transport security.
	PerRPC credentials.PerRPCCredentials
	// ChunkSize is the number of bytes per upload message.
	ChunkSize int
	// DialOptions are appended to the client's own: interceptors, or the
	// tracing stats handler, grpc.WithStatsHandler(telemetry.ClientHandler(p)),
	// which propagates W3C trace context to greeterd as the CLI does.
	DialOptions []grpc.DialOption
	// Retry is how UploadFile and DownloadFile retry transient failures,
	// unless a call passes WithRetry.
	Retry RetryPolicy
	// NoResume makes every UploadFile and DownloadFile behave as if called
	// with NoResume().
	NoResume bool
	// CallTimeout is the deadline of unary calls whose context has none,
	// and bounds the unary calls a transfer makes (QueryUpload, StatFile).
	// Default DefaultCallTimeout.
	CallTimeout time.Duration
}

// Client calls greeterd: one server, or replicas that share their storage,
// over which it spreads its calls (see New). It is safe for concurrent use.
type Client struct {
	conn        *grpc.ClientConn
	rpc         pb.GreeterClient
	chunk       int
	retryPolicy RetryPolicy
	noResume    bool
	callTimeout time.Duration
	// sleep waits between attempts; tests replace it.
	sleep func(ctx context.Context, d time.Duration) error
}

// New returns a Client for target. It does not connect until the first
// call. target is one of:
//
//   - "host:port": one server, as grpc.NewClient dials it (the first
//     address the name resolves to that accepts the connection).
//   - "host:port,host:port,...": replicas of one service. Calls are spread
//     over them (round_robin), and a replica whose grpc.health.v1 status
//     is not SERVING, or whose connection is down, gets none until it is
//     back; a call that fails with Unavailable is retried (unary calls by
//     UnaryRetry, transfers by their RetryPolicy) and may land on another
//     replica, where a transfer resumes (see UploadFile, DownloadFile).
//   - "dns:///name:port": replicas behind one DNS name, every address it
//     resolves to, balanced and health-checked as a list is. Other targets
//     grpc.NewClient understands ("unix:///path", "passthrough:///...") are
//     passed to it as they are.
//
// Balancing holds one health Watch stream open on each replica, which
// greeterd counts against --max-public-streams-per-peer.
//
// Over TLS, every replica of a list is verified under one name:
// Options.TLS.ServerName if set, else the host of the first address. Give
// the replicas certificates for a common name (or for every address), or
// set ServerName; a dns:/// target verifies its name.
func New(target string, opts Options) (*Client, error) {
	target, dial, err := dialTarget(target)
	if err != nil {
		return nil, err
	}
	switch {
	case opts.Plaintext && opts.PerRPC != nil:
		return nil, errors.New("client: refusing to send a token over plaintext")
	case opts.Plaintext:
		dial = append(dial, grpc.WithTransportCredentials(insecure.NewCredentials()))
	case opts.TLS == nil:
		return nil, errors.New("client: TLS configuration required (or Plaintext)")
	default:
		dial = append(dial, grpc.WithTransportCredentials(batchconn.Credentials(credentials.NewTLS(opts.TLS))))
	}
	if opts.PerRPC != nil {
		dial = append(dial, grpc.WithPerRPCCredentials(opts.PerRPC))
	}
	// Unary calls get a default deadline, and the idempotent ones (SayHello,
	// StatFile, ListFiles, QueryUpload, GetUsage) are retried on Unavailable and on
	// ResourceExhausted with RetryInfo. Transfers retry on their own terms.
	callTimeout := opts.CallTimeout
	if callTimeout <= 0 {
		callTimeout = DefaultCallTimeout
	}
	dial = append(dial, grpc.WithWriteBufferSize(256<<10), grpc.WithSharedWriteBuffer(true))
	dial = append(dial, DialOptions(DialConfig{Timeout: callTimeout})...)
	dial = append(dial, opts.DialOptions...)
	conn, err := grpc.NewClient(target, dial...)
	if err != nil {
		return nil, err
	}
	chunk := opts.ChunkSize
	if chunk <= 0 {
		chunk = DefaultChunkSize
	}
	return &Client{
		conn:        conn,
		rpc:         pb.NewGreeterClient(conn),
		chunk:       chunk,
		retryPolicy: opts.Retry.withDefaults(),
		noResume:    opts.NoResume,
		callTimeout: callTimeout,
		sleep:       sleep,
	}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Greeter returns the raw generated client for calls this API does not wrap.
func (c *Client) Greeter() pb.GreeterClient { return c.rpc }

// Hello calls SayHello and returns the greeting.
func (c *Client) Hello(ctx context.Context, name string, age int32) (string, error) {
	resp, err := c.rpc.SayHello(ctx, &pb.HelloRequest{Name: name, Age: age})
	if err != nil {
		return "", err
	}
	return resp.GetMessage(), nil
}

// Stat describes the file name.
func (c *Client) Stat(ctx context.Context, name string) (*pb.FileInfo, error) {
	return c.rpc.StatFile(ctx, &pb.MetaData{Filename: name})
}

// MaxListPages is the most pages List asks for in one listing.
const MaxListPages = 10000

// ErrEndlessListing is wrapped by the error of a List whose server hands
// out page tokens that never end: a token it gave before, or more than
// MaxListPages pages.
//
// It is a plain error, not a status: the server answered every call, so no
// status code describes what went wrong, and one made up here would read
// as the server's verdict (the CLI maps codes to exit codes).
var ErrEndlessListing = errors.New("the server's listing does not end")

// List returns every file whose name starts with prefix, following pages.
// It stops with ErrEndlessListing when the server repeats a page token or
// sends more than MaxListPages pages.
func (c *Client) List(ctx context.Context, prefix string) ([]*pb.FileInfo, error) {
	var out []*pb.FileInfo
	req := &pb.ListFilesRequest{Prefix: prefix}
	// The page each token came with, keyed by the token's hash so that
	// huge tokens cost no more memory than small ones.
	seen := make(map[[sha256.Size]byte]int)
	for page := 1; ; page++ {
		resp, err := c.rpc.ListFiles(ctx, req)
		if err != nil {
			return nil, err
		}
		out = append(out, resp.GetFiles()...)
		token := resp.GetNextPageToken()
		if token == "" {
			return out, nil
		}
		key := sha256.Sum256([]byte(token))
		if first, ok := seen[key]; ok {
			return nil, fmt.Errorf("list: %w: page %d repeats the page token of page %d", ErrEndlessListing, page, first)
		}
		if page == MaxListPages {
			return nil, fmt.Errorf("list: %w: more than %d pages", ErrEndlessListing, MaxListPages)
		}
		seen[key] = page
		req.PageToken = token
	}
}

// Usage reports the caller's storage use and quotas (GetUsage). A quota of
// 0 means none.
func (c *Client) Usage(ctx context.Context) (*pb.Usage, error) {
	return c.rpc.GetUsage(ctx, &pb.UsageRequest{})
}

// Delete removes the file name.
func (c *Client) Delete(ctx context.Context, name string) error {
	_, err := c.rpc.DeleteFile(ctx, &pb.MetaData{Filename: name})
	return err
}
