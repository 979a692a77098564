package diskstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/greeter/greeter/service"
)

// wantUnhealthy fails the test unless err is a Check failure, wrapping
// ErrRootGone exactly when gone is set.
func wantUnhealthy(t *testing.T, err error, gone bool) {
	t.Helper()
	if !errors.Is(err, service.ErrUnavailable) {
		t.Fatalf("Check = %v, want an error wrapping service.ErrUnavailable", err)
	}
	if got := errors.Is(err, ErrRootGone); got != gone {
		t.Fatalf("Check = %v: wraps ErrRootGone = %v, want %v", err, got, gone)
	}
}

func TestCheckHealthyLeavesNothing(t *testing.T) {
	s, dir := newStore(t)
	for range 3 {
		if err := s.Check(testContext(t)); err != nil {
			t.Fatalf("Check on a fresh store = %v", err)
		}
	}
	assertNoTemps(t, dir)
	// A probe left behind by a crash is reused, not an error.
	if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(probeName)), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(testContext(t)); err != nil {
		t.Fatalf("Check with a stale probe = %v", err)
	}
	assertNoTemps(t, dir)
}

func TestCheckCanceledContext(t *testing.T) {
	s, _ := newStore(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Check(ctx); err == nil {
		t.Fatal("Check with a canceled context = nil, want an error")
	}
}

// TestCheckUnwritable makes tmp/ unwritable and writable again. As root,
// file modes do not stop writes, so the test remounts a tmpfs read-only
// when it may mount; as another user it uses chmod; as root without mount
// permission it puts a file where tmp/ belongs, which Check must also
// report (and repair once the file is gone).
func TestCheckUnwritable(t *testing.T) {
	dir := t.TempDir()
	var breakIt, repair func() error
	gone := false
	switch {
	case unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m") == nil:
		t.Cleanup(func() {
			if err := unix.Unmount(dir, 0); err != nil {
				t.Errorf("unmount %s: %v", dir, err)
			}
		})
		t.Log("read-only remount of a tmpfs")
		breakIt = func() error { return unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_RDONLY, "") }
		repair = func() error { return unix.Mount("", dir, "", unix.MS_REMOUNT, "") }
	case os.Geteuid() != 0:
		t.Log("chmod 0500 of tmp/")
		tmp := filepath.Join(dir, "tmp")
		breakIt = func() error { return os.Chmod(tmp, 0o500) }
		repair = func() error { return os.Chmod(tmp, 0o750) }
	default:
		t.Log("root without mount permission: a file in place of tmp/")
		tmp := filepath.Join(dir, "tmp")
		gone = true
		breakIt = func() error {
			if err := os.Remove(tmp); err != nil {
				return err
			}
			return os.WriteFile(tmp, nil, 0o600)
		}
		repair = func() error { return os.Remove(tmp) }
	}
	l := openLive(t, dir)
	put(t, l.Store(), owner, "kept", []byte("data"))
	if err := l.Check(testContext(t)); err != nil {
		t.Fatalf("Check before = %v", err)
	}
	if err := breakIt(); err != nil {
		t.Fatal(err)
	}
	wantUnhealthy(t, l.Check(testContext(t)), gone)
	if err := repair(); err != nil {
		t.Fatal(err)
	}
	if err := l.Check(testContext(t)); err != nil {
		t.Fatalf("Check after repair = %v", err)
	}
	if got, _ := get(t, l.Store(), owner, "kept"); string(got) != "data" {
		t.Errorf("file after repair = %q, want %q", got, "data")
	}
	put(t, l.Store(), owner, "new", []byte("ok"))
	assertNoTemps(t, dir)
}
