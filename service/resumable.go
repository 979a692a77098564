package service

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/proto/wire"
)

// DefaultResumableTTL is how long an incomplete resumable upload lives
// after it was last written to, unless Options.ResumableTTL says otherwise.
const DefaultResumableTTL = 24 * time.Hour

// maxUploadIDLen is the longest accepted upload_id, in bytes.
const maxUploadIDLen = 128

// ValidateUploadID checks that id can name a resumable upload: 1 to 128
// characters from A-Z, a-z, 0-9, '_' and '-'. It returns ErrInvalidUploadID
// otherwise. Stores use upload IDs in file names, so they check it too.
func ValidateUploadID(id string) error {
	if id == "" || len(id) > maxUploadIDLen {
		return ErrInvalidUploadID
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-':
		default:
			return ErrInvalidUploadID
		}
	}
	return nil
}

// resumableTTL returns Options.ResumableTTL or its default.
func (s *Server) resumableTTL() time.Duration {
	if s.opts.ResumableTTL > 0 {
		return s.opts.ResumableTTL
	}
	return DefaultResumableTTL
}

// errNoResumable is the status of resumable calls on a store that cannot
// keep uploads across streams.
var errNoResumable = status.Error(codes.Unimplemented, "resumable uploads are not supported by this server's storage")

// uploadResumable runs an upload whose first message, md, carries an
// upload_id or an offset. The bytes it receives are kept when the stream
// breaks (cancellation, a Recv error, the idle timeout, a protocol error)
// or ends early, so that a later stream continues where this one stopped;
// the file becomes visible only once every declared byte arrived and the
// whole file matches the declared sha256.
func (s *Server) uploadResumable(stream pb.Greeter_UploadFileServer, recv *receiver, owner, name string, md *pb.MetaData, want Expect) error {
	ctx := stream.Context()
	id, offset := md.GetUploadId(), md.GetOffset()
	if id == "" {
		return status.Error(codes.InvalidArgument, "offset requires upload_id: only a resumable upload continues at an offset")
	}
	rs, ok := s.store.(ResumableStore)
	if !ok {
		return errNoResumable
	}
	if err := ValidateUploadID(id); err != nil {
		return s.toStatus(ctx, name, err)
	}
	if offset < 0 {
		return status.Errorf(codes.InvalidArgument, "offset must not be negative, got %d", offset)
	}
	if !want.HasSize || !want.HasSHA256 {
		return status.Error(codes.InvalidArgument, "resumable uploads must declare size and sha256")
	}
	trace.SpanFromContext(ctx).SetAttributes(attribute.String("greeter.owner", owner), attribute.String("greeter.object", truncate(name, 128)),
		attribute.String("greeter.upload_id", id), attribute.Int64("greeter.offset", offset))

	var moved int64
	if s.opts.OnTransfer != nil {
		done := s.opts.OnTransfer(ctx, "upload")
		defer func() { done(moved) }()
	}

	up, err := rs.BeginResumable(ctx, owner, Resume{ID: id, Name: name, Want: want, Offset: offset, TTL: s.resumableTTL()})
	if err != nil {
		return s.toStatus(ctx, name, err)
	}
	// Whatever ends this call before Commit or Abort, even a panic, keeps
	// the bytes received so far. Suspend is a no-op after Commit and Abort.
	defer s.suspend(ctx, up, id)

	chunks := 0
	for {
		msg, err := recv.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			s.keep(ctx, up, id, err)
			return s.toStatus(ctx, name, err)
		}
		if msg.GetMetadata() != nil {
			err := status.Error(codes.InvalidArgument, "metadata may only be sent in the first message")
			s.keep(ctx, up, id, err)
			return err
		}
		chunk := msg.GetChunkData()
		if int64(len(chunk)) > want.Size-up.Written() {
			// These bytes can never make the declared file.
			if err := up.Abort(); err != nil {
				s.log.WarnContext(ctx, "discarding an oversized resumable upload", slog.String("upload_id", id), slog.Any("error", err))
			}
			return status.Errorf(codes.InvalidArgument, "upload of %q: more bytes than the declared size of %d", name, want.Size)
		}
		if _, err := up.Write(chunk); err != nil {
			return s.toStatus(ctx, name, err)
		}
		moved += int64(len(chunk))
		chunks++
	}

	if got := up.Written(); got < want.Size {
		if err := up.Suspend(); err != nil {
			return s.toStatus(ctx, name, err)
		}
		st := status.Newf(codes.FailedPrecondition, "upload incomplete: %d of %d bytes; resume upload %q at offset %d", got, want.Size, id, got)
		return withErrorInfo(st, wire.ReasonUploadIncomplete, got)
	}

	return s.commit(stream, up, name, want, chunks)
}

// suspend keeps a resumable upload's bytes for a later stream. It does
// nothing once the upload was committed, aborted or suspended.
func (s *Server) suspend(ctx context.Context, up ResumableUpload, id string) {
	if err := up.Suspend(); err != nil {
		s.log.ErrorContext(ctx, "saving a resumable upload failed", slog.String("upload_id", id), slog.Any("error", err))
	}
}

// keep suspends a resumable upload whose stream ended with cause and logs
// it: a broken stream is routine for a resumable upload, so the log is
// INFO.
func (s *Server) keep(ctx context.Context, up ResumableUpload, id string, cause error) {
	if err := up.Suspend(); err != nil {
		s.log.ErrorContext(ctx, "saving a resumable upload failed", slog.String("upload_id", id), slog.Any("error", err))
		return
	}
	s.log.InfoContext(ctx, "resumable upload suspended", slog.String("upload_id", id),
		slog.Int64("bytes", up.Written()), slog.Any("cause", cause))
}

// QueryUpload reports the committed size of one of the caller's incomplete
// resumable uploads. Once an upload completed it is forgotten: QueryUpload
// answers NotFound, like for an upload that never existed or expired, and
// complete is never set; a client that lost the answer to its final
// UploadFile checks the file with StatFile instead.
func (s *Server) QueryUpload(ctx context.Context, req *pb.QueryUploadRequest) (*pb.UploadStatus, error) {
	owner, err := s.owner(ctx)
	if err != nil {
		return nil, err
	}
	rs, ok := s.store.(ResumableStore)
	if !ok {
		return nil, errNoResumable
	}
	id := req.GetUploadId()
	if err := ValidateUploadID(id); err != nil {
		return nil, s.toStatus(ctx, "", err)
	}
	trace.SpanFromContext(ctx).SetAttributes(attribute.String("greeter.owner", owner), attribute.String("greeter.upload_id", id))
	committed, err := rs.QueryResumable(ctx, owner, id, s.resumableTTL())
	if err != nil {
		return nil, s.toStatus(ctx, "", err)
	}
	return &pb.UploadStatus{UploadId: id, CommittedSize: committed}, nil
}

// withErrorInfo returns st with an ErrorInfo naming reason and the
// committed size. If the details cannot be attached, st goes out without
// them.
func withErrorInfo(st *status.Status, reason string, committed int64) error {
	info := &errdetails.ErrorInfo{
		Reason:   reason,
		Domain:   wire.ErrorDomain,
		Metadata: map[string]string{wire.MetadataCommittedSize: strconv.FormatInt(committed, 10)},
	}
	if d, err := st.WithDetails(info); err == nil {
		return d.Err()
	}
	return st.Err()
}
