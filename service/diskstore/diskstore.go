package diskstore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sync"
	"syscall"

	"github.com/greeter/greeter/internal/keylock"
	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/objname"
)

const (
	objectsDir = "objects"
	tmpDir     = "tmp"
	tmpSuffix  = ".tmp"
	uploadsDir = "uploads"

	fileMode = 0o640
	dirMode  = 0o750
	tmpMode  = 0o600

	digestAttr = "user.greeter.sha256"
)

var (
	_ service.Store          = (*Store)(nil)
	_ service.ResumableStore = (*Store)(nil)
)

// Store is a service.ResumableStore on a local data directory. It is safe
// for concurrent use.
type Store struct {
	root *os.Root
	// lock is the data directory's lock file, locked; see lockRoot.
	lock *os.File
	opts options

	// held holds the resumable uploads in use.
	held keylock.Set
	// createMu serializes creating resumable uploads (so that the per-owner
	// cap holds) with the janitor removing empty owner folders.
	createMu sync.Mutex
	// usage is every owner's usage, for quotas (see usage.go).
	usage usageLedger
}

// Open opens the store on dir, creating dir and its objects/, tmp/ and
// uploads/ folders if they are missing. Before it touches anything in dir
// it takes an exclusive lock on dir/.lock and records this process there;
// while another Store, in this process or another, holds dir it fails with
// a *LockedError naming the holder, which wraps ErrLocked. Close releases
// the lock. Open migrates a data directory of an earlier layout (see
// WithOwnerMigration).
func Open(dir string, opts ...Option) (*Store, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return nil, fmt.Errorf("diskstore: %w", err)
	}
	root, lock, err := openRoot(dir, nil)
	if err != nil {
		if errors.Is(err, ErrLocked) {
			return nil, err
		}
		return nil, fmt.Errorf("diskstore: %w", err)
	}
	s := &Store{root: root, lock: lock, opts: o}
	if err := s.upgradeLayout(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// openRoot opens the existing folder dir as a root, locks it (see
// lockRoot, which held is passed to) and creates the objects/, tmp/ and
// uploads/ folders in it if they are missing.
func openRoot(dir string, held *os.File) (*os.Root, *os.File, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, nil, err
	}
	lock, err := lockRoot(root, dir, held)
	if err != nil {
		root.Close()
		return nil, nil, err
	}
	for _, d := range []string{objectsDir, tmpDir, uploadsDir} {
		if err := root.MkdirAll(d, dirMode); err != nil {
			root.Close()
			lock.Close()
			return nil, nil, err
		}
	}
	return root, lock, nil
}

// Close releases the data directory and its lock. Files opened before
// stay readable.
func (s *Store) Close() error {
	err := s.root.Close()
	if lerr := s.lock.Close(); err == nil {
		err = lerr
	}
	return err
}

// ownerPath returns the root-relative folder of owner's files.
func ownerPath(owner string) (string, error) {
	return ownerFolder(objectsDir, owner)
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
// when the filesystem ran out of space or quota and service.ErrUnavailable
// on a storage fault (see storageFault).
func classify(op, name string, err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("diskstore: %s %q: %w: %w", op, name, service.ErrNoSpace, err)
	}
	if storageFault(err) {
		return fmt.Errorf("diskstore: %s %q: %w: %w", op, name, err, service.ErrUnavailable)
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

// checkTarget fails early, with a service.ErrConflict error, when the
// committed file final of name would need a folder where a file is, or is
// a folder. Commit checks again.
func (s *Store) checkTarget(op, name, final string) error {
	if _, err := s.existingAncestor(op, name, path.Dir(final)); err != nil {
		return err
	}
	if fi, err := s.root.Lstat(final); err == nil && fi.IsDir() {
		return conflict(op, name, errors.New("it is a folder"))
	}
	return nil
}
