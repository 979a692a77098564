//go:build unix

package diskstore

import (
	"os"

	"golang.org/x/sys/unix"
)

// errWouldBlock is what tryLock returns when another open file holds the
// lock.
var errWouldBlock error = unix.EWOULDBLOCK

// tryLock takes an exclusive flock(2) lock on f without waiting. The lock
// belongs to f's open file description: another open of the same file,
// even in this process, does not get it, and it goes when every
// descriptor of f is closed, or the process dies.
func tryLock(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var lerr error
	if err := rc.Control(func(fd uintptr) {
		for {
			lerr = unix.Flock(int(fd), unix.LOCK_EX|unix.LOCK_NB)
			if lerr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	return lerr
}

// dupFile returns a new descriptor of f's open file description, so that
// it shares f's lock and keeps it after f is closed.
func dupFile(f *os.File) (*os.File, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	nfd := -1
	var derr error
	if err := rc.Control(func(fd uintptr) {
		nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, derr
	}
	return os.NewFile(uintptr(nfd), f.Name()), nil
}
