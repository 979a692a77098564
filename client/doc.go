// Package client is the Go client API of greeterd, used by the greeter CLI
// and by other Go services. It imports only the generated protocol, the
// wire contract beside it (package wire) and grpc; nothing of the server.
//
// It provides:
//
//   - A Client that verifies the server over TLS 1.3 (optionally presenting
//     a client certificate for mutual TLS), attaches per-call credentials
//     and moves files with bounded memory.
//   - Bearer credentials (BearerToken, TokenSource) that refuse to travel
//     over a connection without transport security.
//   - Unary interceptors for any grpc.ClientConn: WithDefaultTimeout gives a
//     call without a deadline one, UnaryRetry retries idempotent calls.
//     DialOptions bundles both with bearer credentials for callers of
//     grpc.NewClient; a Client installs the interceptors itself.
//   - Transfers with resume. UploadFile and DownloadFile survive broken
//     connections, server restarts and rate limits: they retry transient
//     failures with bounded, jittered backoff (see RetryPolicy) and resume
//     instead of starting over. An upload resumes from the bytes the server
//     has committed under an upload ID derived from the file's name, size,
//     mtime, device and inode (UploadID), so a later process uploading the
//     same file resumes it too; it hashes the file as it sends it (one
//     read) and declares the SHA-256 in the stream's trailer. A download keeps the bytes it received in a partial
//     file next to the target (PartialPath), continues from its end, and
//     renames it into place only once the whole file's size and SHA-256
//     match what the server announced, so a failed download never leaves a
//     short or corrupt file under the requested name. The partial file is
//     never reached through a symbolic link, must be the caller's own
//     private regular file (ErrUnsafePartial), and is locked against a
//     second download to the same path (ErrDownloadInProgress).
//   - Replicas. New takes a comma-separated list of addresses or a
//     "dns:///name:port" target, spreads calls over the replicas
//     (round_robin) and skips any whose grpc.health.v1 status is not
//     SERVING or whose connection is down. A retried call or transfer
//     attempt is balanced afresh, so when a replica dies mid-transfer the
//     next attempt goes to another one and, when the replicas share their
//     storage, resumes there.
//   - Conditional uploads (CreateOnly, IfMatch), a listing that stops when
//     the server's page tokens never end (ErrEndlessListing), and the
//     caller's storage use and quotas (Usage).
//
// Both retry loops, the unary interceptor's and the transfers', wait by one
// exponential backoff with jitter and honour one reading of the server's
// errdetails.RetryInfo; their policies (UnaryRetryPolicy, RetryPolicy) keep
// separate defaults because a transfer is worth waiting longer for than a
// unary call.
//
// Why these interceptors are written here rather than taken from
// go-grpc-middleware v2:
//
//   - Retry: grpc-go's own service-config retryPolicy handles Unavailable
//     and honours the "grpc-retry-pushback-ms" trailer, but it cannot
//     restrict ResourceExhausted retries to responses that carry
//     errdetails.RetryInfo, and a resolver-supplied service config can
//     replace it. go-grpc-middleware's retry interceptor computes its
//     backoff without seeing the error, so it cannot honour RetryInfo
//     either.
//   - Timeout: go-grpc-middleware's timeout interceptor applies its timeout
//     to every call, cutting short a caller's longer deadline; this one
//     only supplies a deadline to calls that have none.
package client
