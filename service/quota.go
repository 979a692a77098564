package service

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/greeter/greeter/proto/greeterpb"
)

// Quotas and upload preconditions (RELIABILITY.md R11, issue 12 item 11).
//
// The store enforces both atomically: it sets aside what an upload may add
// when the upload starts and as its bytes arrive, and checks quotas,
// create_only and if_match again under the owner's lock when it publishes
// the file. The checks here only fail early, before any byte is sent, with
// the most precise message.

// preconditions reads the create_only and if_match of an upload's md into
// want.
func preconditions(md *pb.MetaData, want *Expect) error {
	want.CreateOnly = md.GetCreateOnly()
	m := md.GetIfMatch()
	if m == "" {
		return nil
	}
	if want.CreateOnly {
		return status.Error(codes.InvalidArgument, "create_only and if_match exclude each other: create_only needs no file, if_match an existing one")
	}
	if len(m) != hex.EncodedLen(len(want.IfMatch)) || !isLowerHex(m) {
		return status.Errorf(codes.InvalidArgument, "if_match must be a SHA-256 in %d lowercase hex digits, got %d characters", hex.EncodedLen(len(want.IfMatch)), len(m))
	}
	hex.Decode(want.IfMatch[:], []byte(m))
	want.HasIfMatch = true
	return nil
}

// isLowerHex reports whether s holds only 0-9 and a-f.
func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// precheck fails an upload of name for owner early when the file there
// defeats its preconditions, or when a plain upload's declared size would
// take owner past its bytes quota. A resumable upload's share is set aside
// by the store when it begins, so resumable is true skips the quota.
func (s *Server) precheck(ctx context.Context, owner, name string, want Expect, resumable bool) error {
	quota := want.HasSize && !resumable
	if !want.CreateOnly && !want.HasIfMatch && !quota {
		return nil
	}
	var usage Usage
	if quota {
		var err error
		if usage, err = s.store.Usage(ctx, owner); err != nil {
			return s.toStatus(ctx, name, err)
		}
		// Without a bytes quota, or when the whole declared size fits, the
		// size of a file it replaces does not matter.
		quota = usage.Quota.Bytes > 0 && usage.Bytes+want.Size > usage.Quota.Bytes
	}
	if !want.CreateOnly && !want.HasIfMatch && !quota {
		return nil
	}
	info, err := s.store.Stat(ctx, owner, name)
	exists := err == nil
	if err != nil && !errors.Is(err, ErrNotFound) {
		return s.toStatus(ctx, name, err)
	}
	switch {
	case want.CreateOnly && exists:
		return s.toStatus(ctx, name, ErrExists)
	case want.HasIfMatch && !exists:
		return status.Errorf(codes.FailedPrecondition, "if_match: file %q does not exist", name)
	case want.HasIfMatch && info.SHA256 != want.IfMatch:
		return status.Errorf(codes.FailedPrecondition, "if_match: file %q has another sha256 (%x)", name, info.SHA256)
	}
	if need := want.Size - info.Size; quota && need > 0 && usage.Bytes+need > usage.Quota.Bytes {
		return s.quotaStatus(ctx, &QuotaError{Subject: QuotaBytes, Limit: usage.Quota.Bytes, Used: usage.Bytes, Need: need})
	}
	return nil
}

// quotaStatus is the status of an upload that e stopped:
// ResourceExhausted with an errdetails.QuotaFailure whose subject is
// "bytes" or "objects". It calls Options.OnQuotaExceeded.
func (s *Server) quotaStatus(ctx context.Context, e *QuotaError) error {
	if s.opts.OnQuotaExceeded != nil {
		s.opts.OnQuotaExceeded(ctx, e.Subject)
	}
	var desc string
	switch e.Subject {
	case QuotaObjects:
		desc = fmt.Sprintf("storing %d more file(s) would exceed the quota of %d files (%d in use)", e.Need, e.Limit, e.Used)
	default:
		desc = fmt.Sprintf("storing %d more bytes would exceed the quota of %d bytes (%d in use)", e.Need, e.Limit, e.Used)
	}
	st := status.Newf(codes.ResourceExhausted, "%s quota exceeded: %s; delete files to make room", e.Subject, desc)
	v := &errdetails.QuotaFailure_Violation{Subject: e.Subject, Description: desc, QuotaValue: e.Limit}
	if d, err := st.WithDetails(&errdetails.QuotaFailure{Violations: []*errdetails.QuotaFailure_Violation{v}}); err == nil {
		return d.Err()
	}
	return st.Err()
}
