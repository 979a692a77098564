package diskstore

import (
	"hash"
	"os"
	"syscall"
	"time"
)

// hashedFile is the file an upload writes, plain or resumable: every byte
// goes to the file and, in the same pass, to a SHA-256 hash, and the kernel
// is asked to write dirty pages back as they pile up. It is not safe for
// concurrent use; the upload that holds it serializes its calls.
type hashedFile struct {
	f         *os.File // nil once closed
	hash      hash.Hash
	wb        writeback
	written   int64
	writeFile func(f *os.File, p []byte) (int, error)
}

// init makes w write to f, which holds written bytes already and h their
// hash. It must run where w stays: writeback keeps a pointer to itself. On
// error w is unusable and f is left open.
func (w *hashedFile) init(f *os.File, h hash.Hash, written int64, o *options) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	w.f, w.hash, w.written, w.writeFile = f, h, written, o.writeFile
	w.wb.init(rc, o.writebackInterval)
	w.wb.start = written
	return nil
}

// write appends p to the file and feeds the bytes written to the hash. It
// neither copies p nor allocates.
func (w *hashedFile) write(p []byte) (int, error) {
	n, err := w.writeFile(w.f, p)
	w.hash.Write(p[:n])
	w.written += int64(n)
	if err != nil {
		return n, err
	}
	w.wb.wrote(w.written)
	return n, nil
}

// sum returns the SHA-256 of everything written.
func (w *hashedFile) sum() (sum [32]byte) {
	w.hash.Sum(sum[:0])
	return sum
}

// seal makes the file what a committed file is: mode fileMode, sum in the
// digest attribute, synced, closed. It returns the file's modification
// time. On error the file stays open unless closing it failed.
func (w *hashedFile) seal(sum [32]byte) (time.Time, error) {
	if err := w.f.Chmod(fileMode); err != nil {
		return time.Time{}, err
	}
	if err := setDigest(w.wb.rc, sum); err != nil {
		return time.Time{}, err
	}
	if err := w.f.Sync(); err != nil {
		return time.Time{}, err
	}
	fi, err := w.f.Stat()
	if err != nil {
		return time.Time{}, err
	}
	if err := w.close(); err != nil {
		return time.Time{}, err
	}
	return fi.ModTime(), nil
}

// close closes the file if it is open.
func (w *hashedFile) close() error {
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}

// writeback asks the kernel to start writing an upload's dirty pages to disk
// every interval bytes, so that they do not pile up until the sync at
// Commit. It is best effort: errors are left for that sync to report.
type writeback struct {
	rc       syscall.RawConn
	interval int64 // <= 0: off
	start    int64 // first byte not yet handed to the kernel
	end      int64 // end of the range being handed over
	run      func(fd uintptr)
}

func (w *writeback) init(rc syscall.RawConn, interval int64) {
	w.rc = rc
	w.interval = interval
	w.run = w.flush // bound once, so that flushing does not allocate
}

// wrote records that the file now holds total bytes.
func (w *writeback) wrote(total int64) {
	if w.interval <= 0 || total-w.start < w.interval {
		return
	}
	w.end = total
	if err := w.rc.Control(w.run); err != nil {
		w.interval = 0
	}
	w.start = total
}

func (w *writeback) flush(fd uintptr) {
	if !startWriteback(fd, w.start, w.end-w.start) {
		w.interval = 0
	}
}
