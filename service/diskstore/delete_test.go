package diskstore

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/greeter/greeter/service"
)

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
