package service

import (
	"context"
	"errors"
	"log/slog"
	"strconv"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/greeter/greeter/proto/wire"
	"github.com/greeter/greeter/service/objname"
)

// toStatus maps an error of the store, of the stream or of the request's
// context to the status the client receives: it is the only place where
// such errors become gRPC codes. Checks of the request itself (its name,
// prefix, page token, offsets, declared size and digest, the order of its
// messages) build their InvalidArgument, OutOfRange or ResourceExhausted
// statuses where they are made, so that the message says what was wrong;
// those statuses pass through toStatus unchanged. name is the object the
// call was about; it is quoted into messages because clients supplied it.
// Errors that are the server's fault are logged here and reach the client
// as a generic Internal status.
func (s *Server) toStatus(ctx context.Context, name string, err error) error {
	if err == nil {
		return nil
	}
	if st, ok := status.FromError(err); ok {
		return st.Err()
	}
	var nameErr *objname.Error
	var upErr *UploadError
	isUpload := errors.As(err, &upErr)
	switch {
	case errors.As(err, &nameErr):
		return status.Errorf(codes.InvalidArgument, "invalid name: %s", nameErr.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "request deadline exceeded")
	case errors.Is(err, ErrInvalidUploadID):
		return status.Errorf(codes.InvalidArgument, "invalid upload_id: %v", ErrInvalidUploadID)
	case isUpload && errors.Is(err, ErrNotFound):
		return status.Errorf(codes.NotFound, "upload %q not found", upErr.ID)
	case isUpload && errors.Is(err, ErrUploadBusy):
		return status.Errorf(codes.Aborted, "upload %q is in progress on another stream", upErr.ID)
	case isUpload && errors.Is(err, ErrUploadMismatch):
		return status.Errorf(codes.FailedPrecondition, "upload %q was started for a different file (name, size and sha256 must match the first attempt)", upErr.ID)
	case isUpload && errors.Is(err, ErrOffsetMismatch):
		st := status.Newf(codes.FailedPrecondition, "upload %q must continue at its committed size of %d bytes", upErr.ID, upErr.Committed)
		return withErrorInfo(st, wire.ReasonOffsetMismatch, upErr.Committed)
	case errors.Is(err, ErrChanged):
		return status.Errorf(codes.Aborted, "file %q changed during the download; retry", name)
	case errors.Is(err, ErrTooManyUploads):
		return status.Error(codes.ResourceExhausted, "too many incomplete uploads: finish some or let them expire")
	case errors.Is(err, ErrNotFound):
		return status.Errorf(codes.NotFound, "file %q not found", name)
	case errors.Is(err, ErrSizeMismatch):
		return status.Errorf(codes.InvalidArgument, "upload of %q: %v", name, ErrSizeMismatch)
	case errors.Is(err, ErrDigestMismatch):
		return status.Errorf(codes.InvalidArgument, "upload of %q: %v", name, ErrDigestMismatch)
	case errors.Is(err, ErrOffsetMismatch):
		return status.Errorf(codes.FailedPrecondition, "upload of %q: %v", name, ErrOffsetMismatch)
	case errors.Is(err, ErrConflict):
		return status.Errorf(codes.FailedPrecondition, "name %q conflicts with an existing file or folder", name)
	case errors.Is(err, ErrInvalidOwner):
		return status.Error(codes.InvalidArgument, "the caller's identity cannot own files: it must be 1 to 128 bytes long")
	case errors.Is(err, ErrNoSpace):
		s.log.ErrorContext(ctx, "storage full", slog.String("object", name), slog.Any("error", err))
		return status.Error(codes.ResourceExhausted, "storage is full")
	case errors.Is(err, ErrUnavailable):
		s.log.ErrorContext(ctx, "storage unavailable", slog.String("object", name), slog.Any("error", err))
		return status.Error(codes.Unavailable, "storage is unavailable, try again later")
	default:
		s.log.ErrorContext(ctx, "storage error", slog.String("object", name), slog.Any("error", err))
		return status.Error(codes.Internal, "internal storage error")
	}
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
