package s3store

import (
	"context"
	"crypto/x509"
	"encoding/base32"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/greeter/greeter/coordination"
	"github.com/greeter/greeter/internal/batchconn"
	"github.com/greeter/greeter/internal/keylock"
	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/objname"
)

// Top-level folders below the prefix.
const (
	objectsDir = "objects"
	uploadsDir = "uploads"
	tmpDir     = "tmp"
)

// Metadata names of the whole file's SHA-256 (hex) and size on each
// object, sent as X-Amz-Meta-Greeter-Sha256 and X-Amz-Meta-Greeter-Size.
const (
	metaSHA256 = "Greeter-Sha256"
	metaSize   = "Greeter-Size"
)

// maxKeyLen is the longest object key S3 accepts, in bytes.
const maxKeyLen = 1024

// MaxOwnerLen is the longest accepted owner, in bytes: the disk store's
// diskstore.MaxOwnerLen, so that an owner one store accepts the other
// accepts too.
const MaxOwnerLen = 159

// ownerEncoding turns an owner into a key segment: lower-case unpadded
// base32, copied from diskstore/owner.go (one line, and importing a
// sibling store for it would couple the two) so that both stores name an
// owner alike; TestOwnerSegmentMatchesDiskStore keeps them equal.
var ownerEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

var (
	_ service.Store          = (*Store)(nil)
	_ service.ResumableStore = (*Store)(nil)
)

// Store is a service.ResumableStore in an S3 bucket. It is safe for
// concurrent use, and any number of Stores, in any processes, may share a
// bucket and prefix.
type Store struct {
	c    *minio.Core
	opts Options

	// sem bounds the part uploads in flight.
	sem chan struct{}
	// buffers holds part buffers of opts.PartSize bytes, as *[]byte.
	buffers sync.Pool
	// windows holds download buffers of readWindow bytes, as *[]byte.
	windows sync.Pool
	// leases grants the one writer of each resumable upload: Options.Leases,
	// or a coordination.LocalLeases.
	leases coordination.Leases
	// held holds the resumable uploads a stream of this process writes,
	// or the janitor judges.
	held streamHolds
	// active holds the S3 upload IDs of this process's plain uploads, which
	// the janitor must not abort.
	active keylock.Set
	// creating serializes creating an owner's resumable uploads in this
	// process, so that the per-owner cap holds at least among them.
	creating keyedMutex
	// keys serializes the commits and deletes of one key in this process,
	// so that each counts what it replaced or removed exactly once.
	keys keyedMutex
	// counter keeps every owner's usage (see usage.go).
	counter coordination.Usage
	// tr is the client's transport.
	tr *http.Transport
	// stallLimit is how long a download's GET may wait half read for its
	// reader (see the constant stallLimit; tests change it), and onStall,
	// if set, runs when a download closes a GET that waited that long.
	stallLimit atomic.Int64 // a time.Duration
	onStall    func()
	// settles counts the parts settling (see settling), which Close
	// waits for.
	settles sync.WaitGroup
	// onSettle, if set, runs on a part's settling goroutine before it
	// waits for the part's answer. Tests block in it.
	onSettle func()

	// beforeWrite, if set, runs in a commit between its checks and the
	// write that publishes the file, with the file's name. Tests use it to
	// change the key in between, as another replica would.
	beforeWrite func(name string)
}

// Open connects to the bucket and checks that it exists, that the
// credentials may list it, and that the server honours conditional writes
// (which resumable uploads rely on). Each failure gives an error naming
// the problem; none holds a secret.
func Open(ctx context.Context, opts Options) (*Store, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	u, _ := url.Parse(o.Endpoint)
	secure := u.Scheme == "https"
	tr, err := minio.DefaultTransport(secure)
	if err != nil {
		return nil, fmt.Errorf("s3store: %w", err)
	}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("s3store: CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("s3store: CA file %s holds no PEM certificate", o.CAFile)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	if secure {
		tr.DialTLSContext = batchconn.DialTLS(&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second},
			tr.TLSClientConfig, tr.TLSHandshakeTimeout)
	}
	creds := o.Credentials
	if creds == nil {
		creds = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.EnvAWS{},
			&credentials.FileAWSCredentials{},
		})
	}
	lookup := minio.BucketLookupAuto
	if o.PathStyle {
		lookup = minio.BucketLookupPath
	}
	c, err := minio.NewCore(u.Host, &minio.Options{
		Creds:        creds,
		Secure:       secure,
		Transport:    tr,
		Region:       o.Region,
		BucketLookup: lookup,
		MaxRetries:   o.MaxRetries,
	})
	if err != nil {
		return nil, fmt.Errorf("s3store: %w", err)
	}
	s := &Store{c: c, opts: o, sem: make(chan struct{}, o.MaxConcurrentParts), tr: tr, leases: o.Leases}
	s.stallLimit.Store(int64(stallLimit))
	if s.leases == nil {
		s.leases = coordination.NewLocalLeases()
	}
	local := newMemCounter(s.tally, o.Now, o.UsageMaxAge)
	s.counter = local
	if o.Usage != nil {
		s.counter = o.Usage(s.tally, local)
	}
	s.buffers.New = func() any { b := make([]byte, o.PartSize); return &b }
	s.windows.New = func() any { b := make([]byte, readWindow); return &b }
	if err := s.probe(ctx); err != nil {
		s.Close()
		return nil, s.openError(ctx, "list bucket", err)
	}
	if err := s.checkConditionalWrites(ctx); err != nil {
		s.Close()
		return nil, s.openError(ctx, "write probe", err)
	}
	return s, nil
}

// openError turns a failed check op of Open into an error that says what
// is wrong, adding a hint when no credentials were found.
func (s *Store) openError(ctx context.Context, op string, err error) error {
	if errors.Is(err, errNoConditionalWrites) {
		return fmt.Errorf("s3store: %s: %w", s.opts.Endpoint, err)
	}
	cerr := s.classify(ctx, op, s.opts.Bucket, err)
	if v, gerr := s.c.GetCreds(); (gerr != nil || v.AccessKeyID == "" || v.SignerType.IsAnonymous()) && isDenied(err) {
		return fmt.Errorf("%w (no credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or use the AWS credentials file; endpoint %s)",
			cerr, s.opts.Endpoint)
	}
	return fmt.Errorf("%w (endpoint %s)", cerr, s.opts.Endpoint)
}

// probe lists at most one key of the store, which fails if the endpoint,
// the bucket or the credentials do not work. It returns the client's
// error unclassified.
func (s *Store) probe(ctx context.Context) error {
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for obj := range s.c.ListObjectsIter(lctx, s.opts.Bucket, minio.ListObjectsOptions{Prefix: s.opts.Prefix, MaxKeys: 1}) {
		if obj.Err != nil {
			return obj.Err
		}
		break
	}
	return ctx.Err()
}

// Close waits for the parts settling to settle (each within its request's
// life) and closes idle connections to the server. Files and uploads still
// open keep working.
func (s *Store) Close() error {
	s.settles.Wait()
	s.tr.CloseIdleConnections()
	return nil
}

// ownerSegment returns owner's segment of keys.
func ownerSegment(owner string) (string, error) {
	if owner == "" || len(owner) > MaxOwnerLen {
		return "", service.ErrInvalidOwner
	}
	return ownerEncoding.EncodeToString([]byte(owner)), nil
}

// ownerDir returns the key prefix of owner's entries below the top-level
// folder top, ending in '/'.
func (s *Store) ownerDir(top, owner string) (string, error) {
	seg, err := ownerSegment(owner)
	if err != nil {
		return "", err
	}
	return s.opts.Prefix + top + "/" + seg + "/", nil
}

// objectKey returns the key of owner's file name. It validates name again
// and rejects a name whose key would be longer than S3 allows with an
// *objname.Error.
func (s *Store) objectKey(owner, name string) (string, error) {
	dir, err := s.ownerDir(objectsDir, owner)
	if err != nil {
		return "", err
	}
	if err := objname.Validate(name); err != nil {
		return "", err
	}
	key := dir + name
	if len(key) > maxKeyLen {
		return "", &objname.Error{Rule: objname.RuleTooLong, Reason: fmt.Sprintf(
			"name is too long for this storage: it may be at most %d bytes here", maxKeyLen-len(dir))}
	}
	return key, nil
}

// stateKey returns the key of the state object of owner's resumable
// upload id.
func (s *Store) stateKey(owner, id string) (string, error) {
	dir, err := s.ownerDir(uploadsDir, owner)
	if err != nil {
		return "", err
	}
	if err := service.ValidateUploadID(id); err != nil {
		return "", err
	}
	return dir + id + stateSuffix, nil
}

// errNotHeld is returned by an upload used after it was released.
var errNotHeld = errors.New("s3store: upload already committed, aborted or suspended")
