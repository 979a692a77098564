// Package wire is the hand-written half of greeter's wire contract: the
// metadata keys, error details and method sets that the server and its
// clients must spell the same way. The generated half (messages, service
// descriptors and method names) is in package greeterpb; proto/gen.sh
// writes only there, so regenerating never touches this package.
//
// Everything here is additive to the tutorial's contract: a client that
// knows none of it still uploads and downloads files.
package wire

import (
	"strings"

	"google.golang.org/grpc/health/grpc_health_v1"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"

	pb "github.com/greeter/greeter/proto/greeterpb"
)

// Response header keys of DownloadFile: the whole file's size in decimal
// and its SHA-256 in lowercase hex, sent before the first chunk (also for a
// ranged download, so the client can verify the file it assembles).
const (
	HeaderSize   = "x-greeter-size"
	HeaderSHA256 = "x-greeter-sha256"
)

// A resumable upload that fails on its offset answers FailedPrecondition
// carrying an errdetails.ErrorInfo with Domain ErrorDomain, one of the
// reasons below, and the committed size under MetadataCommittedSize, so
// that a client knows where to resume.
const (
	// ErrorDomain is the ErrorInfo domain of greeter's own reasons.
	ErrorDomain = "greeter"
	// ReasonOffsetMismatch: the upload did not continue at its committed
	// size.
	ReasonOffsetMismatch = "OFFSET_MISMATCH"
	// ReasonUploadIncomplete: the client half-closed before sending every
	// declared byte.
	ReasonUploadIncomplete = "UPLOAD_INCOMPLETE"
	// ReasonDigestRequired: a resumable upload begun without a sha256
	// ended without an UploadTrailer declaring it (the upload is kept at
	// the committed size), or the server's storage cannot begin a
	// resumable upload without a sha256 (the client declares it up front
	// instead).
	ReasonDigestRequired = "DIGEST_REQUIRED"
	// MetadataCommittedSize is the ErrorInfo metadata key holding the
	// committed size in decimal.
	MetadataCommittedSize = "committed_size"
)

// IdempotentMethods returns the Greeter methods that are safe to retry
// without the caller's knowledge: they change nothing on the server.
// UploadFile and DownloadFile retry through their own resume logic;
// DeleteFile is never retried blindly.
func IdempotentMethods() []string {
	return []string{
		pb.Greeter_SayHello_FullMethodName,
		pb.Greeter_StatFile_FullMethodName,
		pb.Greeter_ListFiles_FullMethodName,
		pb.Greeter_QueryUpload_FullMethodName,
		pb.Greeter_GetUsage_FullMethodName,
	}
}

// publicServices are served without authentication: the standard health
// service and server reflection (v1 and v1alpha).
var publicServices = []string{
	"/" + grpc_health_v1.Health_ServiceDesc.ServiceName + "/",
	"/" + reflectionv1.ServerReflection_ServiceDesc.ServiceName + "/",
	"/" + reflectionv1alpha.ServerReflection_ServiceDesc.ServiceName + "/",
}

// IsPublic reports whether fullMethod belongs to the health or a server
// reflection service, the methods greeterd serves without authentication.
// It matches whole service prefixes, so a similarly named service cannot
// match.
func IsPublic(fullMethod string) bool {
	for _, p := range publicServices {
		if strings.HasPrefix(fullMethod, p) {
			return true
		}
	}
	return false
}

// IsHealth reports whether fullMethod belongs to the health service.
func IsHealth(fullMethod string) bool {
	return strings.HasPrefix(fullMethod, publicServices[0])
}
