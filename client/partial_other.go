//go:build !unix

package client

import (
	"errors"
	"os"
)

// openPrivate opens name in root for reading and writing, creating it if
// it does not exist, after checking that it is not a symbolic link and
// before checking that the name still refers to the file opened. path
// names it in messages. Ownership and links are not checked here.
func openPrivate(root *os.Root, name, path string) (*os.File, error) {
	before, err := root.Lstat(name)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, err
	case before.Mode()&os.ModeSymlink != 0:
		return nil, unsafePartial(path, "it is a symbolic link")
	case !before.Mode().IsRegular():
		return nil, unsafePartial(path, "it is not a regular file")
	}
	f, err := root.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	opened, err := f.Stat()
	if err == nil {
		var after os.FileInfo
		if after, err = root.Lstat(name); err == nil && !os.SameFile(opened, after) {
			err = unsafePartial(path, "it was replaced while being opened")
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// tryLock does nothing here: without flock, concurrent downloads to one
// path are not detected.
func tryLock(*os.File) (bool, error) { return true, nil }
