package client

import (
	"context"
	"math/rand/v2"
	"strconv"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/greeter/greeter/proto/wire"
)

// RetryPolicy says how UploadFile and DownloadFile retry transient
// failures. Zero fields take the values of DefaultRetryPolicy.
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

// DefaultRetryPolicy returns the policy transfers use when a RetryPolicy
// field is zero: 8 attempts in a row without progress, backoff from 250 ms
// doubling up to 10 s, RetryInfo delays of up to 30 s honoured, and up to
// 5 minutes of rate-limit waits per transfer.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{
		MaxAttempts:     8,
		InitialBackoff:  250 * time.Millisecond,
		MaxBackoff:      10 * time.Second,
		MaxRetryDelay:   30 * time.Second,
		MaxThrottleWait: 5 * time.Minute,
	}
}

// withDefaults returns p with its zero fields set to the defaults.
func (p RetryPolicy) withDefaults() RetryPolicy {
	d := DefaultRetryPolicy()
	p.MaxAttempts = orDefault(p.MaxAttempts, d.MaxAttempts)
	p.InitialBackoff = orDefault(p.InitialBackoff, d.InitialBackoff)
	p.MaxBackoff = max(orDefault(p.MaxBackoff, d.MaxBackoff), p.InitialBackoff)
	p.MaxRetryDelay = orDefault(p.MaxRetryDelay, d.MaxRetryDelay)
	p.MaxThrottleWait = orDefault(p.MaxThrottleWait, d.MaxThrottleWait)
	return p
}

// backoff returns the jittered delay before the retry that follows the
// n-th failure in a row (n >= 1).
func (p RetryPolicy) backoff(n int) time.Duration {
	return backoff(p.InitialBackoff, p.MaxBackoff, n)
}

// UnaryRetryPolicy says which unary calls UnaryRetry retries and how.
// Zero fields take the values of DefaultUnaryRetryPolicy.
//
// A call is retried only on Unavailable, or on ResourceExhausted carrying
// errdetails.RetryInfo, when it waits the server's delay instead of the
// backoff.
type UnaryRetryPolicy struct {
	// MaxAttempts bounds the attempts per call, the first included.
	// Default 4; 1 disables retries.
	MaxAttempts int
	// InitialBackoff is the base delay before the first retry; it doubles
	// per retry, up to MaxBackoff, and each delay is jittered between half
	// and all of it. Defaults 100 ms and 5 s.
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	// MaxRetryDelay is the longest RetryInfo delay honoured; a server asking
	// for longer gets its error returned. Default 30 s.
	MaxRetryDelay time.Duration
	// Methods lists the full method names to retry. Nil means
	// wire.IdempotentMethods (SayHello, StatFile, ListFiles, QueryUpload
	// and GetUsage; never UploadFile or DeleteFile).
	Methods []string
}

// DefaultUnaryRetryPolicy returns the policy UnaryRetry uses when a
// UnaryRetryPolicy field is zero: 4 attempts, backoff from 100 ms doubling
// up to 5 s, RetryInfo delays of up to 30 s honoured, and the idempotent
// methods of the wire contract.
func DefaultUnaryRetryPolicy() UnaryRetryPolicy {
	return UnaryRetryPolicy{
		MaxAttempts:    4,
		InitialBackoff: 100 * time.Millisecond,
		MaxBackoff:     5 * time.Second,
		MaxRetryDelay:  30 * time.Second,
		Methods:        wire.IdempotentMethods(),
	}
}

// withDefaults returns p with its zero fields set to the defaults.
func (p UnaryRetryPolicy) withDefaults() UnaryRetryPolicy {
	d := DefaultUnaryRetryPolicy()
	p.MaxAttempts = orDefault(p.MaxAttempts, d.MaxAttempts)
	p.InitialBackoff = orDefault(p.InitialBackoff, d.InitialBackoff)
	p.MaxBackoff = max(orDefault(p.MaxBackoff, d.MaxBackoff), p.InitialBackoff)
	p.MaxRetryDelay = orDefault(p.MaxRetryDelay, d.MaxRetryDelay)
	if p.Methods == nil {
		p.Methods = d.Methods
	}
	return p
}

// orDefault returns v, or def when v is not positive.
func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// backoff is the backoff both retry loops wait by: the jittered delay
// before the retry that follows the n-th failure in a row (n >= 1), between
// half and all of min(initial·2^(n-1), maxDelay).
func backoff(initial, maxDelay time.Duration, n int) time.Duration {
	d := initial
	for i := 1; i < n && d < maxDelay; i++ {
		d *= 2
	}
	d = min(d, maxDelay)
	return jitter(d/2, d)
}

// throttleDelay is the wait after a rate-limit rejection that asked for d:
// up to 10% more, so that throttled clients do not return in lockstep.
func throttleDelay(d time.Duration) time.Duration {
	return jitter(d, d+d/10)
}

// jitter returns a random delay between lo and hi, both included.
func jitter(lo, hi time.Duration) time.Duration {
	return lo + rand.N(hi-lo+1)
}

// retryDelay returns the delay a rate-limited call was asked to wait: the
// errdetails.RetryInfo carried by a ResourceExhausted err. It reports false
// for any other error, and for a missing or negative delay.
func retryDelay(err error) (time.Duration, bool) {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.ResourceExhausted {
		return 0, false
	}
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay() != nil {
			delay := ri.GetRetryDelay().AsDuration()
			return delay, delay >= 0
		}
	}
	return 0, false
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

// verdict is what classify makes of a failed transfer attempt.
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

// classify decides whether a transfer attempt that failed with err may be
// retried. It does not look at the caller's context: a failure caused by
// the caller's cancellation or deadline is never retried, and the retry
// loop checks that first.
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
		if d, ok := retryDelay(err); ok {
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
		if !ok || info.GetDomain() != wire.ErrorDomain {
			continue
		}
		if r := info.GetReason(); r != wire.ReasonOffsetMismatch && r != wire.ReasonUploadIncomplete {
			continue
		}
		n, err := strconv.ParseInt(info.GetMetadata()[wire.MetadataCommittedSize], 10, 64)
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
			delay = throttleDelay(v.delay)
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
