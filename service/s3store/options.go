package s3store

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/greeter/greeter/coordination"
	"github.com/greeter/greeter/service"
)

const (
	// DefaultPartSize is the size of the parts of multipart uploads, and so
	// of the one buffer a plain upload of unknown size holds, unless
	// Options.PartSize says otherwise.
	DefaultPartSize = 16 << 20
	// MinPartSize is the smallest part S3 accepts for any part but the
	// last.
	MinPartSize = 5 << 20
	// MaxPartSize is the largest part S3 accepts.
	MaxPartSize = 5 << 30

	// DefaultMaxConcurrentParts bounds the part uploads in flight in one
	// process unless Options.MaxConcurrentParts says otherwise. A part
	// streams at its client's pace and holds its slot until it is stored,
	// but a slot costs a connection and a few KiB, not a part buffer.
	DefaultMaxConcurrentParts = 64

	// DefaultMaxUploadsPerOwner is how many incomplete resumable uploads
	// one owner may have unless Options.MaxUploadsPerOwner says
	// otherwise; the disk store's default.
	DefaultMaxUploadsPerOwner = 16

	// DefaultMaxRetries is how often a request is tried in all unless
	// Options.MaxRetries says otherwise.
	DefaultMaxRetries = 4

	// DefaultCheckTimeout bounds one Check unless Options.CheckTimeout says
	// otherwise.
	DefaultCheckTimeout = 5 * time.Second

	// DefaultUsageMaxAge is how old an owner's usage figure may grow
	// before it is computed again from a listing, unless
	// Options.UsageMaxAge says otherwise.
	DefaultUsageMaxAge = 5 * time.Minute
)

// Options configures Open.
type Options struct {
	// Endpoint is the server's URL, https://host[:port] or
	// http://host[:port], without a path.
	Endpoint string
	// Bucket is the bucket that holds everything; it must exist.
	Bucket string
	// Prefix is put before every key the store uses, so that one bucket
	// can hold several stores. A '/' is added if it does not end in one.
	Prefix string
	// Region is the bucket's region; empty lets the client find it out.
	Region string
	// CAFile is a PEM file of root CAs to trust for the endpoint instead of
	// the system's.
	CAFile string
	// PathStyle addresses the bucket as https://host/bucket. Otherwise the
	// client chooses: https://bucket.host for AWS and Google endpoints,
	// path style for any other.
	PathStyle bool
	// Credentials sign requests. Nil means the standard chain:
	// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN from
	// the environment, then the AWS shared credentials file
	// (AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials, profile
	// AWS_PROFILE or "default").
	Credentials *credentials.Credentials

	// PartSize is the size of every part of a multipart upload but the
	// last, between MinPartSize and MaxPartSize. Zero means
	// DefaultPartSize. Parts stream as their bytes arrive; only a plain
	// upload whose size was not declared holds a buffer of this size.
	PartSize int64
	// MaxConcurrentParts bounds the part uploads in flight in this
	// process; an upload waits for a slot at the start of each part, and
	// holds it until the part is stored. Zero means
	// DefaultMaxConcurrentParts.
	MaxConcurrentParts int
	// MaxUploadsPerOwner is how many incomplete resumable uploads one owner
	// may have; starting one more fails with service.ErrTooManyUploads.
	// Zero means DefaultMaxUploadsPerOwner; less than zero, no limit.
	MaxUploadsPerOwner int
	// MaxRetries is how often a failed request is tried in all (the
	// client's backoff in between). Zero means DefaultMaxRetries.
	MaxRetries int
	// CheckTimeout bounds one Check. Zero means DefaultCheckTimeout.
	CheckTimeout time.Duration
	// Quotas returns the quota of an owner (RELIABILITY.md R11), zero
	// fields meaning no limit; it is called whenever an upload starts or
	// Usage is asked. Nil means no quota, as diskstore.WithQuotas.
	Quotas func(owner string) service.Quota
	// UsageMaxAge is how old the usage figure of an owner, kept in this
	// process, may grow before the next use computes it again from a
	// listing, catching up with what other replicas changed. Zero means
	// DefaultUsageMaxAge; less than zero, never (one replica alone).
	UsageMaxAge time.Duration
	// Usage, if set, returns the counter that keeps every owner's usage,
	// given the tally that counts an owner from the bucket and this
	// process's own counter, which a shared counter falls back to while
	// its backend is down. redisusage.New fits it: replicas then enforce
	// one quota between them (see Usage and quotas in the package
	// documentation). Nil keeps usage in this process.
	Usage func(tally coordination.Tally, local coordination.Usage) coordination.Usage
	// Leases grants the one writer of each resumable upload. Nil keeps
	// today's in-process lock (coordination.LocalLeases): a second stream
	// of this process is refused with ErrUploadBusy, and one on another
	// replica takes over by the conditional write of the state alone. With
	// shared leases (redislease), a stream that resumes an upload asks
	// the stream holding it, on any replica, to let go and takes over
	// within the leases' bound, even from a replica that died.
	Leases coordination.Leases
	// Logger receives what the store does besides answering a call:
	// cleanups that fail after the fact and the janitor. Nil discards it.
	Logger *slog.Logger
	// Now is the clock that stamps resumable uploads and decides when they
	// expire. Nil means time.Now.
	Now func() time.Time
}

// withDefaults checks o and returns it with its zero fields set to their
// defaults.
func (o Options) withDefaults() (Options, error) {
	u, err := url.Parse(o.Endpoint)
	switch {
	case o.Endpoint == "":
		return o, errors.New("s3store: no endpoint: give an https:// or http:// URL")
	case err != nil:
		return o, fmt.Errorf("s3store: endpoint %q is not a URL", o.Endpoint)
	case u.Scheme != "https" && u.Scheme != "http":
		return o, fmt.Errorf("s3store: endpoint %q must start with https:// or http://", o.Endpoint)
	case u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil:
		return o, fmt.Errorf("s3store: endpoint %q must be scheme://host[:port] with no path, query or user", u.Redacted())
	case o.Bucket == "":
		return o, errors.New("s3store: no bucket given")
	case strings.HasPrefix(o.Prefix, "/"):
		return o, fmt.Errorf("s3store: prefix %q must not start with '/'", o.Prefix)
	}
	if o.Prefix != "" && !strings.HasSuffix(o.Prefix, "/") {
		o.Prefix += "/"
	}
	if o.PartSize == 0 {
		o.PartSize = DefaultPartSize
	}
	if o.PartSize < MinPartSize || o.PartSize > MaxPartSize {
		return o, fmt.Errorf("s3store: part size %d is outside %d..%d", o.PartSize, MinPartSize, int64(MaxPartSize))
	}
	if o.MaxConcurrentParts <= 0 {
		o.MaxConcurrentParts = DefaultMaxConcurrentParts
	}
	if o.MaxUploadsPerOwner == 0 {
		o.MaxUploadsPerOwner = DefaultMaxUploadsPerOwner
	}
	if o.MaxRetries <= 0 {
		o.MaxRetries = DefaultMaxRetries
	}
	if o.CheckTimeout <= 0 {
		o.CheckTimeout = DefaultCheckTimeout
	}
	if o.UsageMaxAge == 0 {
		o.UsageMaxAge = DefaultUsageMaxAge
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o, nil
}
