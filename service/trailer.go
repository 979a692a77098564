package service

import (
	"context"
	"encoding/hex"
	"errors"
	"io"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/proto/wire"
	"github.com/greeter/greeter/service/objname"
)

// endWith takes the UploadTrailer t, the last message of the stream: it
// adds what t declares to in.want, where Commit checks it, and makes sure
// the client half-closes next. A trailer that contradicts MetaData, or any
// message after it, fails the upload with InvalidArgument.
func (s *Server) endWith(ctx context.Context, recv *receiver, in *inbound, t *pb.UploadTrailer) error {
	if err := applyTrailer(&in.want, t); err != nil {
		s.fail(ctx, in, err)
		return err
	}
	in.trailer = true
	_, err := recv.next()
	switch {
	case errors.Is(err, io.EOF):
		return nil
	case err != nil:
		s.fail(ctx, in, err)
		return s.toStatus(ctx, in.name, err)
	}
	err = status.Error(codes.InvalidArgument, "the trailer must be the last message of an upload")
	s.fail(ctx, in, err)
	return err
}

// applyTrailer adds the sha256 and size t declares to want, which holds
// what MetaData declared; the two must agree.
func applyTrailer(want *Expect, t *pb.UploadTrailer) error {
	var sum [32]byte
	if d := t.GetSha256(); len(d) != hex.EncodedLen(len(sum)) {
		return status.Errorf(codes.InvalidArgument, "trailer sha256 must be %d hex digits, got %d characters", hex.EncodedLen(len(sum)), len(d))
	}
	if _, err := hex.Decode(sum[:], []byte(t.GetSha256())); err != nil {
		return status.Error(codes.InvalidArgument, "trailer sha256 must be hex digits")
	}
	if want.HasSHA256 && want.SHA256 != sum {
		return status.Error(codes.InvalidArgument, "trailer sha256 differs from the sha256 declared in metadata")
	}
	if t.Size != nil {
		size := t.GetSize()
		switch {
		case size < 0:
			return status.Errorf(codes.InvalidArgument, "trailer size must not be negative, got %d", size)
		case want.HasSize && want.Size != size:
			return status.Errorf(codes.InvalidArgument, "trailer size %d differs from the size %d declared in metadata", size, want.Size)
		}
		want.Size, want.HasSize = size, true
	}
	want.SHA256, want.HasSHA256 = sum, true
	return nil
}

// digestMissing keeps a resumable upload begun without a sha256 whose
// stream ended without the trailer that declares it, and returns the
// status that says how to finish it: resume at the committed size and
// send the trailer.
func (s *Server) digestMissing(ctx context.Context, in *inbound) error {
	if err := in.resumable.Suspend(); err != nil {
		return s.toStatus(ctx, in.name, err)
	}
	kept := in.Written()
	st := status.Newf(codes.InvalidArgument, "upload %s declared no sha256: resume it at offset %d and end the stream with a trailer carrying the sha256",
		objname.Quote(in.id), kept)
	return withErrorInfo(st, wire.ReasonDigestRequired, kept)
}
