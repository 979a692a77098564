package diskstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
	"unicode"
)

// lockName is the lock file in the data directory. A Store holds an
// exclusive advisory lock (flock(2)) on it from Open to Close; the file
// records who holds it. The file is never removed: removing it would let
// two processes lock two different files of that name.
const lockName = ".lock"

// maxHolderRecord bounds what is read of the lock file's record.
const maxHolderRecord = 1 << 10

// ErrLocked means that another Store, in this or another process, holds the
// data directory. Open and OpenLive return it wrapped in a *LockedError.
var ErrLocked = errors.New("data directory is in use")

// LockedError is the error of Open on a data directory that another Store
// holds. It names the holder as the lock file records it.
type LockedError struct {
	Dir      string // the data directory
	LockFile string // the lock file in it
	PID      int    // the holder's process id; 0 if the record is missing or unreadable
	Host     string // the holder's host name; "" with PID 0
}

func (e *LockedError) Error() string {
	holder := "another process (it has not recorded itself yet)"
	if e.PID > 0 {
		holder = fmt.Sprintf("pid %d on host %s", e.PID, e.Host)
	}
	return fmt.Sprintf("diskstore: data directory %s is in use by %s (lock file %s)", e.Dir, holder, e.LockFile)
}

// Unwrap returns ErrLocked.
func (e *LockedError) Unwrap() error { return ErrLocked }

// holderRecord is what the lock file holds while it is locked.
type holderRecord struct {
	PID   int       `json:"pid"`
	Host  string    `json:"host"`
	Since time.Time `json:"since"`
}

// lockRoot takes the exclusive lock on the lock file of root, the data
// directory dir, and returns the locked file; closing it releases the
// lock. held is the lock file of a Store being replaced on the same path,
// or nil: when the lock file at the path is that very file (the data
// directory is the same one, only a folder in it went missing), lockRoot
// returns a duplicate of held instead of failing against its own lock.
func lockRoot(root *os.Root, dir string, held *os.File) (*os.File, error) {
	path := filepath.Join(dir, lockName)
	// Read-only: flock needs no write access, and a file open for writing
	// would stop the volume from being remounted read-only.
	f, err := root.OpenFile(lockName, os.O_RDONLY|os.O_CREATE, tmpMode)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if held != nil && sameOpenFile(f, held) {
		f.Close()
		dup, err := dupFile(held)
		if err != nil {
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		return dup, nil
	}
	switch err := tryLock(f); {
	case errors.Is(err, errWouldBlock):
		locked := &LockedError{Dir: dir, LockFile: path}
		if rec, ok := readHolder(f); ok {
			locked.PID, locked.Host = rec.PID, rec.Host
		}
		f.Close()
		return nil, locked
	case err != nil:
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := writeHolder(root); err != nil {
		f.Close()
		return nil, fmt.Errorf("record the holder in %s: %w", path, err)
	}
	return f, nil
}

// sameOpenFile reports whether a and b are open on the same file.
func sameOpenFile(a, b *os.File) bool {
	ai, err := a.Stat()
	if err != nil {
		return false
	}
	bi, err := b.Stat()
	return err == nil && os.SameFile(ai, bi)
}

// writeHolder replaces the record in the lock file of root, which this
// process has just locked, with this process.
func writeHolder(root *os.Root) error {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	b, err := json.Marshal(holderRecord{PID: os.Getpid(), Host: host, Since: time.Now().UTC()})
	if err != nil {
		return err
	}
	w, err := root.OpenFile(lockName, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	return err
}

// readHolder reads the record of the process holding f's lock. It reports
// false when there is none yet (the holder locks first and writes after)
// or it is malformed; the record is only written by greeterd, but nothing
// unbounded or unprintable from it reaches an error message.
func readHolder(f *os.File) (holderRecord, bool) {
	var rec holderRecord
	b, err := io.ReadAll(io.NewSectionReader(f, 0, maxHolderRecord))
	if err != nil || json.Unmarshal(b, &rec) != nil || rec.PID <= 0 {
		return rec, false
	}
	if len(rec.Host) > 255 || rec.Host == "" {
		return rec, false
	}
	for _, r := range rec.Host {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return rec, false
		}
	}
	return rec, true
}
