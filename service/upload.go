package service

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/proto/wire"
	"github.com/greeter/greeter/service/objname"
	"github.com/greeter/greeter/telemetry/spanattr"
)

// UploadFile stores the streamed file. The first message must carry
// MetaData and no later one may; the file becomes visible only after every
// byte arrived, matched what was declared, and was made durable.
//
// A first message with an upload_id (or an offset) starts or resumes a
// resumable upload: the bytes it receives are kept when the stream breaks
// (cancellation, a Recv error, the idle timeout, a protocol error) or ends
// early, so that a later stream continues where this one stopped. Any other
// upload is plain: a failed stream leaves nothing behind. Both kinds are
// received the same way and differ only in that keep or discard.
//
// The last message may be an UploadTrailer carrying the SHA-256 (and the
// size) the client computed while sending; Commit verifies against it as
// against MetaData's. A resumable upload may leave its sha256 to the
// trailer of the stream that completes it.
func (s *Server) UploadFile(stream pb.Greeter_UploadFileServer) (err error) {
	ctx := stream.Context()
	defer recordOutcome(ctx, &err)
	owner, err := s.owner(ctx)
	if err != nil {
		return err
	}
	recv := newReceiver(ctx, stream, s.opts.IdleTimeout)
	defer recv.stop()

	md, err := s.firstMessage(ctx, recv)
	if err != nil {
		return err
	}
	name, err := objectName(md)
	if err != nil {
		return err
	}
	want, err := s.expectation(md)
	if err != nil {
		return err
	}
	var resume *Resume
	var extra []attribute.KeyValue
	if md.GetUploadId() != "" || md.GetOffset() != 0 {
		if resume, err = s.resumeRequest(ctx, md, name, want); err != nil {
			return err
		}
		extra = []attribute.KeyValue{spanattr.UploadID.String(resume.ID), spanattr.Offset.Int64(resume.Offset)}
	}

	tr := s.startTransfer(ctx, directionUpload, owner, name, extra...)
	defer tr.end()
	if err := s.precheck(ctx, owner, name, want, resume != nil); err != nil {
		return err
	}
	in, err := s.begin(ctx, owner, name, want, resume)
	if err != nil {
		return s.toStatus(ctx, name, err)
	}
	// Whatever ends this call before the upload completes, even a panic,
	// discards a plain upload and keeps a resumable one's bytes.
	defer s.fail(ctx, in, nil)

	if err := s.receive(ctx, recv, in, tr); err != nil {
		return err
	}
	if in.resumable != nil && !in.trailer && in.Written() < want.Size {
		return s.incomplete(ctx, in)
	}
	if in.resumable != nil && !in.want.HasSHA256 {
		return s.digestMissing(ctx, in)
	}
	return s.commit(stream, in)
}

// firstMessage returns the MetaData that the first message of an upload
// must carry.
func (s *Server) firstMessage(ctx context.Context, recv *receiver) (*pb.MetaData, error) {
	first, err := recv.next()
	switch {
	case errors.Is(err, io.EOF):
		return nil, status.Error(codes.InvalidArgument, "empty upload: the first message must carry metadata")
	case err != nil:
		return nil, s.toStatus(ctx, "", err)
	}
	md := first.GetMetadata()
	recv.release(first) // md does not live in the message's chunk buffer
	if md == nil {
		return nil, status.Error(codes.InvalidArgument, "the first message must carry metadata, not chunk_data")
	}
	return md, nil
}

// expectation turns what an uploader declared into an Expect: the size
// and sha256 of its bytes and the preconditions on the file they replace.
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
	if err := preconditions(md, &want); err != nil {
		return want, err
	}
	return want, nil
}

// resumeRequest checks the first message of a resumable upload, md, which
// carries an upload_id or an offset, and returns what to resume.
func (s *Server) resumeRequest(ctx context.Context, md *pb.MetaData, name string, want Expect) (*Resume, error) {
	id, offset := md.GetUploadId(), md.GetOffset()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "offset requires upload_id: only a resumable upload continues at an offset")
	}
	if _, err := s.resumableStore(); err != nil {
		return nil, err
	}
	if err := ValidateUploadID(id); err != nil {
		return nil, s.toStatus(ctx, name, err)
	}
	if offset < 0 {
		return nil, status.Errorf(codes.InvalidArgument, "offset must not be negative, got %d", offset)
	}
	if !want.HasSize {
		return nil, status.Error(codes.InvalidArgument, "resumable uploads must declare their size")
	}
	return &Resume{ID: id, Name: name, Want: want, Offset: offset, TTL: s.opts.ResumableTTL}, nil
}

// resumableStore returns the store as a ResumableStore, or the status of
// resumable calls when the store cannot keep uploads across streams.
func (s *Server) resumableStore() (ResumableStore, error) {
	rs, ok := s.store.(ResumableStore)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "resumable uploads are not supported by this server's storage")
	}
	return rs, nil
}

// inbound is an upload being received from one stream.
type inbound struct {
	Upload
	name   string
	want   Expect
	limit  int64 // the most bytes the file may hold
	chunks int   // data messages received so far
	// resumable is the upload again when it can outlive the stream, and id
	// is its upload_id; resumable is nil for a plain upload.
	resumable ResumableUpload
	id        string
	// trailer is set once the stream's UploadTrailer arrived; its
	// declarations are in want.
	trailer bool
}

// begin creates the upload of name for owner, or starts or resumes the
// resumable upload r when r is not nil.
func (s *Server) begin(ctx context.Context, owner, name string, want Expect, r *Resume) (*inbound, error) {
	if r == nil {
		var up Upload
		var err error
		if sc, ok := s.store.(SizedStore); ok && want.HasSize {
			up, err = sc.CreateSized(ctx, owner, name, want.Size)
		} else {
			up, err = s.store.Create(ctx, owner, name)
		}
		if err != nil {
			return nil, err
		}
		limit := s.opts.MaxFileSize
		if want.HasSize {
			limit = want.Size
		}
		return &inbound{Upload: up, name: name, want: want, limit: limit}, nil
	}
	rs, err := s.resumableStore()
	if err != nil {
		return nil, err
	}
	up, err := rs.BeginResumable(ctx, owner, *r)
	if err != nil {
		return nil, err
	}
	return &inbound{Upload: up, name: name, want: want, limit: want.Size, resumable: up, id: r.ID}, nil
}

// receive writes the chunks of the stream to in until the client
// half-closes. A stream that breaks or sends metadata again fails the
// upload; more bytes than the file may hold discard it, since no later
// stream could make the declared file of them.
func (s *Server) receive(ctx context.Context, recv *receiver, in *inbound, tr *transfer) error {
	for {
		msg, err := recv.next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			s.fail(ctx, in, err)
			return s.toStatus(ctx, in.name, err)
		}
		if msg.GetMetadata() != nil {
			recv.release(msg)
			err := status.Error(codes.InvalidArgument, "metadata may only be sent in the first message")
			s.fail(ctx, in, err)
			return err
		}
		if t := msg.GetTrailer(); t != nil {
			recv.release(msg) // t does not live in the message's chunk buffer
			return s.endWith(ctx, recv, in, t)
		}
		n, err := s.write(ctx, in, msg.GetChunkData())
		recv.release(msg) // the store neither keeps the chunk nor hashes it later
		if err != nil {
			return err
		}
		tr.add(n)
		in.chunks++
	}
}

// write adds one chunk to in and returns its length, or the status that
// ends the upload.
func (s *Server) write(ctx context.Context, in *inbound, chunk []byte) (int, error) {
	if int64(len(chunk)) > in.limit-in.Written() {
		return 0, s.overflow(ctx, in)
	}
	if _, err := in.Write(chunk); err != nil {
		return 0, s.toStatus(ctx, in.name, err)
	}
	return len(chunk), nil
}

// fail ends an upload that will not complete on this stream: a plain
// upload is discarded, a resumable one is suspended so that a later stream
// continues where this one stopped. cause, when not nil, is why the stream
// ended early; a broken stream is routine for a resumable upload, so it is
// logged at INFO. fail does nothing once the upload was committed, aborted
// or suspended, so UploadFile also defers it for the failures that return
// at once (a storage error, a panic).
func (s *Server) fail(ctx context.Context, in *inbound, cause error) {
	if in.resumable == nil {
		in.Abort() // Its error leaves only a temporary the janitor removes.
		return
	}
	if err := in.resumable.Suspend(); err != nil {
		s.log.ErrorContext(ctx, "saving a resumable upload failed", slog.String("upload_id", in.id), slog.Any("error", err))
		return
	}
	if cause != nil {
		s.log.InfoContext(ctx, "resumable upload suspended", slog.String("upload_id", in.id),
			slog.Int64("bytes", in.Written()), slog.Any("cause", cause))
	}
}

// overflow discards an upload that received more bytes than its file may
// hold and returns the status that says so.
func (s *Server) overflow(ctx context.Context, in *inbound) error {
	if err := in.Abort(); err != nil {
		s.log.WarnContext(ctx, "discarding an oversized upload failed", slog.String("object", in.name), slog.Any("error", err))
	}
	if in.want.HasSize {
		return status.Errorf(codes.InvalidArgument, "upload of %q: more bytes than the declared size of %d", in.name, in.want.Size)
	}
	return status.Errorf(codes.ResourceExhausted, "upload of %q exceeds the maximum file size of %d bytes", in.name, s.opts.MaxFileSize)
}

// incomplete keeps a resumable upload whose client half-closed before
// every declared byte arrived, and returns the status that says where to
// resume. The offset is read after Suspend: a store may keep less than it
// received (the S3 store keeps whole parts), and only then does Written
// say what it kept, so the client resumes there without a round trip
// through ErrOffsetMismatch.
func (s *Server) incomplete(ctx context.Context, in *inbound) error {
	if err := in.resumable.Suspend(); err != nil {
		return s.toStatus(ctx, in.name, err)
	}
	kept := in.Written()
	st := status.Newf(codes.FailedPrecondition, "upload incomplete: %d of %d bytes kept; resume upload %s at offset %d",
		kept, in.want.Size, objname.Quote(in.id), kept)
	return withErrorInfo(st, wire.ReasonUploadIncomplete, kept)
}

// commit verifies and publishes a received upload, under a storage.commit
// span, and answers the client with what was stored.
func (s *Server) commit(stream pb.Greeter_UploadFileServer, in *inbound) error {
	ctx := stream.Context()
	cctx, commitSpan := s.tracer.Start(ctx, "storage.commit")
	info, err := in.Commit(cctx, in.want)
	commitSpan.End()
	if err != nil {
		return s.toStatus(ctx, in.name, err)
	}
	sum := hex.EncodeToString(info.SHA256[:])
	trace.SpanFromContext(ctx).SetAttributes(spanattr.Bytes.Int64(info.Size), spanattr.Chunks.Int(in.chunks), spanattr.SHA256.String(sum))
	return stream.SendAndClose(&pb.StringResponse{Message: "Success!", Size: info.Size, Sha256: sum})
}
