package service

import (
	"context"
	"errors"
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
)

// FileInfo describes a committed file.
type FileInfo struct {
	Name     string
	Size     int64
	SHA256   [32]byte
	Modified time.Time
}

// Expect is what an uploader declared about the bytes it sends. Zero fields
// are not checked.
type Expect struct {
	Size      int64 // checked only when HasSize
	HasSize   bool
	SHA256    [32]byte // checked only when HasSHA256
	HasSHA256 bool
}

// Store keeps files in per-owner namespaces. Names passed to a Store have
// already been validated by objname.Validate; a Store must still refuse to
// touch anything outside its root. Implementations must be safe for
// concurrent use.
type Store interface {
	// Create starts a new upload of name for owner. Nothing is visible under
	// name until Commit succeeds.
	Create(ctx context.Context, owner, name string) (Upload, error)
	// Open opens a committed file for reading. The returned File keeps
	// reading the version it opened even if name is replaced meanwhile.
	Open(ctx context.Context, owner, name string) (File, error)
	// Stat describes a committed file.
	Stat(ctx context.Context, owner, name string) (FileInfo, error)
	// List returns up to limit files of owner whose names start with prefix
	// and sort after the name after, in byte order of names.
	List(ctx context.Context, owner, prefix, after string, limit int) ([]FileInfo, error)
	// Delete removes a committed file.
	Delete(ctx context.Context, owner, name string) error
}

// Upload is one file being written. Write appends; the store hashes what it
// writes, so a caller never hashes a chunk a second time.
type Upload interface {
	io.Writer
	// Written is the number of bytes written so far.
	Written() int64
	// Commit checks want, makes the bytes durable and then visible under the
	// upload's name atomically, replacing any previous version. On any error
	// nothing becomes visible and the upload is aborted.
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
