//go:build unix

package client

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// openPrivate opens name in root for reading and writing, creating it
// (mode 0600) if it does not exist, and checks that it is a regular file
// of the caller's with no other link, that neither group nor others may
// write. path names it in messages.
//
// os.Root follows a symbolic link that stays inside the root, so the open
// itself is an openat with O_NOFOLLOW on the root's directory: name is a
// single path element, and a link there fails the open instead of being
// followed. O_NONBLOCK keeps a planted FIFO from blocking the open; it is
// cleared again for the regular file.
func openPrivate(root *os.Root, name, path string) (*os.File, error) {
	dir, err := root.Open(".")
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	rc, err := dir.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd := -1
	var oerr error
	err = rc.Control(func(dirfd uintptr) {
		for {
			fd, oerr = unix.Openat(int(dirfd), name, unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0o600)
			if oerr != unix.EINTR {
				return
			}
		}
	})
	switch {
	case err != nil:
		return nil, err
	case errors.Is(oerr, unix.ELOOP):
		return nil, unsafePartial(path, "it is a symbolic link")
	case errors.Is(oerr, unix.EISDIR):
		return nil, unsafePartial(path, "it is a directory")
	case oerr != nil:
		return nil, &os.PathError{Op: "open", Path: path, Err: oerr}
	}
	if err := checkPrivate(fd, path); err != nil {
		unix.Close(fd)
		return nil, err
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "fcntl", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// checkPrivate checks that the open file fd is a regular file of the
// caller's (its effective user) with one link, not writable by group or
// others.
func checkPrivate(fd int, path string) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &os.PathError{Op: "fstat", Path: path, Err: err}
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return unsafePartial(path, "it is not a regular file")
	case st.Uid != uint32(os.Geteuid()):
		return unsafePartial(path, fmt.Sprintf("it belongs to user %d, not to you (user %d)", st.Uid, os.Geteuid()))
	case st.Nlink != 1:
		return unsafePartial(path, fmt.Sprintf("it has %d hard links", st.Nlink))
	case st.Mode&0o022 != 0:
		return unsafePartial(path, fmt.Sprintf("group or others may write it (mode %04o)", st.Mode&0o7777))
	}
	return nil
}

// tryLock takes an exclusive flock on f without waiting. It reports false
// if another open file description holds one: another download, in this
// process or another. The lock goes with f's last close.
func tryLock(f *os.File) (bool, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return false, err
	}
	var lerr error
	err = rc.Control(func(fd uintptr) {
		for {
			lerr = unix.Flock(int(fd), unix.LOCK_EX|unix.LOCK_NB)
			if lerr != unix.EINTR {
				return
			}
		}
	})
	switch {
	case err != nil:
		return false, err
	case errors.Is(lerr, unix.EWOULDBLOCK):
		return false, nil
	case lerr != nil:
		return false, &os.PathError{Op: "flock", Path: f.Name(), Err: lerr}
	}
	return true, nil
}
