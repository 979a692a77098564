//go:build linux

package diskstore

import (
	"errors"
	"syscall"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to start writing back the dirty pages in
// [off, off+n) of the file fd without waiting for them. It reports false if
// the filesystem or kernel cannot do that, so the caller stops asking.
func startWriteback(fd uintptr, off, n int64) bool {
	err := unix.SyncFileRange(int(fd), off, n, unix.SYNC_FILE_RANGE_WRITE)
	return !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EINVAL) &&
		!errors.Is(err, unix.ESPIPE) && !errors.Is(err, unix.EOPNOTSUPP)
}

// setDigest stores sum in the digest attribute of the file behind rc. A
// filesystem without user extended attributes is not an error.
func setDigest(rc syscall.RawConn, sum [32]byte) error {
	var err error
	cerr := rc.Control(func(fd uintptr) {
		err = unix.Fsetxattr(int(fd), digestAttr, sum[:], 0)
	})
	if cerr != nil {
		return cerr
	}
	if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) {
		return nil
	}
	return err
}

// getDigest reads the digest attribute of the file behind rc. It reports
// false if the attribute is missing, unreadable or malformed.
func getDigest(rc syscall.RawConn) (sum [32]byte, ok bool) {
	var buf [33]byte // one spare byte detects an over-long value
	var n int
	var err error
	if cerr := rc.Control(func(fd uintptr) {
		n, err = unix.Fgetxattr(int(fd), digestAttr, buf[:])
	}); cerr != nil || err != nil || n != len(sum) {
		return sum, false
	}
	copy(sum[:], buf[:n])
	return sum, true
}
