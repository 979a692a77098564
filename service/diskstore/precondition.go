package diskstore

import (
	"context"
	"fmt"
	"io/fs"
	"os"

	"github.com/greeter/greeter/service"
)

// digested is the SHA-256 of a committed file and what the file was when
// it was read: committed files are never written in place, only replaced,
// so the same file means the same bytes.
type digested struct {
	fi  fs.FileInfo
	sum [32]byte
}

// digestAt returns the SHA-256 of the committed file at the root-relative
// path final, from its digest attribute or by reading it, or nil if there
// is no regular file there.
func (s *Store) digestAt(ctx context.Context, final string) (*digested, error) {
	f, info, err := s.openRegular(final, "")
	if isMissing(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	d := &digested{fi: fi}
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var ok bool
	if d.sum, ok = getDigest(rc); !ok {
		if d.sum, err = hashFile(ctx, f, info.Size); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// checkPreconditions checks want.CreateOnly and want.IfMatch of an upload
// of name against the committed file at final, which fi describes (nil
// when there is none). seen is the file's digest read before, if any; it
// is read again if the file changed since.
func (s *Store) checkPreconditions(ctx context.Context, name, final string, want service.Expect, fi fs.FileInfo, seen *digested) error {
	if want.CreateOnly && fi != nil {
		return fmt.Errorf("diskstore: commit %q: %w", name, service.ErrExists)
	}
	if !want.HasIfMatch {
		return nil
	}
	if fi == nil {
		return fmt.Errorf("diskstore: commit %q: %w: there is no such file", name, service.ErrNotMatched)
	}
	if seen == nil || !os.SameFile(seen.fi, fi) {
		var err error
		if seen, err = s.digestAt(ctx, final); err != nil {
			return fmt.Errorf("diskstore: commit %q: reading the file it replaces: %w", name, err)
		}
		if seen == nil {
			return fmt.Errorf("diskstore: commit %q: %w: there is no such file", name, service.ErrNotMatched)
		}
	}
	if seen.sum != want.IfMatch {
		return fmt.Errorf("diskstore: commit %q: %w: its sha256 is %x", name, service.ErrNotMatched, seen.sum)
	}
	return nil
}
