package diskstore

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/greeter/greeter/service"
)

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
