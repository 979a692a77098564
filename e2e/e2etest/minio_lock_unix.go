//go:build unix

package e2etest

import (
	"os"
	"syscall"
)

// lockFile takes an exclusive flock(2) on path, creating it, so that test
// binaries of several packages do not install MinIO at once. The returned
// func releases it.
func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}
