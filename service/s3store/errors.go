package s3store

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/minio/minio-go/v7"

	"github.com/greeter/greeter/service"
)

// S3 error codes the store tells apart.
const (
	codeNoSuchKey          = "NoSuchKey"
	codeNoSuchBucket       = "NoSuchBucket"
	codeNoSuchUpload       = "NoSuchUpload"
	codePreconditionFailed = "PreconditionFailed"
	codeInvalidPart        = "InvalidPart"
	codeAccessDenied       = "AccessDenied"
	// Older MinIO releases refuse a key below a key that is an object,
	// and a key that is the prefix of other keys (this one stores both
	// and hides the keys below; see folders.go); S3 itself allows both.
	codeParentIsObject    = "XMinioParentIsObject"
	codeObjectIsDirectory = "XMinioObjectExistsAsDirectory"
)

// errorCode returns the S3 error code of err and its HTTP status, or ""
// and 0 when err is not an S3 error response.
func errorCode(err error) (string, int) {
	var er minio.ErrorResponse
	if errors.As(err, &er) {
		return er.Code, er.StatusCode
	}
	return "", 0
}

// isCode reports whether err is an S3 error response with one of codes.
func isCode(err error, codes ...string) bool {
	code, _ := errorCode(err)
	for _, c := range codes {
		if code == c && code != "" {
			return true
		}
	}
	return false
}

// isNotFound reports whether err says that a key does not exist.
func isNotFound(err error) bool {
	code, status := errorCode(err)
	return code == codeNoSuchKey || (status == http.StatusNotFound && code != codeNoSuchBucket && code != codeNoSuchUpload)
}

// isPreconditionFailed reports whether a conditional request failed its
// condition.
func isPreconditionFailed(err error) bool {
	code, status := errorCode(err)
	return code == codePreconditionFailed || status == http.StatusPreconditionFailed
}

// isDenied reports whether the server refused the credentials or the
// request.
func isDenied(err error) bool {
	code, status := errorCode(err)
	switch code {
	case codeAccessDenied, "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "InvalidClientTokenId":
		return true
	}
	return status == http.StatusForbidden
}

// classify wraps err from operation op on name (an object name, upload ID
// or bucket) with the service error it means, so that the service maps it
// to the right status. Errors of the request's context pass unchanged
// (wrapped); anything that says the server cannot be reached or cannot
// serve, including refused credentials and a missing bucket, wraps
// service.ErrUnavailable. The text names the problem and never holds a
// secret: S3 error responses carry no credentials, and request URLs carry
// no signature.
func (s *Store) classify(ctx context.Context, op, name string, err error) error {
	if err == nil {
		return nil
	}
	if cerr := ctx.Err(); cerr != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return fmt.Errorf("s3store: %s %q: %w", op, name, cerr)
	}
	var er minio.ErrorResponse
	if !errors.As(err, &er) {
		// No answer from the server: refused, reset, timed out, TLS.
		return fmt.Errorf("s3store: %s %q: cannot reach the S3 server: %w: %w", op, name, service.ErrUnavailable, err)
	}
	switch code := er.Code; {
	case isNotFound(err):
		return fmt.Errorf("s3store: %s %q: %w", op, name, service.ErrNotFound)
	case code == codeNoSuchBucket:
		return fmt.Errorf("s3store: %s %q: bucket %q does not exist: %w", op, name, s.opts.Bucket, service.ErrUnavailable)
	case code == "InvalidAccessKeyId":
		return fmt.Errorf("s3store: %s %q: the S3 server does not know the access key: check the credentials: %w", op, name, service.ErrUnavailable)
	case code == "SignatureDoesNotMatch":
		return fmt.Errorf("s3store: %s %q: the S3 server rejected the request signature: check the secret key: %w", op, name, service.ErrUnavailable)
	case code == "ExpiredToken" || code == "InvalidToken":
		return fmt.Errorf("s3store: %s %q: the session token is expired or invalid: %w", op, name, service.ErrUnavailable)
	case isDenied(err):
		return fmt.Errorf("s3store: %s %q: access denied to bucket %q: check the credentials and the bucket policy (%s): %w",
			op, name, s.opts.Bucket, code, service.ErrUnavailable)
	case code == codeParentIsObject || code == codeObjectIsDirectory:
		return fmt.Errorf("s3store: %s %q: %w", op, name, service.ErrConflict)
	case code == "EntityTooLarge" || code == "QuotaExceeded" || code == "XMinioStorageFull" || code == "XMinioAdminBucketQuotaExceeded":
		return fmt.Errorf("s3store: %s %q: %w: %s", op, name, service.ErrNoSpace, code)
	case er.StatusCode >= 500 || er.StatusCode == http.StatusTooManyRequests || code == "SlowDown" || code == "RequestTimeout":
		return fmt.Errorf("s3store: %s %q: the S3 server cannot serve now (%s, HTTP %d): %w", op, name, code, er.StatusCode, service.ErrUnavailable)
	}
	return fmt.Errorf("s3store: %s %q: S3 error %s (HTTP %d): %s", op, name, er.Code, er.StatusCode, er.Message)
}
