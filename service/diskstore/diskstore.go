// Package diskstore is a service.Store that keeps files on a local
// filesystem.
//
// Guarantees:
//
//   - Every file operation on a client-supplied name goes through one
//     os.Root opened on the data directory, and names are checked with
//     objname.Validate again, so no name reaches outside the data
//     directory or into another owner's files. Symbolic links are followed
//     only while they stay inside the data directory.
//   - An upload is written to a private temporary file and becomes visible
//     only when Commit succeeds: the bytes are checked against the declared
//     size and SHA-256, synced, renamed over the final name in one step
//     (replacing any previous version; when uploads of one name race, the
//     last one to commit wins and no two are ever mixed) and the directory
//     is synced. Any failure removes the temporary file.
//   - A file opened for reading keeps the version it opened.
//   - Running out of space or quota is reported as service.ErrNoSpace; a
//     missing name as service.ErrNotFound; a name that needs a folder where
//     a file is, or names a folder, as service.ErrConflict; a name that
//     objname.Validate rejects as its *objname.Error; a bad owner as
//     ErrInvalidOwner.
//   - The one exception to "an error from Commit means nothing changed":
//     when the folder sync after the rename fails, the new version is
//     already visible but may not survive a crash, and Commit reports the
//     error so that no caller promises durability it does not have.
//
// Layout of the data directory:
//
//	objects/<owner>/<name>  committed files, mode 0640; folders 0750.
//	                        <owner> is the owner in unpadded URL-safe base64.
//	tmp/<random hex>.tmp    uploads in progress, mode 0600.
//
// Each committed file carries its SHA-256 in the extended attribute
// user.greeter.sha256 when the filesystem supports it. Open and Stat compute
// and try to store the digest when the attribute is missing; List reports a
// zero SHA256 for such a file instead of reading it.
//
// Temporary files of uploads that died with the process stay in tmp/ until
// CleanTemporaries removes them; Open never does.
//
// Resumable uploads (service.ResumableStore) keep their bytes across broken
// streams and restarts:
//
//	uploads/<owner>/<id>.part  the bytes received so far, mode 0600.
//	uploads/<owner>/<id>.json  the upload's state: name, declared size and
//	                           SHA-256, committed size, the SHA-256 state
//	                           after the committed bytes, times.
//
// The committed size in the state never claims a byte that is not durable:
// the part file is synced before the state that counts its bytes is
// written, and the state is replaced atomically (temporary file, sync,
// rename, folder sync). Progress is saved every checkpoint interval while
// bytes arrive and whenever an upload is suspended. Resuming truncates the
// part file to the committed size and restores the hash state, so no byte
// is hashed twice and bytes written after the last save are received
// again. A completed upload is renamed into objects/ the same way as any
// other upload and its state is deleted; a size or digest mismatch deletes
// it too. One stream at a time may hold an upload (an in-process lock; one
// server process owns a data directory). Incomplete uploads are never
// visible to Open, Stat, List or Delete; CleanExpiredUploads removes those
// not written to for a while.
package diskstore

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"sync"
	"syscall"
	"time"

	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/objname"
)

const (
	objectsDir = "objects"
	tmpDir     = "tmp"
	tmpSuffix  = ".tmp"
	uploadsDir = "uploads"

	// MaxOwnerLen is the longest accepted owner, in bytes.
	MaxOwnerLen = 128

	// DefaultWritebackInterval is how many bytes an upload writes between
	// two requests to start writing its dirty pages back to disk.
	DefaultWritebackInterval = 8 << 20

	fileMode = 0o640
	dirMode  = 0o750
	tmpMode  = 0o600

	digestAttr = "user.greeter.sha256"
)

// ErrInvalidOwner means an owner was empty or longer than MaxOwnerLen bytes.
// It is service.ErrInvalidOwner, so the service maps it to a status.
var ErrInvalidOwner = service.ErrInvalidOwner

var _ service.Store = (*Store)(nil)

// Store is a service.ResumableStore on a local data directory. It is safe
// for concurrent use.
type Store struct {
	root *os.Root
	opts options

	// held holds the resumable uploads a stream is writing.
	held uploadLocks
	// createMu serializes creating resumable uploads (so that the per-owner
	// cap holds) with the janitor removing empty owner folders.
	createMu sync.Mutex
}

// Option configures Open.
type Option func(*options)

type options struct {
	logger            *slog.Logger
	writebackInterval int64
	// writeFile writes to an upload's temporary file. Tests replace it to
	// inject write errors.
	writeFile func(f *os.File, p []byte) (int, error)
	// beforeRename, if set, runs in Commit between creating the target's
	// folders and the rename. Tests use it to race a Delete
	// deterministically.
	beforeRename func()

	maxUploadsPerOwner int
	checkpointInterval int64
	now                func() time.Time
}

// WithLogger sets the logger for the store's best-effort work (digest
// repair, directory syncs, the janitor). The default discards everything.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

// WithWritebackInterval sets how many bytes an upload writes before it asks
// the kernel to start writing them back, so that the sync at Commit has
// little left to do. Zero or less turns this off. The default is
// DefaultWritebackInterval.
func WithWritebackInterval(n int64) Option {
	return func(o *options) { o.writebackInterval = n }
}

// Open opens the store on dir, creating dir and its objects/, tmp/ and
// uploads/ folders if they are missing. Close releases it.
func Open(dir string, opts ...Option) (*Store, error) {
	o := options{
		logger:            slog.New(slog.DiscardHandler),
		writebackInterval: DefaultWritebackInterval,
		writeFile:         (*os.File).Write,

		maxUploadsPerOwner: DefaultMaxUploadsPerOwner,
		checkpointInterval: DefaultCheckpointInterval,
		now:                time.Now,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return nil, fmt.Errorf("diskstore: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("diskstore: %w", err)
	}
	for _, d := range []string{objectsDir, tmpDir, uploadsDir} {
		if err := root.MkdirAll(d, dirMode); err != nil {
			root.Close()
			return nil, fmt.Errorf("diskstore: %w", err)
		}
	}
	return &Store{root: root, opts: o}, nil
}

// Close releases the data directory. Files opened before stay readable.
func (s *Store) Close() error {
	return s.root.Close()
}

// ownerPath returns the root-relative folder of owner's files.
func ownerPath(owner string) (string, error) {
	if owner == "" || len(owner) > MaxOwnerLen {
		return "", ErrInvalidOwner
	}
	return objectsDir + "/" + base64.RawURLEncoding.EncodeToString([]byte(owner)), nil
}

// objectPath returns the root-relative path of owner's file name. It
// validates name again so that "..", absolute names and the like can never
// reach another owner's folder, even though the root would keep them inside
// the data directory.
func objectPath(owner, name string) (string, error) {
	base, err := ownerPath(owner)
	if err != nil {
		return "", err
	}
	if err := objname.Validate(name); err != nil {
		return "", err
	}
	return base + "/" + name, nil
}

// notFound wraps service.ErrNotFound for name.
func notFound(op, name string) error {
	return fmt.Errorf("diskstore: %s %q: %w", op, name, service.ErrNotFound)
}

// conflict wraps service.ErrConflict for name.
func conflict(op, name string, err error) error {
	if err == nil {
		return fmt.Errorf("diskstore: %s %q: %w", op, name, service.ErrConflict)
	}
	return fmt.Errorf("diskstore: %s %q: %w: %w", op, name, service.ErrConflict, err)
}

// classify wraps err from operation op on name, adding service.ErrNoSpace
// when the filesystem ran out of space or quota.
func classify(op, name string, err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("diskstore: %s %q: %w: %w", op, name, service.ErrNoSpace, err)
	}
	return fmt.Errorf("diskstore: %s %q: %w", op, name, err)
}

// isMissing reports whether err says that a path, or one of its parents,
// does not exist as a folder.
func isMissing(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// isConflict reports whether err says that a file stands where a folder is
// needed or the other way round.
func isConflict(err error) bool {
	return errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EISDIR) ||
		errors.Is(err, syscall.EEXIST) || errors.Is(err, syscall.ENOTEMPTY)
}

// syncDir fsyncs the folder dir so that entries added or removed in it
// survive a crash.
func (s *Store) syncDir(dir string) error {
	d, err := s.root.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// existingAncestor returns the deepest folder among dir and its ancestors
// that exists. It returns a service.ErrConflict error if one of them exists
// but is not a folder.
func (s *Store) existingAncestor(op, name, dir string) (string, error) {
	for d := dir; ; d = path.Dir(d) {
		fi, err := s.root.Stat(d)
		switch {
		case err == nil && fi.IsDir():
			return d, nil
		case err == nil:
			return "", conflict(op, name, fmt.Errorf("%q is a file", path.Base(d)))
		case !isMissing(err) || d == objectsDir:
			return "", fmt.Errorf("diskstore: %s %q: %w", op, name, err)
		}
	}
}
