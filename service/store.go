package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// Errors a Store returns. Implementations wrap them (fmt.Errorf("...: %w",
// ErrNotFound)) so the service maps them to status codes in one place.
var (
	// ErrNotFound means the owner has no file (or upload) with that name.
	ErrNotFound = errors.New("not found")
	// ErrNoSpace means the storage ran out of space or quota.
	ErrNoSpace = errors.New("no space left on storage")
	// ErrSizeMismatch means the bytes written differ from the declared size.
	ErrSizeMismatch = errors.New("size does not match the declared size")
	// ErrDigestMismatch means the bytes written differ from the declared sha256.
	ErrDigestMismatch = errors.New("sha256 does not match the declared sha256")
	// ErrResumableDigestMismatch means the bytes a resumable upload
	// gathered, over one stream or several, do not hash to the SHA-256 it
	// was begun with, or that a part the store kept is not the one it
	// received. The upload is discarded: only starting it again can mend
	// it. It wraps ErrDigestMismatch.
	ErrResumableDigestMismatch = fmt.Errorf("resumable upload: %w", ErrDigestMismatch)
	// ErrDigestRequired means a resumable upload begun without a sha256 was
	// committed without one either (it is kept: a later Commit may carry
	// it), or that a store cannot begin a resumable upload without one.
	ErrDigestRequired = errors.New("a resumable upload must declare its sha256 up front or when it completes")
	// ErrOffsetMismatch means a resumed upload did not continue at the
	// committed offset.
	ErrOffsetMismatch = errors.New("offset does not match the committed size")
	// ErrUnavailable means the storage cannot serve requests right now.
	ErrUnavailable = errors.New("storage unavailable")
	// ErrInvalidOwner means the caller's identity cannot name a namespace
	// (it is empty or too long).
	ErrInvalidOwner = errors.New("owner must be 1 to 128 bytes long")
	// ErrConflict means a name cannot be used because a file stands where a
	// folder is needed, or a folder where a file is needed.
	ErrConflict = errors.New("name conflicts with an existing file or folder")
	// ErrUploadBusy means another stream is writing the same resumable
	// upload right now.
	ErrUploadBusy = errors.New("upload is in progress on another stream")
	// ErrUploadMismatch means a resumable upload was resumed with a name,
	// size or sha256 other than the ones it was started with.
	ErrUploadMismatch = errors.New("upload was started for a different file")
	// ErrTooManyUploads means the owner already has as many incomplete
	// resumable uploads as the store allows.
	ErrTooManyUploads = errors.New("too many incomplete uploads")
	// ErrInvalidUploadID means an upload_id is not 1 to 128 characters
	// from A-Z, a-z, 0-9, '_' and '-'.
	ErrInvalidUploadID = errors.New("upload_id must be 1 to 128 characters from A-Z, a-z, 0-9, '_' and '-'")
	// ErrQuotaExceeded means an upload would take its owner past a quota.
	// Stores return it in a *QuotaError.
	ErrQuotaExceeded = errors.New("quota exceeded")
	// ErrExists means an upload declared Expect.CreateOnly and a file of
	// its name exists.
	ErrExists = errors.New("file already exists")
	// ErrNotMatched means an upload declared Expect.IfMatch and the file of
	// its name is missing or has another SHA-256.
	ErrNotMatched = errors.New("stored file does not match if_match")
	// ErrChanged means a file was replaced or deleted while it was being
	// read, on a store that cannot keep reading the version it opened.
	ErrChanged = errors.New("file changed while it was being read")
)

// maxUploadIDLen is the longest accepted upload_id, in bytes.
const maxUploadIDLen = 128

// ValidateUploadID checks that id can name a resumable upload: 1 to 128
// characters from A-Z, a-z, 0-9, '_' and '-'. It returns ErrInvalidUploadID
// otherwise. Stores use upload IDs in file names, so they check it too.
func ValidateUploadID(id string) error {
	if id == "" || len(id) > maxUploadIDLen {
		return ErrInvalidUploadID
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-':
		default:
			return ErrInvalidUploadID
		}
	}
	return nil
}

// UploadError names the resumable upload an error is about, so that the
// status sent to the client can name it too. A ResumableStore wraps
// ErrNotFound, ErrUploadBusy, ErrUploadMismatch, ErrOffsetMismatch and
// ErrTooManyUploads in it.
type UploadError struct {
	// ID is the client-chosen upload_id.
	ID string
	// Committed is the upload's committed size: where a resumed stream must
	// continue. It is meaningful with ErrOffsetMismatch.
	Committed int64
	// Err is the reason.
	Err error
}

// Error describes the failure.
func (e *UploadError) Error() string {
	if errors.Is(e.Err, ErrOffsetMismatch) {
		return fmt.Sprintf("upload %q: %v: committed size is %d", e.ID, e.Err, e.Committed)
	}
	return fmt.Sprintf("upload %q: %v", e.ID, e.Err)
}

// Unwrap returns the reason.
func (e *UploadError) Unwrap() error { return e.Err }

// FileInfo describes a committed file.
type FileInfo struct {
	Name     string
	Size     int64
	SHA256   [32]byte
	Modified time.Time
}

// Expect is what an uploader declared about the bytes it sends and about
// the file they replace. Zero fields are not checked.
type Expect struct {
	Size      int64 // checked only when HasSize
	HasSize   bool
	SHA256    [32]byte // checked only when HasSHA256
	HasSHA256 bool
	// CreateOnly makes Commit fail with ErrExists when a file of the name
	// exists.
	CreateOnly bool
	// IfMatch, when HasIfMatch, makes Commit fail with ErrNotMatched unless
	// a file of the name exists and its SHA-256 is IfMatch.
	IfMatch    [32]byte
	HasIfMatch bool
}

// Quota bounds what one owner may store (RELIABILITY.md R11). A zero field
// means no limit.
type Quota struct {
	Bytes   int64
	Objects int64
}

// Usage is what one owner stores: its committed files, plus what its
// incomplete uploads set aside, and the quota that applies to it.
type Usage struct {
	Bytes   int64
	Objects int64
	Quota   Quota
}

// Subjects of a QuotaError: which limit of a Quota was hit.
const (
	QuotaBytes   = "bytes"
	QuotaObjects = "objects"
)

// QuotaError says that an upload would take its owner past a quota. It
// wraps ErrQuotaExceeded.
type QuotaError struct {
	// Subject is QuotaBytes or QuotaObjects.
	Subject string
	// Limit is the owner's quota for Subject.
	Limit int64
	// Used is what the owner uses without this upload.
	Used int64
	// Need is what the upload adds to Used.
	Need int64
}

// Error describes the failure.
func (e *QuotaError) Error() string {
	return fmt.Sprintf("%v: %s: %d in use, %d more needed, quota %d", ErrQuotaExceeded, e.Subject, e.Used, e.Need, e.Limit)
}

// Unwrap returns ErrQuotaExceeded.
func (e *QuotaError) Unwrap() error { return ErrQuotaExceeded }

// Store keeps files in per-owner namespaces. Names passed to a Store have
// already been validated by objname.Validate; a Store must still refuse to
// touch anything outside its root. Implementations must be safe for
// concurrent use.
type Store interface {
	// Create starts a new upload of name for owner. Nothing is visible under
	// name until Commit succeeds.
	Create(ctx context.Context, owner, name string) (Upload, error)
	// Open opens a committed file for reading. The returned File keeps
	// reading the version it opened even if name is replaced meanwhile; a
	// store that cannot (an object store without versions) fails ReadAt
	// with ErrChanged instead.
	Open(ctx context.Context, owner, name string) (File, error)
	// Stat describes a committed file.
	Stat(ctx context.Context, owner, name string) (FileInfo, error)
	// List returns up to limit files of owner whose names start with prefix
	// and sort after the name after, in byte order of names.
	List(ctx context.Context, owner, prefix, after string, limit int) ([]FileInfo, error)
	// Delete removes a committed file.
	Delete(ctx context.Context, owner, name string) error
	// Usage reports what owner stores and its quota. The store enforces
	// that quota: Create fails with a *QuotaError when one more file would
	// exceed the objects quota, Write when the bytes would exceed the bytes
	// quota, and Commit when publishing would exceed either, counting a
	// replaced file's size as freed. Deleting a file, and discarding or
	// expiring an incomplete upload, gives its share back.
	Usage(ctx context.Context, owner string) (Usage, error)
}

// Upload is one file being written. Write appends; the store hashes what it
// writes, so a caller never hashes a chunk a second time.
type Upload interface {
	io.Writer
	// Written is the number of bytes written so far.
	Written() int64
	// Commit checks want, makes the bytes durable and then visible under the
	// upload's name atomically, replacing any previous version. The checks
	// of want.CreateOnly and want.IfMatch and of the owner's quota are atomic
	// with the replacement: of two racing uploads with CreateOnly, one
	// fails with ErrExists. On any error nothing becomes visible and the
	// upload is aborted.
	Commit(ctx context.Context, want Expect) (FileInfo, error)
	// Abort discards the upload. It is safe to call after Commit and more
	// than once.
	Abort() error
}

// File is an open committed file.
type File interface {
	io.ReaderAt
	io.Closer
	// Info describes the version that was opened.
	Info() FileInfo
}

// Resume describes the first message of a resumable upload: which upload,
// for which file, and where its bytes continue.
type Resume struct {
	// ID is the client-chosen upload_id; it has passed ValidateUploadID.
	ID string
	// Name is the object name; it has passed objname.Validate.
	Name string
	// Want is what the client declared; a resumable upload must declare
	// its size. The sha256 may be left out: the client then declares it
	// in the Expect of the Commit that completes the upload (the upload
	// trailer), and the store verifies the whole file against that. A
	// store that cannot publish a file whose digest it learns only then
	// fails BeginResumable with ErrDigestRequired.
	Want Expect
	// Offset is where the client's chunks start. It must equal the
	// committed size of the upload, which is 0 for a new upload.
	Offset int64
	// TTL is how long an incomplete upload lives after it was last written
	// to. An expired upload is treated as absent. Zero or less means
	// uploads do not expire here (a janitor may still remove them).
	TTL time.Duration
}

// ResumableStore is a Store whose uploads can outlive the stream that
// writes them: bytes received under an upload ID stay stored, invisible,
// until the upload completes, fails verification or expires, and a later
// stream (even after a restart) continues from the committed size. A store
// may keep them in whole units (the S3 store keeps whole parts of a
// multipart upload): then the committed size is the end of the last whole
// unit, and the client sends the rest again.
// Incomplete uploads belong to an owner; for any other owner they do not
// exist.
type ResumableStore interface {
	Store
	// BeginResumable starts owner's upload r.ID or resumes it. It fails
	// with an *UploadError wrapping ErrUploadMismatch if the upload exists
	// for a different name, size or sha256 (an upload begun without a
	// sha256 must be resumed without one, and one begun with a sha256 with
	// the same); ErrOffsetMismatch (carrying
	// the committed size) if r.Offset is not the committed size;
	// ErrUploadBusy if another stream holds the upload; and
	// ErrTooManyUploads if a new upload would exceed the owner's cap. A new
	// upload sets aside its declared size (less the size of the file it
	// replaces) and one file (unless it replaces one) against the owner's
	// quota, or fails with a *QuotaError. The returned upload is held
	// exclusively until Commit, Abort or Suspend.
	BeginResumable(ctx context.Context, owner string, r Resume) (ResumableUpload, error)
	// QueryResumable returns the committed size of owner's incomplete
	// upload id. An unknown, completed or expired upload (per ttl, as in
	// Resume.TTL) gives an *UploadError wrapping ErrNotFound; an upload
	// committed whose state survived (a lost commit answer) reports its full
	// size until a resume at that size completes it.
	QueryResumable(ctx context.Context, owner, id string, ttl time.Duration) (int64, error)
}

// ResumableUpload is an Upload that can be suspended and resumed. Written
// counts every byte of the file so far, those committed by earlier streams
// included; after Suspend it is the committed size, which may be less than
// what was written (see ResumableStore). Commit verifies the whole file
// against what the upload was started with and against want, publishes it
// and forgets the upload; a size or digest mismatch there discards the
// upload for good, and bytes that do not hash to the SHA-256 the upload
// was begun with, or, for an upload begun without one, to want.SHA256,
// give ErrResumableDigestMismatch. Commit of an upload begun without a
// SHA-256 and with no want.SHA256 either fails with ErrDigestRequired and
// suspends the upload (nothing is lost: a later stream commits it with the
// digest). Abort discards the upload and everything stored for it.
type ResumableUpload interface {
	Upload
	// Suspend makes the bytes written so far durable (up to the end of
	// the last whole unit, on a store that keeps units), records them as
	// the committed size, which Written then returns, and releases the
	// upload so that another stream can resume it. It is safe to call after Commit or Abort and more than
	// once; then it does nothing.
	Suspend() error
}

// SizedStore is a Store that can start a plain upload whose size was
// declared in advance. The upload's share of the owner's bytes quota is set
// aside whole when it starts, so two uploads that fit alone but not
// together cannot both get most of the way and then both fail; and a store
// may use the size to stream without buffering (the S3 store: S3 wants
// each part's length before its bytes). Writing more than size bytes is
// the caller's error: the service refuses it first.
type SizedStore interface {
	Store
	CreateSized(ctx context.Context, owner, name string, size int64) (Upload, error)
}
