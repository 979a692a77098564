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
// call was about; it is quoted into messages with objname.Quote, like every
// client string, so no message repeats more than a short prefix of what a
// client sent. Errors that are the server's fault are logged here and reach
// the client as a generic Internal status.
func (s *Server) toStatus(ctx context.Context, name string, err error) error {
	if err == nil {
		return nil
	}
	if st, ok := status.FromError(err); ok {
		return st.Err()
	}
	var nameErr *objname.Error
	var upErr *UploadError
	var quotaErr *QuotaError
	isUpload := errors.As(err, &upErr)
	switch {
	case errors.As(err, &nameErr):
		return status.Errorf(codes.InvalidArgument, "invalid name: %s (rule %s)", nameErr.Reason, nameErr.Rule)
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "request deadline exceeded")
	case errors.Is(err, ErrInvalidUploadID):
		return status.Errorf(codes.InvalidArgument, "invalid upload_id: %v", ErrInvalidUploadID)
	case isUpload && errors.Is(err, ErrNotFound):
		return status.Errorf(codes.NotFound, "upload %s not found", objname.Quote(upErr.ID))
	case isUpload && errors.Is(err, ErrUploadBusy):
		return status.Errorf(codes.Aborted, "upload %s is in progress on another stream", objname.Quote(upErr.ID))
	case isUpload && errors.Is(err, ErrUploadMismatch):
		return status.Errorf(codes.FailedPrecondition, "upload %s was started for a different file (name, size and sha256 must match the first attempt)", objname.Quote(upErr.ID))
	case isUpload && errors.Is(err, ErrOffsetMismatch):
		st := status.Newf(codes.FailedPrecondition, "upload %s must continue at its committed size of %d bytes", objname.Quote(upErr.ID), upErr.Committed)
		return withErrorInfo(st, wire.ReasonOffsetMismatch, upErr.Committed)
	case errors.Is(err, ErrChanged):
		return status.Errorf(codes.Aborted, "file %s changed during the download; retry", objname.Quote(name))
	case errors.Is(err, ErrTooManyUploads):
		return status.Error(codes.ResourceExhausted, "too many incomplete uploads: finish some or let them expire")
	case errors.As(err, &quotaErr):
		return s.quotaStatus(ctx, quotaErr)
	case errors.Is(err, ErrExists):
		return status.Errorf(codes.FailedPrecondition, "file %q already exists (create_only)", name)
	case errors.Is(err, ErrNotMatched):
		return status.Errorf(codes.FailedPrecondition, "file %q no longer matches if_match: it was replaced or deleted meanwhile", name)
	case errors.Is(err, ErrNotFound):
		return status.Errorf(codes.NotFound, "file %s not found", objname.Quote(name))
	case errors.Is(err, ErrSizeMismatch):
		return status.Errorf(codes.InvalidArgument, "upload of %s: %v", objname.Quote(name), ErrSizeMismatch)
	case errors.Is(err, ErrResumableDigestMismatch):
		return status.Errorf(codes.DataLoss, "upload of %s: the bytes gathered do not match the declared sha256; the upload was discarded, start it again", objname.Quote(name))
	case errors.Is(err, ErrDigestMismatch):
		return status.Errorf(codes.InvalidArgument, "upload of %s: %v", objname.Quote(name), ErrDigestMismatch)
	case errors.Is(err, ErrOffsetMismatch):
		return status.Errorf(codes.FailedPrecondition, "upload of %s: %v", objname.Quote(name), ErrOffsetMismatch)
	case errors.Is(err, ErrDigestRequired):
		return withErrorInfo(status.Newf(codes.InvalidArgument, "upload of %s: %v", objname.Quote(name), ErrDigestRequired), wire.ReasonDigestRequired, 0)
	case errors.Is(err, ErrConflict):
		return status.Errorf(codes.FailedPrecondition, "name %s conflicts with an existing file or folder", objname.Quote(name))
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

// invalidInput is the InvalidArgument status for a name or prefix that
// objname rejected. Its message says what ("name" or "prefix") broke which
// rule and ends with at most a short prefix of input (objname.Quote), so a
// log that cuts long messages keeps the reason; a BadRequest detail names
// field and, as the violation's reason, the rule. err should be an
// *objname.Error; any other error is described without a rule.
func invalidInput(field, what, input string, err error) error {
	var nameErr *objname.Error
	if !errors.As(err, &nameErr) {
		return status.Errorf(codes.InvalidArgument, "invalid %s: %v; got %s", what, err, objname.Quote(input))
	}
	st := status.Newf(codes.InvalidArgument, "invalid %s: %s (rule %s); got %s", what, nameErr.Reason, nameErr.Rule, objname.Quote(input))
	br := &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{
		Field:       field,
		Description: nameErr.Reason,
		Reason:      string(nameErr.Rule),
	}}}
	if d, err := st.WithDetails(br); err == nil {
		return d.Err()
	}
	return st.Err()
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
