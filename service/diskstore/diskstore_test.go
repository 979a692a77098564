package diskstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/objname"
)

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
	bobDir := encodedOwner("bob")
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
