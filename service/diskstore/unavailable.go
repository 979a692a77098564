package diskstore

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/objname"
)

// storageFault reports whether err says that the storage failed rather
// than the request: a read-only filesystem, no permission on the data
// directory, an I/O error or a stale handle.
func storageFault(err error) bool {
	return errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) ||
		errors.Is(err, syscall.EIO) || errors.Is(err, syscall.ESTALE)
}

// unavailable is deferred by every exported method of a Store and of its
// uploads that can fail on the data directory. It makes *errp wrap
// service.ErrUnavailable when the operation failed because the data
// directory cannot be used: a storage fault (see storageFault), or the
// directory is gone from its path (removed, replaced) or closed. A missing
// file in a directory that is gone says nothing about the file, so then
// *errp wraps only the reason the directory cannot be used, not
// service.ErrNotFound or the like. Errors that describe the request or that
// only a working directory can give (the context, the name, owner or
// upload id, the bytes, a held or mismatched upload, an existing file, a
// quota) pass unchanged, as does any error while the directory is fine.
func (s *Store) unavailable(errp *error) {
	err := *errp
	var nameErr *objname.Error
	switch {
	case err == nil, errors.Is(err, service.ErrUnavailable),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &nameErr), errors.Is(err, service.ErrInvalidOwner), errors.Is(err, service.ErrInvalidUploadID),
		errors.Is(err, service.ErrSizeMismatch), errors.Is(err, service.ErrDigestMismatch),
		errors.Is(err, service.ErrUploadBusy), errors.Is(err, service.ErrUploadMismatch), errors.Is(err, service.ErrTooManyUploads),
		errors.Is(err, service.ErrExists), errors.Is(err, service.ErrQuotaExceeded):
		return
	case storageFault(err):
		*errp = fmt.Errorf("%w: %w", err, service.ErrUnavailable)
	default:
		if gone := s.sameRoot(); gone != nil {
			*errp = fmt.Errorf("%v: %w", err, gone)
		}
	}
}
