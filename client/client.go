// Package client is the Go API for calling greeterd: from the greeter CLI
// and from other Go services.
//
// A Client verifies the server over TLS 1.3 (optionally presenting a client
// certificate for mutual TLS), attaches a bearer token to every call, and
// moves files with bounded memory. Downloads to a path are written to a
// temporary file that is renamed into place only after its size and SHA-256
// match what the server announced, so a failed download never leaves a
// short or corrupt file under the requested name.
package client

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

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
	// DialOptions are appended to the client's own (interceptors, stats
	// handlers).
	DialOptions []grpc.DialOption
}

// Client calls one greeterd server. It is safe for concurrent use.
type Client struct {
	conn  *grpc.ClientConn
	rpc   pb.GreeterClient
	chunk int
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
	dial = append(dial, opts.DialOptions...)
	conn, err := grpc.NewClient(target, dial...)
	if err != nil {
		return nil, err
	}
	chunk := opts.ChunkSize
	if chunk <= 0 {
		chunk = DefaultChunkSize
	}
	return &Client{conn: conn, rpc: pb.NewGreeterClient(conn), chunk: chunk}, nil
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

// Result describes a stored or fetched file.
type Result struct {
	Name   string
	Size   int64
	SHA256 string
}

// Progress is called with the bytes moved so far and the total expected
// (-1 when unknown). It may be nil.
type Progress func(done, total int64)

// Upload stores the bytes of r under name. size, when not negative, is
// declared to the server, which then refuses anything else. The SHA-256 the
// server reports is compared with the one computed while sending.
func (c *Client) Upload(ctx context.Context, name string, r io.Reader, size int64, progress Progress) (Result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.rpc.UploadFile(ctx)
	if err != nil {
		return Result{}, err
	}
	md := &pb.MetaData{Filename: name}
	if size >= 0 {
		md.Size = &size
	}
	if err := stream.Send(&pb.UploadFileRequest{Request: &pb.UploadFileRequest_Metadata{Metadata: md}}); err != nil {
		return Result{}, uploadErr(stream, err)
	}
	h := sha256.New()
	buf := make([]byte, c.chunk)
	chunk := &pb.UploadFileRequest_ChunkData{}
	msg := &pb.UploadFileRequest{Request: chunk}
	var sent int64
	for {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			h.Write(buf[:n])
			chunk.ChunkData = buf[:n]
			if err := stream.Send(msg); err != nil {
				return Result{}, uploadErr(stream, err)
			}
			sent += int64(n)
			if progress != nil {
				progress(sent, size)
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return Result{}, fmt.Errorf("reading upload source: %w", rerr)
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return Result{}, err
	}
	local := hex.EncodeToString(h.Sum(nil))
	if resp.GetSha256() != local || resp.GetSize() != sent {
		return Result{}, status.Errorf(codes.DataLoss, "server stored %d bytes with sha256 %s, sent %d bytes with sha256 %s", resp.GetSize(), resp.GetSha256(), sent, local)
	}
	return Result{Name: name, Size: sent, SHA256: local}, nil
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

// UploadFile stores the file at path under name.
func (c *Client) UploadFile(ctx context.Context, path, name string, progress Progress) (Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return Result{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Result{}, err
	}
	if !st.Mode().IsRegular() {
		return Result{}, fmt.Errorf("%s is not a regular file", path)
	}
	return c.Upload(ctx, name, f, st.Size(), progress)
}

// Download writes the file name to w and checks that what arrived has the
// size and SHA-256 the server announced.
func (c *Client) Download(ctx context.Context, name string, w io.Writer, progress Progress) (Result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.rpc.DownloadFile(ctx, &pb.MetaData{Filename: name})
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
	h := sha256.New()
	var got int64
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return Result{}, err
		}
		chunk := msg.GetChunkData()
		h.Write(chunk)
		if _, err := w.Write(chunk); err != nil {
			return Result{}, err
		}
		got += int64(len(chunk))
		if progress != nil {
			progress(got, want.Size)
		}
	}
	if sum := hex.EncodeToString(h.Sum(nil)); got != want.Size || sum != want.SHA256 {
		return Result{}, status.Errorf(codes.DataLoss, "downloaded %d bytes with sha256 %s, server announced %d bytes with sha256 %s", got, sum, want.Size, want.SHA256)
	}
	return want, nil
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

// DownloadFile downloads name to path. The bytes go to a temporary file in
// path's directory that replaces path only once verified.
func (c *Client) DownloadFile(ctx context.Context, name, path string, progress Progress) (res Result, err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.part")
	if err != nil {
		return Result{}, err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if res, err = c.Download(ctx, name, tmp, progress); err != nil {
		return Result{}, err
	}
	if err = tmp.Sync(); err != nil {
		return Result{}, err
	}
	if err = tmp.Close(); err != nil {
		return Result{}, err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return Result{}, err
	}
	return res, nil
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
