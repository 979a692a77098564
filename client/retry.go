package client

import (
	"context"
	"math/rand/v2"
	"strconv"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/greeter/greeter/middleware/ratelimit"
)

// Defaults applied to zero fields of RetryPolicy.
const (
	DefaultMaxAttempts     = 8
	DefaultInitialBackoff  = 250 * time.Millisecond
	DefaultMaxBackoff      = 10 * time.Second
	DefaultMaxRetryDelay   = 30 * time.Second
	DefaultMaxThrottleWait = 5 * time.Minute
)

// The ErrorInfo a resumable upload's FailedPrecondition carries, as greeterd
// sends it (service.ErrorDomain and its reasons): the upload did not
// continue at the committed size, or it ended before every declared byte
// arrived. Either way the committed size says where to resume.
const (
	errorDomain            = "greeter"
	reasonOffsetMismatch   = "OFFSET_MISMATCH"
	reasonUploadIncomplete = "UPLOAD_INCOMPLETE"
	metadataCommittedSize  = "committed_size"
)

// RetryPolicy says how UploadFile and DownloadFile retry transient
// failures. Zero fields take the defaults above.
//
// Transient failures are Unavailable (including a broken connection),
// Canceled and DeadlineExceeded that did not come from the caller's
// context, Aborted (the upload is busy on another stream), FailedPrecondition
// carrying the greeter OFFSET_MISMATCH or UPLOAD_INCOMPLETE ErrorInfo, and
// ResourceExhausted carrying errdetails.RetryInfo (a rate limit). Every
// other failure ends the transfer at once.
type RetryPolicy struct {
	// MaxAttempts bounds the attempts in a row that fail without moving the
	// transfer past the furthest point it reached; an attempt that does
	// resets the count. Default 8; 1 disables all retries.
	MaxAttempts int
	// InitialBackoff is the delay before the first retry; it doubles with
	// every further failure without progress, up to MaxBackoff, and each
	// delay is jittered to between half and all of it. Defaults 250 ms and
	// 10 s.
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	// MaxRetryDelay is the longest RetryInfo delay honoured; a server that
	// asks for longer ends the transfer with its error. Default 30 s.
	MaxRetryDelay time.Duration
	// MaxThrottleWait bounds the total time one transfer waits on rate-limit
	// rejections (ResourceExhausted with RetryInfo). They do not count
	// against MaxAttempts: with several transfers sharing one identity's
	// limits, waiting one's turn is not a failure. Default 5 minutes.
	MaxThrottleWait time.Duration
}

// withDefaults returns p with its zero fields set to the defaults.
func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = DefaultMaxAttempts
	}
	if p.InitialBackoff <= 0 {
		p.InitialBackoff = DefaultInitialBackoff
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = DefaultMaxBackoff
	}
	p.MaxBackoff = max(p.MaxBackoff, p.InitialBackoff)
	if p.MaxRetryDelay <= 0 {
		p.MaxRetryDelay = DefaultMaxRetryDelay
	}
	if p.MaxThrottleWait <= 0 {
		p.MaxThrottleWait = DefaultMaxThrottleWait
	}
	return p
}

// backoff returns the jittered delay before the retry that follows the
// n-th failure in a row (n >= 1): between half and all of
// min(InitialBackoff·2^(n-1), MaxBackoff).
func (p RetryPolicy) backoff(n int) time.Duration {
	d := p.InitialBackoff
	for i := 1; i < n && d < p.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, p.MaxBackoff)
	return d/2 + rand.N(d/2+1)
}

// verdict is what classify makes of a failed attempt.
type verdict struct {
	// retry is true for a transient failure.
	retry bool
	// throttle is true when the server asked to wait delay (RetryInfo).
	throttle bool
	delay    time.Duration
	// committed is the committed size of a resumable upload the server
	// reported in an ErrorInfo, or -1.
	committed int64
}

// classify decides whether an attempt that failed with err may be retried.
// It does not look at the caller's context: a failure caused by the
// caller's cancellation or deadline is never retried, and the retry loop
// checks that first.
func classify(err error) verdict {
	v := verdict{committed: -1}
	st, ok := status.FromError(err)
	if !ok || err == nil {
		return v
	}
	switch st.Code() {
	case codes.Unavailable, codes.Canceled, codes.DeadlineExceeded, codes.Aborted:
		v.retry = true
	case codes.ResourceExhausted:
		if d, ok := ratelimit.RetryDelay(err); ok && d >= 0 {
			v.retry, v.throttle, v.delay = true, true, d
		}
	case codes.FailedPrecondition:
		if n, ok := committedSize(st); ok {
			v.retry, v.committed = true, n
		}
	}
	return v
}

// committedSize returns the committed size carried by a resumable upload's
// OFFSET_MISMATCH or UPLOAD_INCOMPLETE ErrorInfo.
func committedSize(st *status.Status) (int64, bool) {
	for _, d := range st.Details() {
		info, ok := d.(*errdetails.ErrorInfo)
		if !ok || info.GetDomain() != errorDomain {
			continue
		}
		if r := info.GetReason(); r != reasonOffsetMismatch && r != reasonUploadIncomplete {
			continue
		}
		n, err := strconv.ParseInt(info.GetMetadata()[metadataCommittedSize], 10, 64)
		if err != nil || n < 0 {
			return 0, false
		}
		return n, true
	}
	return 0, false
}

// attemptFunc runs one attempt of a transfer and returns the verdict of
// its failure. It calls progressed when it finds the transfer further than
// any earlier attempt got: more bytes written to the partial file, or a
// larger committed size on the server. A committed size is learnt when the
// next attempt starts, so an upload's progress resets the count of
// failures one attempt late.
type attemptFunc func(ctx context.Context, progressed func()) (verdict, error)

// retry runs try until it succeeds, fails for good, or p gives up, waiting
// between attempts as p says. It returns the number of attempts made and
// the last error. A failure after the caller's context ended is returned
// as it is.
func (c *Client) retry(ctx context.Context, p RetryPolicy, try attemptFunc) (int, error) {
	var (
		attempts  int
		failures  int // in a row, without progress
		throttled time.Duration
	)
	progressed := func() { failures = 0 }
	for {
		attempts++
		v, err := try(ctx, progressed)
		if err == nil {
			return attempts, nil
		}
		if ctx.Err() != nil || !v.retry || p.MaxAttempts == 1 {
			return attempts, err
		}
		var delay time.Duration
		if v.throttle {
			if v.delay > p.MaxRetryDelay || throttled+v.delay > p.MaxThrottleWait {
				return attempts, err
			}
			// Up to 10% extra, so that throttled transfers do not return
			// in lockstep.
			delay = v.delay + rand.N(v.delay/10+1)
			throttled += delay
		} else {
			failures++
			if failures >= p.MaxAttempts {
				return attempts, err
			}
			delay = p.backoff(failures)
		}
		if werr := c.sleep(ctx, delay); werr != nil {
			code := status.FromContextError(werr).Code()
			return attempts, status.Errorf(code, "%v while waiting to retry after: %v", werr, err)
		}
	}
}

// sleep waits for d or until ctx ends, returning ctx's error then.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
