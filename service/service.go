package service

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/greeter/greeter/identity"
	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/proto/wire"
	"github.com/greeter/greeter/service/objname"
)

// Defaults for Options.
const (
	DefaultMaxFileSize  = 1 << 30
	DefaultChunkSize    = 256 << 10
	DefaultIdleTimeout  = 30 * time.Second
	DefaultListPageSize = 100
	MaxListPageSize     = 1000
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
	// OnTransfer, when set, is called with the direction ("upload" or
	// "download") when a transfer starts; the returned func is called with
	// the bytes moved when it ends. Metrics hang here.
	OnTransfer func(ctx context.Context, direction string) func(bytes int64)
	// ResumableTTL is how long an incomplete resumable upload lives after
	// it was last written to. Zero means DefaultResumableTTL.
	ResumableTTL time.Duration
}

// Server implements greeterpb.GreeterServer.
type Server struct {
	pb.UnimplementedGreeterServer

	store   Store
	opts    Options
	log     *slog.Logger
	tracer  trace.Tracer
	buffers sync.Pool
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
	s := &Server{store: store, opts: opts, log: opts.Logger, tracer: opts.Tracer}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.tracer == nil {
		s.tracer = noop.NewTracerProvider().Tracer("")
	}
	chunk := opts.ChunkSize
	s.buffers.New = func() any { b := make([]byte, chunk); return &b }
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
		return name, status.Errorf(codes.InvalidArgument, "invalid name %q: %v", name, err)
	}
	return name, nil
}

// expectation turns what an uploader declared into an Expect.
func (s *Server) expectation(md *pb.MetaData) (Expect, error) {
	var want Expect
	if md.Size != nil {
		size := md.GetSize()
		if size < 0 {
			return want, status.Errorf(codes.InvalidArgument, "declared size must not be negative, got %d", size)
		}
		if size > s.opts.MaxFileSize {
			return want, status.Errorf(codes.ResourceExhausted, "declared size %d exceeds the maximum file size of %d bytes", size, s.opts.MaxFileSize)
		}
		want.Size, want.HasSize = size, true
	}
	if d := md.GetSha256(); d != "" {
		if len(d) != hex.EncodedLen(len(want.SHA256)) {
			return want, status.Errorf(codes.InvalidArgument, "declared sha256 must be %d hex digits, got %d characters", hex.EncodedLen(len(want.SHA256)), len(d))
		}
		if _, err := hex.Decode(want.SHA256[:], []byte(d)); err != nil {
			return want, status.Error(codes.InvalidArgument, "declared sha256 must be hex digits")
		}
		want.HasSHA256 = true
	}
	return want, nil
}

// UploadFile stores the streamed file. The first message must carry
// MetaData and no later one may; the file becomes visible only after every
// byte arrived, matched what was declared, and was made durable.
func (s *Server) UploadFile(stream pb.Greeter_UploadFileServer) (err error) {
	ctx := stream.Context()
	defer recordOutcome(ctx, &err)
	owner, err := s.owner(ctx)
	if err != nil {
		return err
	}
	recv := newReceiver(ctx, stream, s.opts.IdleTimeout)
	defer recv.stop()

	first, err := recv.next()
	switch {
	case errors.Is(err, io.EOF):
		return status.Error(codes.InvalidArgument, "empty upload: the first message must carry metadata")
	case err != nil:
		return s.toStatus(ctx, "", err)
	}
	md := first.GetMetadata()
	if md == nil {
		return status.Error(codes.InvalidArgument, "the first message must carry metadata, not chunk_data")
	}
	name, err := objectName(md)
	if err != nil {
		return err
	}
	want, err := s.expectation(md)
	if err != nil {
		return err
	}
	if md.GetUploadId() != "" || md.GetOffset() != 0 {
		return s.uploadResumable(stream, recv, owner, name, md, want)
	}
	trace.SpanFromContext(ctx).SetAttributes(attribute.String("greeter.owner", owner), attribute.String("greeter.object", truncate(name, 128)))

	var moved int64
	if s.opts.OnTransfer != nil {
		done := s.opts.OnTransfer(ctx, "upload")
		defer func() { done(moved) }()
	}

	up, err := s.store.Create(ctx, owner, name)
	if err != nil {
		return s.toStatus(ctx, name, err)
	}
	defer up.Abort() // No-op once committed; drops the temporary otherwise, even on panic.

	limit := s.opts.MaxFileSize
	if want.HasSize {
		limit = want.Size
	}
	chunks := 0
	for {
		msg, err := recv.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return s.toStatus(ctx, name, err)
		}
		if msg.GetMetadata() != nil {
			return status.Error(codes.InvalidArgument, "metadata may only be sent in the first message")
		}
		chunk := msg.GetChunkData()
		if int64(len(chunk)) > limit-up.Written() {
			if want.HasSize {
				return status.Errorf(codes.InvalidArgument, "upload of %q: more bytes than the declared size of %d", name, want.Size)
			}
			return status.Errorf(codes.ResourceExhausted, "upload of %q exceeds the maximum file size of %d bytes", name, s.opts.MaxFileSize)
		}
		if _, err := up.Write(chunk); err != nil {
			return s.toStatus(ctx, name, err)
		}
		moved += int64(len(chunk))
		chunks++
	}

	return s.commit(stream, up, name, want, chunks)
}

// commit verifies and publishes a received upload, under a storage.commit
// span, and answers the client with what was stored.
func (s *Server) commit(stream pb.Greeter_UploadFileServer, up Upload, name string, want Expect, chunks int) error {
	ctx := stream.Context()
	cctx, commitSpan := s.tracer.Start(ctx, "storage.commit")
	info, err := up.Commit(cctx, want)
	commitSpan.End()
	if err != nil {
		return s.toStatus(ctx, name, err)
	}
	sum := hex.EncodeToString(info.SHA256[:])
	trace.SpanFromContext(ctx).SetAttributes(attribute.Int64("greeter.bytes", info.Size), attribute.Int("greeter.chunks", chunks), attribute.String("greeter.sha256", sum))
	return stream.SendAndClose(&pb.StringResponse{Message: "Success!", Size: info.Size, Sha256: sum})
}

// DownloadFile streams a stored file, or the range offset..offset+limit of
// it. The size and SHA-256 of the whole file are sent as header metadata
// before the first chunk.
func (s *Server) DownloadFile(md *pb.MetaData, stream pb.Greeter_DownloadFileServer) (err error) {
	ctx := stream.Context()
	defer recordOutcome(ctx, &err)
	owner, err := s.owner(ctx)
	if err != nil {
		return err
	}
	name, err := objectName(md)
	if err != nil {
		return err
	}
	offset, limit := md.GetOffset(), md.GetLimit()
	if offset < 0 {
		return status.Errorf(codes.InvalidArgument, "offset must not be negative, got %d", offset)
	}
	if limit < 0 {
		return status.Errorf(codes.InvalidArgument, "limit must not be negative, got %d", limit)
	}
	trace.SpanFromContext(ctx).SetAttributes(attribute.String("greeter.owner", owner), attribute.String("greeter.object", truncate(name, 128)))

	f, err := s.store.Open(ctx, owner, name)
	if err != nil {
		return s.toStatus(ctx, name, err)
	}
	closeFile := true // until the sending goroutine takes the file over
	defer func() {
		if closeFile {
			f.Close()
		}
	}()
	info := f.Info()
	if offset > info.Size {
		return status.Errorf(codes.OutOfRange, "offset %d is past the end of %q (%d bytes)", offset, name, info.Size)
	}
	end := info.Size
	if limit > 0 && limit < end-offset {
		end = offset + limit
	}
	header := metadata.Pairs(wire.HeaderSize, strconv.FormatInt(info.Size, 10), wire.HeaderSHA256, hex.EncodeToString(info.SHA256[:]))
	if err := stream.SendHeader(header); err != nil {
		return s.toStatus(ctx, name, err)
	}

	var moved atomic.Int64
	if s.opts.OnTransfer != nil {
		done := s.opts.OnTransfer(ctx, "download")
		defer func() { done(moved.Load()) }()
	}

	// The sending runs on its own goroutine so that the handler can give up
	// on a client that stops reading: SendMsg blocks on flow control and only
	// the end of the RPC unblocks it. The goroutine owns the file and the
	// buffer and releases them when its Send fails after the RPC ended.
	progress := make(chan struct{}, 1)
	result := make(chan error, 1)
	closeFile = false
	go func() {
		defer f.Close()
		result <- s.sendRange(stream, f, name, offset, end, &moved, progress)
	}()
	stall := time.NewTimer(s.opts.IdleTimeout)
	defer stall.Stop()
	for {
		select {
		case err := <-result:
			return err
		case <-progress:
			stall.Reset(s.opts.IdleTimeout)
		case <-stall.C:
			return status.Errorf(codes.DeadlineExceeded, "download stalled: the client read nothing for %s", s.opts.IdleTimeout)
		}
	}
}

// sendRange streams bytes offset..end of f, signalling progress after each
// message without ever blocking on it.
func (s *Server) sendRange(stream pb.Greeter_DownloadFileServer, f File, name string, offset, end int64, moved *atomic.Int64, progress chan<- struct{}) error {
	ctx := stream.Context()
	bufp := s.buffers.Get().(*[]byte)
	defer s.buffers.Put(bufp)
	buf := *bufp
	// The response message and its buffer are reused: grpc-go has encoded
	// the message by the time SendMsg returns, and no stats handler we
	// install keeps payloads.
	resp := &pb.FileResponse{}
	for off := offset; off < end; {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), end-off)], off)
		if n > 0 {
			resp.ChunkData = buf[:n]
			if err := stream.Send(resp); err != nil {
				return s.toStatus(ctx, name, err)
			}
			off += int64(n)
			moved.Add(int64(n))
			select {
			case progress <- struct{}{}:
			default:
			}
		}
		if errors.Is(err, io.EOF) && off < end {
			return status.Errorf(codes.DataLoss, "%q shrank while it was being read", name)
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return s.toStatus(ctx, name, err)
		}
	}
	return nil
}

// ListFiles lists the caller's files whose names start with a prefix.
func (s *Server) ListFiles(ctx context.Context, req *pb.ListFilesRequest) (*pb.ListFilesResponse, error) {
	owner, err := s.owner(ctx)
	if err != nil {
		return nil, err
	}
	if err := objname.ValidatePrefix(req.GetPrefix()); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "invalid prefix %q: %v", req.GetPrefix(), err)
	}
	size := int(req.GetPageSize())
	switch {
	case size < 0:
		return nil, status.Errorf(codes.InvalidArgument, "page_size must not be negative, got %d", size)
	case size == 0:
		size = DefaultListPageSize
	case size > MaxListPageSize:
		size = MaxListPageSize
	}
	var after string
	if tok := req.GetPageToken(); tok != "" {
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil || objname.Validate(string(raw)) != nil {
			return nil, status.Error(codes.InvalidArgument, "invalid page_token")
		}
		after = string(raw)
	}
	infos, err := s.store.List(ctx, owner, req.GetPrefix(), after, size+1)
	if err != nil {
		return nil, s.toStatus(ctx, req.GetPrefix(), err)
	}
	resp := &pb.ListFilesResponse{}
	if len(infos) > size {
		infos = infos[:size]
		resp.NextPageToken = base64.RawURLEncoding.EncodeToString([]byte(infos[size-1].Name))
	}
	resp.Files = make([]*pb.FileInfo, len(infos))
	for i, info := range infos {
		resp.Files[i] = fileInfo(info)
	}
	return resp, nil
}

// StatFile describes one of the caller's files.
func (s *Server) StatFile(ctx context.Context, md *pb.MetaData) (*pb.FileInfo, error) {
	owner, err := s.owner(ctx)
	if err != nil {
		return nil, err
	}
	name, err := objectName(md)
	if err != nil {
		return nil, err
	}
	info, err := s.store.Stat(ctx, owner, name)
	if err != nil {
		return nil, s.toStatus(ctx, name, err)
	}
	return fileInfo(info), nil
}

// DeleteFile removes one of the caller's files.
func (s *Server) DeleteFile(ctx context.Context, md *pb.MetaData) (*pb.StringResponse, error) {
	owner, err := s.owner(ctx)
	if err != nil {
		return nil, err
	}
	name, err := objectName(md)
	if err != nil {
		return nil, err
	}
	if err := s.store.Delete(ctx, owner, name); err != nil {
		return nil, s.toStatus(ctx, name, err)
	}
	return &pb.StringResponse{Message: "Deleted"}, nil
}

func fileInfo(info FileInfo) *pb.FileInfo {
	out := &pb.FileInfo{Name: info.Name, Size: info.Size, Modified: timestamppb.New(info.Modified)}
	if info.SHA256 != ([32]byte{}) {
		out.Sha256 = hex.EncodeToString(info.SHA256[:])
	}
	return out
}

// recordOutcome sets the greeter.outcome span attribute of a transfer:
// "ok", or the status code's name ("invalid_argument", ...).
func recordOutcome(ctx context.Context, err *error) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	outcome := "ok"
	if *err != nil {
		outcome = strings.ToLower(strings.ReplaceAll(codeName(status.Code(*err)), " ", "_"))
	}
	span.SetAttributes(attribute.String("greeter.outcome", outcome))
}

// codeName returns the snake_case name of a code, as in the gRPC spec.
func codeName(c codes.Code) string {
	name := c.String()
	var b strings.Builder
	for i, r := range name {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
