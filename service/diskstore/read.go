package diskstore

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"syscall"

	"github.com/greeter/greeter/service"
)

// hashBufSize is the read size used when a digest has to be computed.
const hashBufSize = 256 << 10

// file is a service.File: an open committed file and what it held when it
// was opened.
type file struct {
	f    *os.File
	info service.FileInfo
}

func (f *file) ReadAt(p []byte, off int64) (int, error) { return f.f.ReadAt(p, off) }
func (f *file) Close() error                            { return f.f.Close() }
func (f *file) Info() service.FileInfo                  { return f.info }

// Open opens owner's committed file name. A missing name, or one that is a
// folder, gives a service.ErrNotFound error.
func (s *Store) Open(ctx context.Context, owner, name string) (service.File, error) {
	return s.open(ctx, "open", owner, name)
}

// Stat describes owner's committed file name.
func (s *Store) Stat(ctx context.Context, owner, name string) (service.FileInfo, error) {
	f, err := s.open(ctx, "stat", owner, name)
	if err != nil {
		return service.FileInfo{}, err
	}
	f.Close()
	return f.info, nil
}

func (s *Store) open(ctx context.Context, op, owner, name string) (_ *file, err error) {
	defer s.unavailable(&err)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := objectPath(owner, name)
	if err != nil {
		return nil, err
	}
	f, info, err := s.openRegular(p, name)
	if err != nil {
		if isMissing(err) {
			return nil, notFound(op, name)
		}
		return nil, fmt.Errorf("diskstore: %s %q: %w", op, name, err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("diskstore: %s %q: %w", op, name, err)
	}
	sum, ok := getDigest(rc)
	if !ok {
		sum, err = hashFile(ctx, f, info.Size)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("diskstore: %s %q: computing sha256: %w", op, name, err)
		}
		if err := setDigest(rc, sum); err != nil {
			s.opts.logger.DebugContext(ctx, "storing a computed digest failed",
				slog.String("object", name), slog.Any("error", err))
		}
	}
	info.SHA256 = sum
	return &file{f: f, info: info}, nil
}

// openRegular opens the root-relative path p for reading and returns it
// with its size and modification time, taken from the opened descriptor. A
// folder or any other non-regular file gives fs.ErrNotExist.
func (s *Store) openRegular(p, name string) (*os.File, service.FileInfo, error) {
	// O_NONBLOCK keeps a FIFO planted in the data directory from blocking
	// the open; it changes nothing for regular files.
	f, err := s.root.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, service.FileInfo{}, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, service.FileInfo{}, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, service.FileInfo{}, fs.ErrNotExist
	}
	return f, service.FileInfo{Name: name, Size: fi.Size(), Modified: fi.ModTime()}, nil
}

// hashFile computes the SHA-256 of the first size bytes of f, reading it
// once from the start.
func hashFile(ctx context.Context, f *os.File, size int64) ([32]byte, error) {
	var sum [32]byte
	h := sha256.New()
	buf := make([]byte, hashBufSize)
	for off := int64(0); off < size; {
		if err := ctx.Err(); err != nil {
			return sum, err
		}
		n, err := f.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		h.Write(buf[:n])
		off += int64(n)
		if err == io.EOF && off < size {
			return sum, io.ErrUnexpectedEOF
		}
		if err != nil && err != io.EOF {
			return sum, err
		}
	}
	h.Sum(sum[:0])
	return sum, nil
}
