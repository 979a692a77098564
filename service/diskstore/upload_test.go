package diskstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/greeter/greeter/service"
)

func TestCommitIsAtomic(t *testing.T) {
	s, dir := newStore(t)
	ctx := testContext(t)
	data := bytes.Repeat([]byte("0123456789abcdef"), 10000)
	want := sha256.Sum256(data)

	u, err := s.Create(ctx, owner, "docs/report.pdf")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Write(data[:1000]); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Write(data[1000:]); err != nil {
		t.Fatal(err)
	}
	if got := u.Written(); got != int64(len(data)) {
		t.Errorf("Written() = %d, want %d", got, len(data))
	}
	// Before Commit: the bytes are only in one temporary file.
	assertAbsent(t, dir, owner, "docs/report.pdf")
	if got := tempCount(t, dir); got != 1 {
		t.Errorf("temporary files during upload = %d, want 1", got)
	}
	if _, err := s.Stat(ctx, owner, "docs/report.pdf"); !errors.Is(err, service.ErrNotFound) {
		t.Errorf("Stat before Commit = %v, want ErrNotFound", err)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "tmp"))
	for _, e := range entries {
		fi, _ := e.Info()
		if !strings.HasSuffix(e.Name(), ".tmp") || len(e.Name()) != 32+len(".tmp") || fi.Mode().Perm() != 0o600 {
			t.Errorf("temporary file %q mode %v, want <32 hex>.tmp mode 0600", e.Name(), fi.Mode())
		}
	}

	info, err := u.Commit(ctx, service.Expect{Size: int64(len(data)), HasSize: true, SHA256: want, HasSHA256: true})
	if err != nil {
		t.Fatalf("Commit = %v", err)
	}
	if info.Name != "docs/report.pdf" || info.Size != int64(len(data)) || info.SHA256 != want || info.Modified.IsZero() {
		t.Errorf("Commit = %+v, want name, size %d, sha256 %x and a time", info, len(data), want)
	}
	assertNoTemps(t, dir)

	got, ginfo := get(t, s, owner, "docs/report.pdf")
	if !bytes.Equal(got, data) {
		t.Errorf("content after Commit differs: got %d bytes, want %d", len(got), len(data))
	}
	if ginfo != info {
		t.Errorf("Open().Info() = %+v, want %+v", ginfo, info)
	}
	var attr [64]byte
	n, err := unix.Getxattr(diskPath(dir, owner, "docs/report.pdf"), digestAttr, attr[:])
	if err != nil || !bytes.Equal(attr[:n], want[:]) {
		t.Errorf("xattr %s = %x, %v, want %x", digestAttr, attr[:n], err, want)
	}
	fi, err := os.Stat(diskPath(dir, owner, "docs/report.pdf"))
	if err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("committed file mode = %v, %v, want 0640", fi.Mode(), err)
	}
	fi, err = os.Stat(diskPath(dir, owner, "docs"))
	if err != nil || fi.Mode().Perm() != 0o750 {
		t.Errorf("folder mode = %v, %v, want 0750", fi.Mode(), err)
	}

	// The upload is finished: Abort keeps the file, other calls fail.
	if err := u.Abort(); err != nil {
		t.Errorf("Abort after Commit = %v, want nil", err)
	}
	if _, err := u.Write([]byte("x")); err == nil {
		t.Error("Write after Commit = nil, want an error")
	}
	if _, err := u.Commit(ctx, service.Expect{}); err == nil {
		t.Error("second Commit = nil, want an error")
	}
	if got, _ := get(t, s, owner, "docs/report.pdf"); !bytes.Equal(got, data) {
		t.Error("file changed after Abort following Commit")
	}
}

func TestEmptyUpload(t *testing.T) {
	s, _ := newStore(t)
	info := put(t, s, owner, "empty", nil)
	if want := sha256.Sum256(nil); info.Size != 0 || info.SHA256 != want {
		t.Errorf("Commit of nothing = %+v, want size 0 sha256 %x", info, want)
	}
}

func TestCommitReplacesPreviousVersion(t *testing.T) {
	s, dir := newStore(t)
	put(t, s, owner, "a.txt", []byte("old"))
	put(t, s, owner, "a.txt", []byte("new version"))
	got, info := get(t, s, owner, "a.txt")
	if string(got) != "new version" || info.SHA256 != sha256.Sum256([]byte("new version")) {
		t.Errorf("after replace got %q (%x), want %q", got, info.SHA256, "new version")
	}
	assertNoTemps(t, dir)
}

func TestFailedUploadLeavesNothing(t *testing.T) {
	data := []byte("hello, world")
	sum := sha256.Sum256(data)
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		ctx     context.Context
		want    service.Expect
		abort   bool
		wantErr error
	}{
		{"short", t.Context(), service.Expect{Size: 13, HasSize: true}, false, service.ErrSizeMismatch},
		{"long", t.Context(), service.Expect{Size: 11, HasSize: true}, false, service.ErrSizeMismatch},
		{"digest", t.Context(), service.Expect{SHA256: sha256.Sum256([]byte("other")), HasSHA256: true}, false, service.ErrDigestMismatch},
		{"size ok digest wrong", t.Context(), service.Expect{Size: 12, HasSize: true, HasSHA256: true}, false, service.ErrDigestMismatch},
		{"canceled", canceled, service.Expect{Size: 12, HasSize: true, SHA256: sum, HasSHA256: true}, false, context.Canceled},
		{"abort", t.Context(), service.Expect{}, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, dir := newStore(t)
			put(t, s, owner, "keep.txt", []byte("previous"))
			u, err := s.Create(t.Context(), owner, "keep.txt")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := u.Write(data); err != nil {
				t.Fatal(err)
			}
			if tt.abort {
				if err := u.Abort(); err != nil {
					t.Fatalf("Abort = %v", err)
				}
				if err := u.Abort(); err != nil {
					t.Fatalf("second Abort = %v", err)
				}
				if _, err := u.Commit(t.Context(), tt.want); err == nil {
					t.Fatal("Commit after Abort = nil, want an error")
				}
			} else {
				_, err := u.Commit(tt.ctx, tt.want)
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Commit = %v, want %v", err, tt.wantErr)
				}
				if err := u.Abort(); err != nil {
					t.Errorf("Abort after failed Commit = %v", err)
				}
			}
			assertNoTemps(t, dir)
			if got, _ := get(t, s, owner, "keep.txt"); string(got) != "previous" {
				t.Errorf("previous version = %q, want %q", got, "previous")
			}
		})
	}
}

func TestFailedNewUploadLeavesNoFile(t *testing.T) {
	s, dir := newStore(t)
	u, err := s.Create(t.Context(), owner, "new/file.bin")
	if err != nil {
		t.Fatal(err)
	}
	u.Write([]byte("abc"))
	if _, err := u.Commit(t.Context(), service.Expect{Size: 4, HasSize: true}); !errors.Is(err, service.ErrSizeMismatch) {
		t.Fatalf("Commit = %v, want ErrSizeMismatch", err)
	}
	assertNoTemps(t, dir)
	assertAbsent(t, dir, owner, "new/file.bin")
	assertAbsent(t, dir, owner, "new")
}

func TestWriteErrorLeavesNothing(t *testing.T) {
	tests := []struct {
		name      string
		errno     syscall.Errno
		wantSpace bool
	}{
		{"io error", syscall.EIO, false},
		{"no space", syscall.ENOSPC, true},
		{"quota", syscall.EDQUOT, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, dir := newStore(t, withFailingWrites(100, tt.errno))
			put(t, s, owner, "f", []byte("previous"))
			u, err := s.Create(t.Context(), owner, "f")
			if err != nil {
				t.Fatal(err)
			}
			_, err = u.Write(make([]byte, 1000))
			if !errors.Is(err, tt.errno) || errors.Is(err, service.ErrNoSpace) != tt.wantSpace {
				t.Fatalf("Write = %v, want %v with ErrNoSpace %v", err, tt.errno, tt.wantSpace)
			}
			assertNoTemps(t, dir) // removed at once, not only on Abort
			if _, err := u.Commit(t.Context(), service.Expect{}); !errors.Is(err, tt.errno) {
				t.Errorf("Commit after write error = %v, want %v", err, tt.errno)
			}
			if err := u.Abort(); err != nil {
				t.Errorf("Abort = %v", err)
			}
			assertNoTemps(t, dir)
			if got, _ := get(t, s, owner, "f"); string(got) != "previous" {
				t.Errorf("previous version = %q, want %q", got, "previous")
			}
		})
	}
}

// withFailingWrites makes uploads fail with errno once the temporary file
// would grow past limit bytes, writing what fits first, as a full disk does.
func withFailingWrites(limit int64, errno syscall.Errno) Option {
	return func(o *options) {
		o.writeFile = func(f *os.File, p []byte) (int, error) {
			fi, err := f.Stat()
			if err != nil {
				return 0, err
			}
			room := max(limit-fi.Size(), 0)
			if int64(len(p)) <= room {
				return f.Write(p)
			}
			n, err := f.Write(p[:room])
			if err != nil {
				return n, err
			}
			return n, &os.PathError{Op: "write", Path: f.Name(), Err: errno}
		}
	}
}

// TestNoSpace fills a real 1 MiB tmpfs when the test may mount one and
// falls back to an injected ENOSPC otherwise.
func TestNoSpace(t *testing.T) {
	dir := t.TempDir()
	var opts []Option
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Logf("mounting a tmpfs failed (%v); injecting ENOSPC instead", err)
		opts = append(opts, withFailingWrites(1<<20, syscall.ENOSPC))
	} else {
		t.Cleanup(func() {
			if err := unix.Unmount(dir, 0); err != nil {
				t.Errorf("unmount %s: %v", dir, err)
			}
		})
	}
	s, err := Open(dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	put(t, s, owner, "f", []byte("previous"))
	u, err := s.Create(t.Context(), owner, "f")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Abort()
	chunk := bytes.Repeat([]byte{'x'}, 64<<10)
	for i := 0; ; i++ {
		_, err = u.Write(chunk)
		if err != nil || i > 64 {
			break
		}
	}
	if !errors.Is(err, service.ErrNoSpace) {
		t.Fatalf("Write on a full disk = %v, want ErrNoSpace", err)
	}
	assertNoTemps(t, dir)
	if got, _ := get(t, s, owner, "f"); string(got) != "previous" {
		t.Errorf("previous version = %q, want %q", got, "previous")
	}
	// The space is free again: a small upload succeeds.
	put(t, s, owner, "g", []byte("fits"))
}

func TestConcurrentWritersOneName(t *testing.T) {
	s, dir := newStore(t)
	const writers = 8
	contents := make([][]byte, writers)
	for i := range contents {
		contents[i] = bytes.Repeat([]byte{byte('A' + i)}, 64<<10+i)
	}
	ctx := testContext(t)
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		wg.Go(func() {
			u, err := s.Create(ctx, owner, "shared/name")
			if err != nil {
				errs[i] = err
				return
			}
			defer u.Abort()
			for chunk := range slices.Chunk(contents[i], 1000) {
				if _, err := u.Write(chunk); err != nil {
					errs[i] = err
					return
				}
			}
			_, errs[i] = u.Commit(ctx, service.Expect{Size: int64(len(contents[i])), HasSize: true})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("writer %d: %v", i, err)
		}
	}
	got, info := get(t, s, owner, "shared/name")
	matches := 0
	for _, c := range contents {
		if bytes.Equal(got, c) {
			matches++
		}
	}
	if matches != 1 {
		t.Errorf("final file (%d bytes) equals %d uploads, want exactly 1", len(got), matches)
	}
	if info.SHA256 != sha256.Sum256(got) {
		t.Errorf("stored sha256 %x does not match the content", info.SHA256)
	}
	assertNoTemps(t, dir)
}
