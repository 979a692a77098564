package diskstore

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"

	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/objname"
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

func (s *Store) open(ctx context.Context, op, owner, name string) (*file, error) {
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
			s.opts.logger.Debug("diskstore: storing a computed digest failed", "name", name, "err", err)
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

// List returns up to limit of owner's files whose names start with prefix
// and sort after the name after, in byte order of names. The SHA256 of a
// file whose digest attribute is missing is left zero. Folders, symbolic
// links and other non-regular files are skipped, as are entries whose names
// objname.Validate would reject. A limit of zero or less returns nothing.
func (s *Store) List(ctx context.Context, owner, prefix, after string, limit int) ([]service.FileInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	base, err := ownerPath(owner)
	if err != nil {
		return nil, err
	}
	if err := objname.ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	l := lister{ctx: ctx, s: s, fsys: s.root.FS(), base: base, prefix: prefix, after: after, limit: limit}
	// Start in the deepest folder the prefix names completely.
	start := ""
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		start = prefix[:i]
	}
	if err := l.walk(start); err != nil && err != errStop {
		return nil, fmt.Errorf("diskstore: list %q: %w", prefix, err)
	}
	return l.out, nil
}

// lister walks an owner's folder depth first. It sorts each folder's
// entries as if every subfolder's name ended in '/', which makes the order
// of visits the byte order of full names ("a-b" < "a/b" although "a" <
// "a-b"), so it can stop as soon as it has limit names.
type lister struct {
	ctx           context.Context
	s             *Store
	fsys          fs.FS
	base          string
	prefix, after string
	limit         int
	out           []service.FileInfo
}

func (l *lister) walk(dir string) error {
	if err := l.ctx.Err(); err != nil {
		return err
	}
	entries, err := fs.ReadDir(l.fsys, path.Join(l.base, dir))
	if err != nil {
		if isMissing(err) {
			return nil
		}
		return err
	}
	slices.SortFunc(entries, compareEntries)
	for _, e := range entries {
		name := e.Name()
		if dir != "" {
			name = dir + "/" + name
		}
		switch {
		case e.IsDir():
			sub := name + "/"
			if !strings.HasPrefix(sub, l.prefix) && !strings.HasPrefix(l.prefix, sub) {
				continue // nothing below sub has the prefix
			}
			if sub < l.after && !strings.HasPrefix(l.after, sub) {
				continue // everything below sub sorts before after
			}
			if err := l.walk(name); err != nil {
				return err
			}
		case e.Type().IsRegular():
			if name <= l.after || !strings.HasPrefix(name, l.prefix) || objname.Validate(name) != nil {
				continue
			}
			info, err := l.s.listInfo(l.base+"/"+name, name)
			if isMissing(err) {
				continue // deleted or replaced by a folder meanwhile
			}
			if err != nil {
				return err
			}
			l.out = append(l.out, info)
		}
		if len(l.out) >= l.limit {
			return errStop
		}
	}
	return nil
}

// errStop ends a walk that has found enough names.
var errStop = errors.New("diskstore: listing complete")

// compareEntries orders directory entries by name, a folder's name being
// compared as if it ended in '/'.
func compareEntries(a, b fs.DirEntry) int {
	an, bn := a.Name(), b.Name()
	n := min(len(an), len(bn))
	if c := strings.Compare(an[:n], bn[:n]); c != 0 {
		return c
	}
	// One name is a prefix of the other: compare the next byte, which is
	// '/' past the end of a folder's name.
	return cmp.Compare(nextByte(an, n, a.IsDir()), nextByte(bn, n, b.IsDir()))
}

// nextByte returns name[i], or for i == len(name) '/' for a folder and -1
// for a file.
func nextByte(name string, i int, dir bool) int {
	switch {
	case i < len(name):
		return int(name[i])
	case dir:
		return '/'
	default:
		return -1
	}
}

// listInfo describes the regular file at the root-relative path p without
// computing a missing digest.
func (s *Store) listInfo(p, name string) (service.FileInfo, error) {
	f, info, err := s.openRegular(p, name)
	if err != nil {
		return info, err
	}
	defer f.Close()
	if rc, err := f.SyscallConn(); err == nil {
		info.SHA256, _ = getDigest(rc)
	}
	return info, nil
}

// Delete removes owner's committed file name, then every folder above it
// that became empty, up to but excluding owner's folder. A missing name, or
// one that is a folder, gives a service.ErrNotFound error.
func (s *Store) Delete(ctx context.Context, owner, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := objectPath(owner, name)
	if err != nil {
		return err
	}
	fi, err := s.root.Lstat(p)
	if isMissing(err) || (err == nil && !fi.Mode().IsRegular()) {
		return notFound("delete", name)
	}
	if err != nil {
		return fmt.Errorf("diskstore: delete %q: %w", name, err)
	}
	if err := s.root.Remove(p); err != nil {
		if isMissing(err) {
			return notFound("delete", name)
		}
		return fmt.Errorf("diskstore: delete %q: %w", name, err)
	}
	base, _ := ownerPath(owner)
	d := path.Dir(p)
	for ; d != base; d = path.Dir(d) {
		fi, err := s.root.Lstat(d)
		if err != nil || !fi.IsDir() || s.root.Remove(d) != nil {
			break // not empty (or not ours to remove): keep it and above
		}
	}
	if err := s.syncDir(d); err != nil {
		s.opts.logger.Warn("diskstore: folder sync failed after delete", "name", name, "err", err)
	}
	return nil
}
