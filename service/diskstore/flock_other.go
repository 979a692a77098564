//go:build !unix

package diskstore

import (
	"errors"
	"os"
)

// errWouldBlock is never returned here.
var errWouldBlock = errors.New("lock is held")

// tryLock does nothing here: there is no flock(2), so the data directory
// is not locked and one process per directory is the operator's duty. The
// janitor's minimum age (MinTemporaryAge) still protects uploads in flight.
func tryLock(f *os.File) error { return nil }

// dupFile opens f again; without locks there is nothing to share.
func dupFile(f *os.File) (*os.File, error) { return os.OpenFile(f.Name(), os.O_RDWR, 0) }
