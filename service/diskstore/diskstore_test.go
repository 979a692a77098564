package diskstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/objname"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const owner = "alice@example.com"

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func newStore(t *testing.T, opts ...Option) (*Store, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := Open(dir, opts...)
	if err != nil {
		t.Fatalf("Open(%q) = %v", dir, err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dir
}

// diskPath is where owner's name lives on disk below the data dir.
func diskPath(dir, owner, name string) string {
	return filepath.Join(dir, "objects", base64.RawURLEncoding.EncodeToString([]byte(owner)), filepath.FromSlash(name))
}

// put uploads data as owner's name in chunks and commits it.
func put(t *testing.T, s *Store, owner, name string, data []byte) service.FileInfo {
	t.Helper()
	ctx := testContext(t)
	u, err := s.Create(ctx, owner, name)
	if err != nil {
		t.Fatalf("Create(%q) = %v", name, err)
	}
	defer u.Abort()
	for chunk := range slices.Chunk(data, 4096) {
		if _, err := u.Write(chunk); err != nil {
			t.Fatalf("Write(%q) = %v", name, err)
		}
	}
	info, err := u.Commit(ctx, service.Expect{})
	if err != nil {
		t.Fatalf("Commit(%q) = %v", name, err)
	}
	return info
}

// get reads owner's name through the store.
func get(t *testing.T, s *Store, owner, name string) ([]byte, service.FileInfo) {
	t.Helper()
	f, err := s.Open(testContext(t), owner, name)
	if err != nil {
		t.Fatalf("Open(%q) = %v", name, err)
	}
	defer f.Close()
	info := f.Info()
	b, err := io.ReadAll(io.NewSectionReader(f, 0, info.Size))
	if err != nil {
		t.Fatalf("reading %q: %v", name, err)
	}
	return b, info
}

// assertNoTemps fails the test if tmp/ holds anything.
func assertNoTemps(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("tmp/ holds %q, want nothing", names)
	}
}

// assertAbsent fails the test if owner's name exists on disk.
func assertAbsent(t *testing.T, dir, owner, name string) {
	t.Helper()
	if _, err := os.Lstat(diskPath(dir, owner, name)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%q on disk: Lstat err = %v, want not exist", name, err)
	}
}

func tempCount(t *testing.T, dir string) int {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

func TestOpenCreatesLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, d := range []string{"objects", "tmp", "uploads"} {
		fi, err := os.Stat(filepath.Join(dir, d))
		if err != nil || !fi.IsDir() {
			t.Errorf("%s: Stat = %v, %v, want a folder", d, fi, err)
		}
	}
}

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

func TestOpenKeepsItsVersion(t *testing.T) {
	s, _ := newStore(t)
	put(t, s, owner, "v", []byte("version one"))
	f, err := s.Open(t.Context(), owner, "v")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	put(t, s, owner, "v", []byte("version two, longer"))
	if err := s.Delete(t.Context(), owner, "v"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := f.ReadAt(buf, 0)
	if err != io.EOF || string(buf[:n]) != "version one" {
		t.Errorf("ReadAt = %q, %v, want %q, EOF", buf[:n], err, "version one")
	}
	if info := f.Info(); info.Size != 11 || info.SHA256 != sha256.Sum256([]byte("version one")) {
		t.Errorf("Info() = %+v, want the opened version", info)
	}
}

func TestOpenComputesMissingDigest(t *testing.T) {
	s, dir := newStore(t)
	data := bytes.Repeat([]byte("z"), hashBufSize*2+17)
	want := sha256.Sum256(data)
	put(t, s, owner, "d/f", data)
	p := diskPath(dir, owner, "d/f")
	if err := unix.Removexattr(p, digestAttr); err != nil {
		t.Fatal(err)
	}
	list, err := s.List(t.Context(), owner, "", "", 10)
	if err != nil || len(list) != 1 || list[0].SHA256 != ([32]byte{}) {
		t.Errorf("List without digest = %+v, %v, want one entry with a zero SHA256", list, err)
	}
	info, err := s.Stat(t.Context(), owner, "d/f")
	if err != nil || info.SHA256 != want || info.Size != int64(len(data)) {
		t.Errorf("Stat = %+v, %v, want sha256 %x", info, err, want)
	}
	var attr [64]byte
	n, err := unix.Getxattr(p, digestAttr, attr[:])
	if err != nil || !bytes.Equal(attr[:n], want[:]) {
		t.Errorf("digest after Stat = %x, %v, want it stored again as %x", attr[:n], err, want)
	}
	// A malformed attribute is recomputed as well.
	if err := unix.Setxattr(p, digestAttr, []byte("garbage"), 0); err != nil {
		t.Fatal(err)
	}
	if _, info := get(t, s, owner, "d/f"); info.SHA256 != want {
		t.Errorf("Open with a malformed digest: sha256 %x, want %x", info.SHA256, want)
	}
}

func TestNotFound(t *testing.T) {
	s, _ := newStore(t)
	put(t, s, owner, "dir/file", []byte("x"))
	ctx := t.Context()
	for _, name := range []string{"missing", "dir", "dir/file/below", "dir/missing"} {
		if _, err := s.Open(ctx, owner, name); !errors.Is(err, service.ErrNotFound) {
			t.Errorf("Open(%q) = %v, want ErrNotFound", name, err)
		}
		if _, err := s.Stat(ctx, owner, name); !errors.Is(err, service.ErrNotFound) {
			t.Errorf("Stat(%q) = %v, want ErrNotFound", name, err)
		}
		if err := s.Delete(ctx, owner, name); !errors.Is(err, service.ErrNotFound) {
			t.Errorf("Delete(%q) = %v, want ErrNotFound", name, err)
		}
	}
}

func TestNonRegularFilesAreNotFiles(t *testing.T) {
	s, dir := newStore(t)
	put(t, s, owner, "real", []byte("x"))
	od := filepath.Dir(diskPath(dir, owner, "real"))
	if err := unix.Mkfifo(filepath.Join(od, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real", filepath.Join(od, "link")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(t.Context(), owner, "fifo"); !errors.Is(err, service.ErrNotFound) {
		t.Errorf("Open(fifo) = %v, want ErrNotFound", err)
	}
	if err := s.Delete(t.Context(), owner, "link"); !errors.Is(err, service.ErrNotFound) {
		t.Errorf("Delete(symlink) = %v, want ErrNotFound", err)
	}
	list, err := s.List(t.Context(), owner, "", "", 10)
	if err != nil || len(list) != 1 || list[0].Name != "real" {
		t.Errorf("List = %+v, %v, want only %q", list, err, "real")
	}
}

func TestConflicts(t *testing.T) {
	s, dir := newStore(t)
	ctx := t.Context()
	put(t, s, owner, "file", []byte("x"))
	put(t, s, owner, "folder/inner", []byte("y"))

	for _, name := range []string{"file/below", "file/deeper/below", "folder"} {
		if _, err := s.Create(ctx, owner, name); !errors.Is(err, service.ErrConflict) {
			t.Errorf("Create(%q) = %v, want ErrConflict", name, err)
		}
	}
	assertNoTemps(t, dir)

	// The clash appears between Create and Commit.
	tests := []struct {
		name, clash string
	}{
		{"late/below", "late"},   // a file now stands where a folder is needed
		{"late2", "late2/inner"}, // the name became a folder
	}
	for _, tt := range tests {
		u, err := s.Create(ctx, owner, tt.name)
		if err != nil {
			t.Fatalf("Create(%q) = %v", tt.name, err)
		}
		u.Write([]byte("data"))
		put(t, s, owner, tt.clash, []byte("clash"))
		if _, err := u.Commit(ctx, service.Expect{}); !errors.Is(err, service.ErrConflict) {
			t.Errorf("Commit(%q) after %q appeared = %v, want ErrConflict", tt.name, tt.clash, err)
		}
		assertNoTemps(t, dir)
		if got, _ := get(t, s, owner, tt.clash); string(got) != "clash" {
			t.Errorf("%q = %q after the failed commit, want it intact", tt.clash, got)
		}
	}
}

func TestNestedNames(t *testing.T) {
	s, _ := newStore(t)
	names := []string{"a", "b/c", "b/d/e/f/g.txt", "caf\u00e9/\u6587\u4ef6.pdf", "..notes/.x"}
	for _, n := range names {
		put(t, s, owner, n, []byte(n))
	}
	for _, n := range names {
		if got, _ := get(t, s, owner, n); string(got) != n {
			t.Errorf("Open(%q) = %q, want %q", n, got, n)
		}
	}
}

func TestInvalidInputsAreRejected(t *testing.T) {
	s, dir := newStore(t)
	ctx := t.Context()
	put(t, s, "bob", "secret", []byte("bob's"))
	bobDir := base64.RawURLEncoding.EncodeToString([]byte("bob"))
	names := []string{"", "../" + bobDir + "/secret", "a/../../" + bobDir + "/secret", "/etc/passwd", "a//b", "a\x00b"}
	for _, name := range names {
		var e *objname.Error
		if _, err := s.Create(ctx, owner, name); !errors.As(err, &e) {
			t.Errorf("Create(%q) = %v, want an *objname.Error", name, err)
		}
		if _, err := s.Open(ctx, owner, name); !errors.As(err, &e) {
			t.Errorf("Open(%q) = %v, want an *objname.Error", name, err)
		}
		if err := s.Delete(ctx, owner, name); !errors.As(err, &e) {
			t.Errorf("Delete(%q) = %v, want an *objname.Error", name, err)
		}
	}
	if _, err := s.List(ctx, owner, "../", "", 10); err == nil {
		t.Error("List with prefix ../ = nil error, want one")
	}
	for _, o := range []string{"", strings.Repeat("o", MaxOwnerLen+1)} {
		if _, err := s.Create(ctx, o, "x"); !errors.Is(err, ErrInvalidOwner) {
			t.Errorf("Create(owner %d bytes) = %v, want ErrInvalidOwner", len(o), err)
		}
		if _, err := s.Open(ctx, o, "x"); !errors.Is(err, ErrInvalidOwner) {
			t.Errorf("Open(owner %d bytes) = %v, want ErrInvalidOwner", len(o), err)
		}
		if _, err := s.List(ctx, o, "", "", 1); !errors.Is(err, ErrInvalidOwner) {
			t.Errorf("List(owner %d bytes) = %v, want ErrInvalidOwner", len(o), err)
		}
	}
	put(t, s, strings.Repeat("o", MaxOwnerLen), "x", []byte("longest owner"))
	assertNoTemps(t, dir)
	if got, _ := get(t, s, "bob", "secret"); string(got) != "bob's" {
		t.Errorf("bob's file = %q, want it intact", got)
	}
}

func TestOwnerIsolation(t *testing.T) {
	s, _ := newStore(t)
	ctx := t.Context()
	put(t, s, "bob", "secret.txt", []byte("bob's"))
	if _, err := s.Open(ctx, "alice", "secret.txt"); !errors.Is(err, service.ErrNotFound) {
		t.Errorf("alice Open(bob's file) = %v, want ErrNotFound", err)
	}
	if _, err := s.Stat(ctx, "alice", "secret.txt"); !errors.Is(err, service.ErrNotFound) {
		t.Errorf("alice Stat(bob's file) = %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, "alice", "secret.txt"); !errors.Is(err, service.ErrNotFound) {
		t.Errorf("alice Delete(bob's file) = %v, want ErrNotFound", err)
	}
	if list, err := s.List(ctx, "alice", "", "", 10); err != nil || len(list) != 0 {
		t.Errorf("alice List = %+v, %v, want nothing", list, err)
	}
	put(t, s, "alice", "secret.txt", []byte("alice's"))
	if got, _ := get(t, s, "bob", "secret.txt"); string(got) != "bob's" {
		t.Errorf("bob's file = %q after alice's upload, want %q", got, "bob's")
	}
}

func TestSymlinkEscape(t *testing.T) {
	outside := t.TempDir()
	secret := filepath.Join(outside, "passwd")
	if err := os.WriteFile(secret, []byte("root:x:0:0"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, dir := newStore(t)
	put(t, s, owner, "placeholder", nil) // creates the owner's folder
	od := filepath.Dir(diskPath(dir, owner, "placeholder"))
	rel, err := filepath.Rel(od, outside)
	if err != nil {
		t.Fatal(err)
	}
	links := map[string]string{
		"evil":     outside, // absolute, to a folder
		"evilrel":  rel,     // relative, climbing out of the root
		"evilfile": secret,  // absolute, to a file
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(od, name)); err != nil {
			t.Fatal(err)
		}
	}
	ctx := t.Context()
	for _, name := range []string{"evil/passwd", "evilrel/passwd", "evilfile"} {
		if _, err := s.Open(ctx, owner, name); err == nil {
			t.Errorf("Open(%q) through a symlink leaving the root succeeded", name)
		}
		if _, err := s.Stat(ctx, owner, name); err == nil {
			t.Errorf("Stat(%q) through a symlink leaving the root succeeded", name)
		}
		if err := s.Delete(ctx, owner, name); err == nil {
			t.Errorf("Delete(%q) through a symlink leaving the root succeeded", name)
		}
	}
	for _, name := range []string{"evil/new", "evilrel/new", "evil/passwd"} {
		u, err := s.Create(ctx, owner, name)
		if err != nil {
			continue
		}
		u.Write([]byte("pwned"))
		if _, err := u.Commit(ctx, service.Expect{}); err == nil {
			t.Errorf("upload of %q through a symlink leaving the root succeeded", name)
		}
	}
	// Replacing the link itself is fine: the rename swaps the link, not its target.
	put(t, s, owner, "evilfile", []byte("replaced"))

	if b, err := os.ReadFile(secret); err != nil || string(b) != "root:x:0:0" {
		t.Errorf("outside file = %q, %v, want it untouched", b, err)
	}
	entries, err := os.ReadDir(outside)
	if err != nil || len(entries) != 1 {
		t.Errorf("outside folder holds %d entries (%v), want only passwd", len(entries), err)
	}
	list, err := s.List(ctx, owner, "", "", 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, fi := range list {
		if strings.HasPrefix(fi.Name, "evil/") || strings.HasPrefix(fi.Name, "evilrel/") {
			t.Errorf("List returned %q from behind a symlink", fi.Name)
		}
	}
	assertNoTemps(t, dir)
}

func TestList(t *testing.T) {
	s, _ := newStore(t)
	names := []string{
		"a b", "a-b", "a.txt", "a/b", "a/c/d", "a0",
		"photos/2023/x.jpg", "photos/2024/beach.jpg", "photos/2024/city.jpg", "photos-old",
		"z", "\u00e9t\u00e9",
	}
	for _, n := range names {
		put(t, s, owner, n, []byte(n))
	}
	put(t, s, "bob", "a/bob", []byte("not alice's"))
	sorted := slices.Clone(names)
	slices.Sort(sorted) // byte order

	// Page through everything two at a time.
	for _, limit := range []int{1, 2, 5, 100} {
		var got []string
		after := ""
		for range len(names) + 1 {
			page, err := s.List(t.Context(), owner, "", after, limit)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) > limit {
				t.Fatalf("List(limit %d) returned %d entries", limit, len(page))
			}
			for _, fi := range page {
				got = append(got, fi.Name)
			}
			if len(page) < limit {
				break
			}
			after = page[len(page)-1].Name
		}
		if !slices.Equal(got, sorted) {
			t.Errorf("paging with limit %d = %q, want %q", limit, got, sorted)
		}
	}

	tests := []struct {
		prefix, after string
		limit         int
		want          []string
	}{
		{"a/", "", 10, []string{"a/b", "a/c/d"}},
		{"a", "", 3, []string{"a b", "a-b", "a.txt"}},
		{"a", "a.txt", 10, []string{"a/b", "a/c/d", "a0"}},
		{"a/c", "", 10, []string{"a/c/d"}},
		{"photos/20", "", 10, []string{"photos/2023/x.jpg", "photos/2024/beach.jpg", "photos/2024/city.jpg"}},
		{"photos/2024/", "photos/2024/beach.jpg", 10, []string{"photos/2024/city.jpg"}},
		{"photos", "photos/2023/x.jpg", 2, []string{"photos/2024/beach.jpg", "photos/2024/city.jpg"}},
		{"photos/", "photos/2023", 1, []string{"photos/2023/x.jpg"}},
		{"", "photos/2024/city.jpg", 10, []string{"z", "\u00e9t\u00e9"}},
		{"photos", "", 2, []string{"photos-old", "photos/2023/x.jpg"}},
		{"nothing/", "", 10, nil},
		{"z/", "", 10, nil},
		{"", "", 0, nil},
		{"", "\u00e9t\u00e9", 10, nil},
	}
	for _, tt := range tests {
		page, err := s.List(t.Context(), owner, tt.prefix, tt.after, tt.limit)
		if err != nil {
			t.Errorf("List(%q, %q, %d) = %v", tt.prefix, tt.after, tt.limit, err)
			continue
		}
		var got []string
		for _, fi := range page {
			got = append(got, fi.Name)
			if fi.Size != int64(len(fi.Name)) || fi.SHA256 != sha256.Sum256([]byte(fi.Name)) || fi.Modified.IsZero() {
				t.Errorf("List entry %+v: wrong size, digest or time", fi)
			}
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("List(%q, %q, %d) = %q, want %q", tt.prefix, tt.after, tt.limit, got, tt.want)
		}
	}
}

func TestDeleteRemovesEmptyFolders(t *testing.T) {
	s, dir := newStore(t)
	ctx := t.Context()
	put(t, s, owner, "x/y/z/f", []byte("1"))
	put(t, s, owner, "x/keep", []byte("2"))
	if err := s.Delete(ctx, owner, "x/y/z/f"); err != nil {
		t.Fatal(err)
	}
	assertAbsent(t, dir, owner, "x/y")
	if _, err := os.Stat(diskPath(dir, owner, "x/keep")); err != nil {
		t.Errorf("sibling x/keep: %v, want it kept", err)
	}
	if err := s.Delete(ctx, owner, "x/keep"); err != nil {
		t.Fatal(err)
	}
	assertAbsent(t, dir, owner, "x")
	if fi, err := os.Stat(filepath.Dir(diskPath(dir, owner, "x"))); err != nil || !fi.IsDir() {
		t.Errorf("owner folder after deleting everything: %v, want it kept", err)
	}
	if err := s.Delete(ctx, owner, "x/keep"); !errors.Is(err, service.ErrNotFound) {
		t.Errorf("second Delete = %v, want ErrNotFound", err)
	}
	// The folder can be used again.
	put(t, s, owner, "x/y/again", []byte("3"))
}

func TestCommitSurvivesConcurrentDelete(t *testing.T) {
	// Delete removes folders that became empty. When that happens between
	// Commit's MkdirAll and its Rename, Commit must recreate the folder.
	tests := []struct {
		name     string
		races    int // how many times the folder vanishes before the rename
		wantFail bool
	}{
		{"once", 1, false},
		{"every time", placeAttempts, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var dir string
			races := 0
			s, dir := newStore(t, func(o *options) {
				o.beforeRename = func() {
					if races == tt.races {
						return
					}
					races++
					// A concurrent Delete of the folder's only other file
					// removes the now empty folders.
					for _, d := range []string{"race/sub", "race"} {
						if err := os.Remove(diskPath(dir, owner, d)); err != nil {
							t.Error(err)
						}
					}
				}
			})
			u, err := s.Create(t.Context(), owner, "race/sub/f")
			if err != nil {
				t.Fatal(err)
			}
			u.Write([]byte("x"))
			_, err = u.Commit(t.Context(), service.Expect{})
			if gotFail := err != nil; gotFail != tt.wantFail {
				t.Fatalf("Commit after the folder vanished %d times = %v, want failure %v", races, err, tt.wantFail)
			}
			assertNoTemps(t, dir)
			if !tt.wantFail {
				if got, _ := get(t, s, owner, "race/sub/f"); string(got) != "x" {
					t.Errorf("content = %q, want %q", got, "x")
				}
			}
		})
	}
}

func TestCleanTemporaries(t *testing.T) {
	s, dir := newStore(t)
	ctx := t.Context()
	tmp := filepath.Join(dir, "tmp")
	old := time.Now().Add(-2 * time.Hour)
	for _, name := range []string{"stale.tmp", "notes.txt"} {
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(tmp, "dir.tmp"), 0o700); err != nil {
		t.Fatal(err)
	}
	u, err := s.Create(ctx, owner, "in-progress")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Abort()
	u.Write([]byte("partial"))

	removed, err := s.CleanTemporaries(time.Hour)
	if err != nil || removed != 1 {
		t.Errorf("CleanTemporaries(1h) = %d, %v, want 1, nil", removed, err)
	}
	if _, err := os.Stat(filepath.Join(tmp, "stale.tmp")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale.tmp after cleaning: %v, want it removed", err)
	}
	if got := tempCount(t, dir); got != 3 { // notes.txt, dir.tmp, the upload's file
		t.Errorf("tmp/ holds %d entries, want 3", got)
	}

	// At start-up every temporary file is stale. Doing this while an upload
	// runs makes that upload fail without publishing anything.
	removed, err = s.CleanTemporaries(0)
	if err != nil || removed != 1 {
		t.Errorf("CleanTemporaries(0) = %d, %v, want 1, nil", removed, err)
	}
	if _, err := u.Commit(ctx, service.Expect{}); err == nil {
		t.Error("Commit after its temporary file was cleaned = nil, want an error")
	}
	assertAbsent(t, dir, owner, "in-progress")
	if got := tempCount(t, dir); got != 2 {
		t.Errorf("tmp/ holds %d entries, want notes.txt and dir.tmp", got)
	}
}

func TestCanceledContext(t *testing.T) {
	s, dir := newStore(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Create(ctx, owner, "x"); !errors.Is(err, context.Canceled) {
		t.Errorf("Create = %v, want context.Canceled", err)
	}
	if _, err := s.Open(ctx, owner, "x"); !errors.Is(err, context.Canceled) {
		t.Errorf("Open = %v, want context.Canceled", err)
	}
	if _, err := s.List(ctx, owner, "", "", 1); !errors.Is(err, context.Canceled) {
		t.Errorf("List = %v, want context.Canceled", err)
	}
	if err := s.Delete(ctx, owner, "x"); !errors.Is(err, context.Canceled) {
		t.Errorf("Delete = %v, want context.Canceled", err)
	}
	assertNoTemps(t, dir)
}

func TestWritebackRanges(t *testing.T) {
	var w writeback
	var calls [][2]int64
	w.interval = 10
	w.run = func(uintptr) { calls = append(calls, [2]int64{w.start, w.end}) }
	w.rc = fakeRawConn{}
	for _, total := range []int64{3, 9, 10, 15, 19, 20, 45, 46} {
		w.wrote(total)
	}
	want := [][2]int64{{0, 10}, {10, 20}, {20, 45}}
	if !slices.Equal(calls, want) {
		t.Errorf("writeback ranges = %v, want %v", calls, want)
	}
}

// fakeRawConn calls its functions with a dummy descriptor.
type fakeRawConn struct{}

func (fakeRawConn) Control(f func(fd uintptr)) error           { f(0); return nil }
func (fakeRawConn) Read(f func(fd uintptr) (done bool)) error  { return nil }
func (fakeRawConn) Write(f func(fd uintptr) (done bool)) error { return nil }
