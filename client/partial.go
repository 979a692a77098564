package client

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrUnsafePartial is wrapped by the error of a DownloadFile that found
// something other than the caller's own regular file at the
// partial-download path: a symbolic link, a file with other hard links,
// another user's file, a file others may write, or no file at all (a
// directory, a FIFO). DownloadFile leaves it as it is.
var ErrUnsafePartial = errors.New("refusing to use the partial download file")

// ErrDownloadInProgress is wrapped by the error of a DownloadFile whose
// partial file another download, in this process or another, holds.
var ErrDownloadInProgress = errors.New("another download to the same path is in progress")

// PartialPath returns where DownloadFile keeps the bytes of an unfinished
// download to path: ".BASE.greeter-part" in path's directory.
func PartialPath(path string) string {
	return filepath.Join(filepath.Dir(path), partialName(filepath.Base(path)))
}

// partialName is the name of the partial file of a download to the file
// base in the same directory.
func partialName(base string) string {
	return "." + base + ".greeter-part"
}

// partialFile is the partial file of one DownloadFile, open for reading
// and writing, checked to be the caller's own regular file and locked
// against other downloads. Every operation on it by name goes through root,
// the target's directory, so no symbolic link in the path is followed
// after it was opened.
type partialFile struct {
	*os.File
	root   *os.Root
	name   string // the partial file's name in root
	target string // the target's name in root
	path   string // the partial file's path, for messages
	// renamed is set once commit renamed the file onto the target.
	renamed bool
}

// openPartial opens, checks and locks the partial file of a download to
// path, creating it empty if there is none. It fails with ErrUnsafePartial
// when what is there is not the caller's own private regular file, and
// with ErrDownloadInProgress when another download holds it.
func openPartial(path string) (*partialFile, error) {
	dir, base := filepath.Dir(path), filepath.Base(path)
	if filepath.Join(dir, base) != filepath.Clean(path) {
		return nil, fmt.Errorf("cannot download to %s: not a file name", path)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	p := &partialFile{root: root, name: partialName(base), target: base, path: PartialPath(path)}
	if p.File, err = openPrivate(root, p.name, p.path); err != nil {
		root.Close()
		return nil, err
	}
	locked, err := tryLock(p.File)
	if err == nil && locked {
		// Between opening and locking, the download that held the lock
		// may have renamed or removed the file: make sure the name still
		// is the file now locked.
		locked, err = p.stillNamed()
	}
	if err != nil || !locked {
		p.File.Close()
		root.Close()
		if err == nil {
			err = fmt.Errorf("cannot download to %s: %w (it holds %s)", path, ErrDownloadInProgress, p.path)
		}
		return nil, err
	}
	return p, nil
}

// stillNamed reports whether the partial file's name in root refers to the
// open file.
func (p *partialFile) stillNamed() (bool, error) {
	named, err := p.root.Lstat(p.name)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	open, err := p.File.Stat()
	if err != nil {
		return false, err
	}
	return os.SameFile(named, open), nil
}

// commit syncs the partial file and renames it onto the target, then
// closes it, which releases the lock only once the name is gone. If the
// sync or the rename fails, the file stays open for abandon.
func (p *partialFile) commit() error {
	if err := p.File.Sync(); err != nil {
		return err
	}
	if err := p.root.Rename(p.name, p.target); err != nil {
		return err
	}
	p.renamed = true
	err := p.File.Close()
	p.root.Close()
	return err
}

// abandon closes the partial file of a download that failed, removing it
// first (while still locked) if remove is set. It does nothing once commit
// renamed the file.
func (p *partialFile) abandon(remove bool) {
	if p.renamed {
		return
	}
	if remove {
		p.root.Remove(p.name)
	}
	p.File.Close()
	p.root.Close()
}

// unsafePartial returns the error for a partial file at path that is not
// the caller's own private regular file, for the reason why.
func unsafePartial(path, why string) error {
	return fmt.Errorf("%w %s: %s; move it away or download to another path", ErrUnsafePartial, path, why)
}
