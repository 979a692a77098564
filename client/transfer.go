package client

import (
	"context"
	"io"

	"google.golang.org/grpc/status"

	pb "github.com/greeter/greeter/proto/greeterpb"
)

// Result describes a stored or fetched file and what moving it took. A
// failed transfer still reports its name, the bytes it moved and the
// attempts it made.
type Result struct {
	Name   string
	Size   int64
	SHA256 string
	// Sent is the number of file bytes an upload sent, over all its
	// attempts. A resumed upload sends less than Size.
	Sent int64
	// Received is the number of file bytes a download received, over all
	// its attempts. A resumed download receives less than Size.
	Received int64
	// Attempts is the number of streams the transfer opened (or tried to).
	Attempts int
}

// Progress is called with the bytes of the file transferred so far and the
// total expected (-1 when unknown). A resumed transfer starts at the bytes
// already in place; a transfer that starts over goes back to 0. It may be
// nil.
type Progress func(done, total int64)

// TransferOption changes how one UploadFile, Upload or DownloadFile call
// behaves. Options that do not apply to a call are ignored: Upload makes one
// attempt, so it has no retry policy to change, and a download has no
// preconditions.
type TransferOption func(*transfer)

// transfer holds the settings of one transfer.
type transfer struct {
	retry    RetryPolicy
	noResume bool
	// createOnly and ifMatch are the upload's preconditions, sent in its
	// MetaData.
	createOnly bool
	ifMatch    string
}

// NoResume makes a transfer start from the first byte, on its first
// attempt and on every retry. An upload is sent without an upload ID, as a
// plain upload (the tutorial's protocol); a download ignores and removes
// any partial file left by an earlier run.
func NoResume() TransferOption {
	return func(t *transfer) { t.noResume = true }
}

// WithRetry replaces the Client's retry policy for one transfer.
func WithRetry(p RetryPolicy) TransferOption {
	return func(t *transfer) { t.retry = p.withDefaults() }
}

// CreateOnly makes an upload store the file only if no file of its name
// exists yet (MetaData.create_only); otherwise the server fails it with
// FailedPrecondition, which is not retried.
func CreateOnly() TransferOption {
	return func(t *transfer) { t.createOnly = true }
}

// IfMatch makes an upload replace the file only if the stored file's
// SHA-256 is sha256Hex, in lowercase hex (MetaData.if_match); otherwise, or
// if there is no such file, the server fails it with FailedPrecondition,
// which is not retried.
func IfMatch(sha256Hex string) TransferOption {
	return func(t *transfer) { t.ifMatch = sha256Hex }
}

// metadata returns the MetaData of an upload of name with t's
// preconditions.
func (t transfer) metadata(name string) *pb.MetaData {
	return &pb.MetaData{Filename: name, CreateOnly: t.createOnly, IfMatch: t.ifMatch}
}

// transferOptions returns the settings of one transfer: the Client's,
// changed by opts.
func (c *Client) transferOptions(opts []TransferOption) transfer {
	t := transfer{retry: c.retryPolicy, noResume: c.noResume}
	for _, o := range opts {
		o(&t)
	}
	return t
}

// withCallTimeout bounds a unary call a transfer makes.
func (c *Client) withCallTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.callTimeout)
}

// copyContext copies r to h until EOF, checking ctx between reads.
func copyContext(ctx context.Context, h io.Writer, r io.Reader) (int64, error) {
	buf := make([]byte, 1<<20)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, status.FromContextError(err).Err()
		}
		k, err := r.Read(buf)
		h.Write(buf[:k])
		n += int64(k)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}
