package diskstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/objname"
)

// List returns up to limit of owner's files whose names start with prefix
// and sort after the name after, in byte order of names. The SHA256 of a
// file whose digest attribute is missing is left zero. Folders, symbolic
// links and other non-regular files are skipped, as are entries whose names
// objname.Validate would reject. A limit of zero or less returns nothing.
func (s *Store) List(ctx context.Context, owner, prefix, after string, limit int) (_ []service.FileInfo, err error) {
	defer s.unavailable(&err)
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
	if len(l.out) == 0 {
		return nil, s.sameRoot() // a data directory that is gone lists nothing
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
