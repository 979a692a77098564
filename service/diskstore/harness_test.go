package diskstore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/greeter/greeter/internal/fakeclock"
	"github.com/greeter/greeter/service"
)

// This file holds what the tests of this package share: a store on a
// temporary directory, uploads and reads in one call, checks of what is on
// disk, a fake clock and resumable-upload helpers.

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
	return filepath.Join(dir, "objects", encodedOwner(owner), filepath.FromSlash(name))
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

// newFakeClock returns a clock that moves only when told to.
func newFakeClock() *fakeclock.Clock {
	return fakeclock.New(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
}

func randomData(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// resumeOf describes a resumable upload of data under id and name,
// continuing at offset.
func resumeOf(id, name string, data []byte, offset int64) service.Resume {
	return service.Resume{
		ID:     id,
		Name:   name,
		Want:   service.Expect{Size: int64(len(data)), HasSize: true, SHA256: sha256.Sum256(data), HasSHA256: true},
		Offset: offset,
	}
}

// writeAll writes p to up in chunks of n bytes.
func writeAll(t *testing.T, up service.Upload, p []byte, n int) {
	t.Helper()
	for off := 0; off < len(p); off += n {
		if _, err := up.Write(p[off:min(off+n, len(p))]); err != nil {
			t.Fatalf("Write at %d: %v", off, err)
		}
	}
}

// uploadFiles lists the files below uploads/ of the data dir.
func uploadFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(filepath.Join(dir, uploadsDir), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func wantCommitted(t *testing.T, s *Store, owner, id string, want int64) {
	t.Helper()
	got, err := s.QueryResumable(t.Context(), owner, id, 0)
	if err != nil || got != want {
		t.Fatalf("QueryResumable(%q) = %d, %v, want %d, nil", id, got, err, want)
	}
}

func wantUnknown(t *testing.T, s *Store, owner, id string, ttl time.Duration) {
	t.Helper()
	got, err := s.QueryResumable(t.Context(), owner, id, ttl)
	var upErr *service.UploadError
	if !errors.Is(err, service.ErrNotFound) || !errors.As(err, &upErr) || upErr.ID != id {
		t.Fatalf("QueryResumable(%q) = %d, %v, want an UploadError wrapping ErrNotFound", id, got, err)
	}
}

// encodedOwner returns the name of owner o's folders.
func encodedOwner(o string) string {
	name, _ := ownerFolderName(o)
	return name
}
