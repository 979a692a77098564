package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/minio/minio-go/v7/pkg/s3utils"

	"github.com/greeter/greeter/internal/envflag"
	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/diskstore"
	"github.com/greeter/greeter/service/s3store"
)

// Storage kinds --storage accepts.
const (
	storageDisk = "disk"
	storageS3   = "s3"
)

// s3OpenTimeout bounds greeterd's start-up checks of the bucket, so that
// an endpoint that swallows packets ends start-up with a message instead
// of a hang.
const s3OpenTimeout = 30 * time.Second

// storageConfig holds the flags that choose and configure the store.
type storageConfig struct {
	kind               string
	maxUploadsPerOwner int
	s3                 s3Config

	// openTimeout replaces s3OpenTimeout when positive (tests).
	openTimeout time.Duration
}

// s3Config holds the --s3-* flags.
type s3Config struct {
	endpoint       string
	bucket         string
	prefix         string
	region         string
	caFile         string
	pathStyle      bool
	allowHTTP      bool
	partSize       envflag.Size
	maxPartUploads int
}

func (c *storageConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.kind, "storage", storageDisk, "where files are stored: disk (in --data-dir) or s3 (a bucket, see --s3-*)")
	fs.IntVar(&c.maxUploadsPerOwner, "max-uploads-per-owner", diskstore.DefaultMaxUploadsPerOwner, "incomplete resumable uploads one owner may have at once (0: no limit)")
	s := &c.s3
	fs.StringVar(&s.endpoint, "s3-endpoint", "", "with --storage s3: the S3 server, https://host[:port] (http:// only on loopback, or with --s3-allow-http)")
	fs.StringVar(&s.bucket, "s3-bucket", "", "with --storage s3: the bucket that holds everything; it must exist")
	fs.StringVar(&s.prefix, "s3-prefix", "", "with --storage s3: put this before every key, so that several stores share a bucket")
	fs.StringVar(&s.region, "s3-region", "", "with --storage s3: the bucket's region (default: asked of the server)")
	fs.StringVar(&s.caFile, "s3-ca", "", "with --storage s3: PEM file of the CAs that verify the endpoint (default: system roots)")
	fs.BoolVar(&s.pathStyle, "s3-path-style", false, "with --storage s3: address the bucket as https://host/bucket (default: virtual hosts on AWS and Google, path style elsewhere)")
	fs.BoolVar(&s.allowHTTP, "s3-allow-http", false, "with --storage s3: allow an http:// endpoint off loopback (files and session tokens then cross the network in clear)")
	s.partSize = s3store.DefaultPartSize
	fs.Var(&s.partSize, "s3-part-size", "with --storage s3: size of multipart upload parts, 5MiB to 5GiB; every upload in flight holds one buffer of it")
	fs.IntVar(&s.maxPartUploads, "s3-max-part-uploads", s3store.DefaultMaxConcurrentParts, "with --storage s3: part uploads in flight in this process; an upload waits for a slot at the start of each part and holds it until the part is stored")
}

// check reports contradictory or missing storage settings as usage
// errors. fs tells which flags were given (on the command line, in the
// environment or in the config file).
func (c *storageConfig) check(fs *flag.FlagSet) error {
	if c.maxUploadsPerOwner < 0 {
		return usageError{fmt.Errorf("--max-uploads-per-owner must not be negative (0 means no limit), got %d", c.maxUploadsPerOwner)}
	}
	var s3Given []string
	fs.Visit(func(f *flag.Flag) {
		if strings.HasPrefix(f.Name, "s3-") {
			s3Given = append(s3Given, "--"+f.Name)
		}
	})
	switch c.kind {
	case storageDisk:
		if len(s3Given) > 0 {
			return usageError{fmt.Errorf("%s given, but --storage is disk: add --storage s3", strings.Join(s3Given, ", "))}
		}
		return nil
	case storageS3:
		return c.s3.check()
	default:
		return usageError{fmt.Errorf("--storage must be disk or s3, got %q", c.kind)}
	}
}

func (s *s3Config) check() error {
	if s.bucket == "" {
		return usageError{errors.New("--storage s3 needs --s3-bucket")}
	}
	if err := s3utils.CheckValidBucketName(s.bucket); err != nil {
		return usageError{fmt.Errorf("--s3-bucket %q: %v", s.bucket, err)}
	}
	if s.endpoint == "" {
		return usageError{errors.New("--storage s3 needs --s3-endpoint (for AWS: https://s3.REGION.amazonaws.com)")}
	}
	u, err := url.Parse(s.endpoint)
	if err != nil {
		return usageError{errors.New("--s3-endpoint is not a URL: give https://host[:port]")}
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return usageError{fmt.Errorf("--s3-endpoint must be https://host[:port] or http://host[:port] with no path, query or user, got %q", u.Redacted())}
	}
	if u.Scheme == "http" && !s.allowHTTP && !isLoopbackHost(u.Hostname()) {
		return usageError{fmt.Errorf("--s3-endpoint %s is http:// off loopback: files and session tokens would cross the network in clear; use https:// or add --s3-allow-http", u.Redacted())}
	}
	if s.partSize < s3store.MinPartSize || s.partSize > s3store.MaxPartSize {
		return usageError{fmt.Errorf("--s3-part-size must be between 5MiB and 5GiB, got %s", &s.partSize)}
	}
	if s.maxPartUploads < 1 {
		return usageError{fmt.Errorf("--s3-max-part-uploads must be at least 1, got %d", s.maxPartUploads)}
	}
	return nil
}

// isLoopbackHost reports whether host is localhost or a loopback IP.
func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// servedStore is what greeterd needs of a store: the service's contract,
// the health check and the janitor. *diskstore.Live and *s3store.Store
// implement it; the disk store also implements usageScanner.
type servedStore interface {
	service.ResumableStore
	service.SizedStore
	storageChecker
	uploadExpirer
	Close() error
}

var (
	_ servedStore = (*diskstore.Live)(nil)
	_ servedStore = (*s3store.Store)(nil)
)

// storeDeps is what opening a store takes besides its flags.
type storeDeps struct {
	dataDir        string
	legacyOwnerKey func(owner string) string
	quotas         func(owner string) service.Quota
	log            *slog.Logger
	// coord, if not nil, shares the S3 store's upload leases and usage
	// through Redis (see coordination.go).
	coord *storageCoordination
}

// open opens the store --storage names and returns it with attributes that
// describe it for the log.
func (c *storageConfig) open(ctx context.Context, d storeDeps) (servedStore, []any, error) {
	if c.kind == storageS3 {
		return c.openS3(ctx, d)
	}
	store, err := diskstore.OpenLive(d.dataDir, diskstore.WithLogger(d.log), diskstore.WithOwnerMigration(d.legacyOwnerKey),
		diskstore.WithQuotas(d.quotas), diskstore.WithMaxUploadsPerOwner(c.maxUploadsPerOwner))
	if err != nil {
		return nil, nil, fmt.Errorf("opening data dir: %w", err)
	}
	return store, []any{slog.String("storage", storageDisk), slog.String("data_dir", d.dataDir)}, nil
}

// openS3 opens the bucket and checks, within s3OpenTimeout, that the
// endpoint answers, the bucket exists, the credentials may use it and the
// server honours conditional writes. Credentials come from the standard
// AWS variables or the AWS shared credentials file (s3store's default
// chain); no error names them.
func (c *storageConfig) openS3(ctx context.Context, d storeDeps) (servedStore, []any, error) {
	maxUploads := c.maxUploadsPerOwner
	if maxUploads == 0 {
		maxUploads = -1 // s3store: less than zero is no limit
	}
	timeout := s3OpenTimeout
	if c.openTimeout > 0 {
		timeout = c.openTimeout
	}
	octx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	s := c.s3
	opts := s3store.Options{
		Endpoint:           s.endpoint,
		Bucket:             s.bucket,
		Prefix:             s.prefix,
		Region:             s.region,
		CAFile:             s.caFile,
		PathStyle:          s.pathStyle,
		PartSize:           int64(s.partSize),
		MaxConcurrentParts: s.maxPartUploads,
		MaxUploadsPerOwner: maxUploads,
		Quotas:             d.quotas,
		Logger:             d.log,
	}
	d.coord.share(&opts)
	store, err := s3store.Open(octx, opts)
	switch {
	case err == nil:
	case ctx.Err() == nil && octx.Err() != nil:
		return nil, nil, fmt.Errorf("opening S3 storage: bucket %q: no answer from %s within %v", s.bucket, s.endpoint, timeout)
	default:
		return nil, nil, fmt.Errorf("opening S3 storage: %w", err)
	}
	return store, []any{slog.String("storage", storageS3), slog.String("endpoint", s.endpoint),
		slog.String("bucket", s.bucket), slog.String("prefix", s.prefix)}, nil
}
