// Package client is the Go API for calling greeterd: from the greeter CLI
// and from other Go services.
//
// A Client verifies the server over TLS 1.3 (optionally presenting a client
// certificate for mutual TLS), attaches a bearer token to every call, and
// moves files with bounded memory.
//
// UploadFile and DownloadFile survive broken connections, server restarts
// and rate limits: they retry transient failures with bounded, jittered
// backoff (see RetryPolicy) and resume instead of starting over. An upload
// resumes from the bytes the server has committed under an upload ID
// derived from the file's name, size and SHA-256, so a later process
// uploading the same file resumes it too. A download keeps the bytes it
// received in a partial file next to the target (PartialPath), continues
// from its end, and renames it into place only once the whole file's size
// and SHA-256 match what the server announced, so a failed download never
// leaves a short or corrupt file under the requested name.
package client

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	mwclient "github.com/greeter/greeter/middleware/client"
	pb "github.com/greeter/greeter/proto/greeterpb"
)

// DefaultChunkSize is the upload chunk size used when Options.ChunkSize is 0.
const DefaultChunkSize = 256 << 10

// DefaultCallTimeout is the deadline of the unary calls a transfer makes
// when Options.CallTimeout is 0.
const DefaultCallTimeout = 30 * time.Second

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
	// CallTimeout is the deadline of the unary calls a transfer makes
	// (QueryUpload, StatFile) when its context has none sooner. Default
	// DefaultCallTimeout.
	CallTimeout time.Duration
}

// Client calls one greeterd server. It is safe for concurrent use.
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

// New returns a Client for target ("host:port"). It does not connect until
// the first call.
func New(target string, opts Options) (*Client, error) {
	var dial []grpc.DialOption
	switch {
	case opts.Plaintext && opts.PerRPC != nil:
		return nil, errors.New("client: refusing to send a token over plaintext")
	case opts.Plaintext:
		dial = append(dial, grpc.WithTransportCredentials(insecure.NewCredentials()))
	case opts.TLS == nil:
		return nil, errors.New("client: TLS configuration required (or Plaintext)")
	default:
		dial = append(dial, grpc.WithTransportCredentials(credentials.NewTLS(opts.TLS)))
	}
	if opts.PerRPC != nil {
		dial = append(dial, grpc.WithPerRPCCredentials(opts.PerRPC))
	}
	// Unary calls get a default deadline, and the idempotent ones (SayHello,
	// StatFile, ListFiles, QueryUpload) are retried on Unavailable and on
	// ResourceExhausted with RetryInfo. Transfers retry on their own terms.
	callTimeout := opts.CallTimeout
	if callTimeout <= 0 {
		callTimeout = DefaultCallTimeout
	}
	dial = append(dial, mwclient.DialOptions(mwclient.Options{Timeout: callTimeout})...)
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

// Result describes a stored or fetched file and what moving it took. A
// failed transfer still reports its name, the bytes it moved and the
// attempts it made.
type Result struct {
	Name   string
	Size   int64
	SHA256 string
	// Sent is the number of file bytes an upload sent, over all its
	// attempts. A resumed upload sends less than Size.
	Sent int64
	// Received is the number of file bytes a download received, over all
	// its attempts. A resumed download receives less than Size.
	Received int64
	// Attempts is the number of streams the transfer opened (or tried to).
	Attempts int
}

// Progress is called with the bytes of the file transferred so far and the
// total expected (-1 when unknown). A resumed transfer starts at the bytes
// already in place; a transfer that starts over goes back to 0. It may be
// nil.
type Progress func(done, total int64)

// TransferOption changes how one UploadFile or DownloadFile call behaves.
type TransferOption func(*transfer)

// transfer holds the settings of one transfer.
type transfer struct {
	retry    RetryPolicy
	noResume bool
}

// NoResume makes a transfer start from the first byte, on its first
// attempt and on every retry. An upload is sent without an upload ID, as a
// plain upload (the tutorial's protocol); a download ignores and removes
// any partial file left by an earlier run.
func NoResume() TransferOption {
	return func(t *transfer) { t.noResume = true }
}

// WithRetry replaces the Client's retry policy for one transfer.
func WithRetry(p RetryPolicy) TransferOption {
	return func(t *transfer) { t.retry = p.withDefaults() }
}

func (c *Client) transferOptions(opts []TransferOption) transfer {
	t := transfer{retry: c.retryPolicy, noResume: c.noResume}
	for _, o := range opts {
		o(&t)
	}
	return t
}

// withCallTimeout bounds a unary call a transfer makes.
func (c *Client) withCallTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.callTimeout)
}

// Upload stores the bytes of r under name in one attempt: a reader cannot
// be rewound, so nothing is retried or resumed (UploadFile does both).
// size, when not negative, is declared to the server, which then refuses
// anything else. The SHA-256 the server reports is compared with the one
// computed while sending.
func (c *Client) Upload(ctx context.Context, name string, r io.Reader, size int64, progress Progress) (Result, error) {
	res := Result{Name: name, Attempts: 1}
	md := &pb.MetaData{Filename: name}
	if size >= 0 {
		md.Size = &size
	}
	h := sha256.New()
	resp, _, err := c.send(ctx, md, r, -1, h, &res.Sent, func(n int64) {
		if progress != nil {
			progress(n, size)
		}
	})
	if err != nil {
		return res, err
	}
	local := hex.EncodeToString(h.Sum(nil))
	if err := checkStored(resp, res.Sent, local); err != nil {
		return res, err
	}
	res.Size, res.SHA256 = res.Sent, local
	return res, nil
}

// send runs one UploadFile stream: md, then the bytes of r in chunks. When
// want is not negative, r must yield exactly want bytes. Every byte sent is
// also written to h (when not nil) and counted in *sent, and report is
// called with the bytes this stream sent so far. reachedEnd reports that
// every byte was sent and the stream half-closed, so a failure came while
// waiting for the server's answer.
func (c *Client) send(ctx context.Context, md *pb.MetaData, r io.Reader, want int64, h hash.Hash, sent *int64, report func(int64)) (resp *pb.StringResponse, reachedEnd bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.rpc.UploadFile(ctx)
	if err != nil {
		return nil, false, err
	}
	if err := stream.Send(&pb.UploadFileRequest{Request: &pb.UploadFileRequest_Metadata{Metadata: md}}); err != nil {
		return nil, false, uploadErr(stream, err)
	}
	buf := make([]byte, c.chunk)
	chunk := &pb.UploadFileRequest_ChunkData{}
	msg := &pb.UploadFileRequest{Request: chunk}
	var n int64
	for {
		k, rerr := io.ReadFull(r, buf)
		if k > 0 {
			chunk.ChunkData = buf[:k]
			if err := stream.Send(msg); err != nil {
				return nil, false, uploadErr(stream, err)
			}
			if h != nil {
				h.Write(buf[:k])
			}
			n += int64(k)
			*sent += int64(k)
			report(n)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return nil, false, fmt.Errorf("reading upload source: %w", rerr)
		}
	}
	if want >= 0 && n != want {
		// Returning cancels the stream: a resumable upload keeps what
		// arrived, a plain one stores nothing.
		return nil, false, fmt.Errorf("upload source changed while uploading: read %d bytes, expected %d", n, want)
	}
	resp, err = stream.CloseAndRecv()
	return resp, true, err
}

// uploadErr returns the RPC's status after a failed Send: Send reports only
// io.EOF when the server ended the call, the reason comes from CloseAndRecv.
func uploadErr(stream grpc.ClientStreamingClient[pb.UploadFileRequest, pb.StringResponse], err error) error {
	if errors.Is(err, io.EOF) {
		_, err = stream.CloseAndRecv()
		if err == nil {
			err = status.Error(codes.Internal, "server ended the upload early without an error")
		}
	}
	return err
}

// checkStored compares what the server says it stored with what was sent.
func checkStored(resp *pb.StringResponse, size int64, sum string) error {
	if resp.GetSha256() != sum || resp.GetSize() != size {
		return status.Errorf(codes.DataLoss, "server stored %d bytes with sha256 %s, sent %d bytes with sha256 %s", resp.GetSize(), resp.GetSha256(), size, sum)
	}
	return nil
}

// Download writes the file name to w in one attempt (a writer cannot be
// rewound; DownloadFile retries and resumes) and checks that what arrived
// has the size and SHA-256 the server announced.
func (c *Client) Download(ctx context.Context, name string, w io.Writer, progress Progress) (Result, error) {
	res := Result{Name: name, Attempts: 1}
	h := sha256.New()
	var got int64
	want, err := c.receive(ctx, name, 0, nil, w, h, &got, &res.Received, progress)
	if err != nil {
		return res, err
	}
	if err := checkFetched(want, got, h); err != nil {
		return res, err
	}
	res.Size, res.SHA256 = want.Size, want.SHA256
	return res, nil
}

// errChanged means the file on the server is no longer the one an earlier
// attempt of the same download announced.
var errChanged = status.Error(codes.DataLoss, "the file changed on the server during the download")

// receive runs one DownloadFile stream of name from offset. It writes every
// chunk to w and h, counts it in *got (the bytes of the file in place) and
// *received, and reports progress. It returns what the server announced
// about the whole file; if expect is not nil and the announcement differs,
// it returns errChanged before writing anything.
func (c *Client) receive(ctx context.Context, name string, offset int64, expect *Result, w io.Writer, h hash.Hash, got, received *int64, progress Progress) (Result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.rpc.DownloadFile(ctx, &pb.MetaData{Filename: name, Offset: offset})
	if err != nil {
		return Result{}, err
	}
	hdr, err := stream.Header()
	if err != nil {
		return Result{}, err
	}
	want, err := announced(hdr)
	if err != nil {
		// The call may have failed before sending headers; prefer its status.
		if _, rerr := stream.Recv(); rerr != nil && rerr != io.EOF {
			return Result{}, rerr
		}
		return Result{}, err
	}
	want.Name = name
	if expect != nil && (want.Size != expect.Size || want.SHA256 != expect.SHA256) {
		return want, errChanged
	}
	if progress != nil {
		progress(*got, want.Size)
	}
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			return want, nil
		}
		if err != nil {
			return want, err
		}
		chunk := msg.GetChunkData()
		*received += int64(len(chunk))
		if int64(len(chunk)) > want.Size-*got {
			return want, status.Errorf(codes.DataLoss, "server sent more than the %d bytes it announced", want.Size)
		}
		if _, err := w.Write(chunk); err != nil {
			return want, err
		}
		h.Write(chunk)
		*got += int64(len(chunk))
		if progress != nil {
			progress(*got, want.Size)
		}
	}
}

// checkFetched compares what a download received with what was announced.
func checkFetched(want Result, got int64, h hash.Hash) error {
	if sum := hex.EncodeToString(h.Sum(nil)); got != want.Size || sum != want.SHA256 {
		return status.Errorf(codes.DataLoss, "downloaded %d bytes with sha256 %s, server announced %d bytes with sha256 %s", got, sum, want.Size, want.SHA256)
	}
	return nil
}

// announced reads the size and SHA-256 a download announces in its headers.
func announced(md metadata.MD) (Result, error) {
	sizes, sums := md.Get("x-greeter-size"), md.Get("x-greeter-sha256")
	if len(sizes) != 1 || len(sums) != 1 {
		return Result{}, status.Error(codes.Internal, "server did not announce the file's size and sha256")
	}
	size, err := strconv.ParseInt(sizes[0], 10, 64)
	if err != nil || size < 0 {
		return Result{}, status.Errorf(codes.Internal, "server announced an invalid size %q", sizes[0])
	}
	return Result{Size: size, SHA256: sums[0]}, nil
}

// Stat describes the file name.
func (c *Client) Stat(ctx context.Context, name string) (*pb.FileInfo, error) {
	return c.rpc.StatFile(ctx, &pb.MetaData{Filename: name})
}

// List returns every file whose name starts with prefix, following pages.
func (c *Client) List(ctx context.Context, prefix string) ([]*pb.FileInfo, error) {
	var out []*pb.FileInfo
	req := &pb.ListFilesRequest{Prefix: prefix}
	for {
		resp, err := c.rpc.ListFiles(ctx, req)
		if err != nil {
			return nil, err
		}
		out = append(out, resp.GetFiles()...)
		if resp.GetNextPageToken() == "" {
			return out, nil
		}
		req.PageToken = resp.GetNextPageToken()
	}
}

// Delete removes the file name.
func (c *Client) Delete(ctx context.Context, name string) error {
	_, err := c.rpc.DeleteFile(ctx, &pb.MetaData{Filename: name})
	return err
}
