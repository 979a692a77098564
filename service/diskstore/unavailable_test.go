package diskstore

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/greeter/greeter/service"
)

// wantUnavailable fails the test unless err wraps service.ErrUnavailable
// and nothing that would send the client elsewhere (ErrNotFound, say).
func wantUnavailable(t *testing.T, op string, err error) {
	t.Helper()
	if !errors.Is(err, service.ErrUnavailable) {
		t.Errorf("%s = %v, want an error wrapping service.ErrUnavailable", op, err)
	}
	for _, lie := range []error{service.ErrNotFound, service.ErrOffsetMismatch, service.ErrNotMatched} {
		if errors.Is(err, lie) {
			t.Errorf("%s = %v: wraps %v, which says nothing true while the data directory is gone", op, err, lie)
		}
	}
}

// TestUnavailableWhenDataDirGone removes the data directory under a Live
// store (issue 13): until a directory is back, every operation answers
// service.ErrUnavailable, never ErrNotFound, an empty list or an internal
// error.
func TestUnavailableWhenDataDirGone(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	l := openLive(t, dir)
	ctx := testContext(t)
	data := randomData(t, 1000)
	put(t, l.Store(), owner, "kept", data)
	plain, err := l.Create(ctx, owner, "plain")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Abort()
	writeAll(t, plain, data, 100)
	held, err := l.BeginResumable(ctx, owner, resumeOf("held", "held", data, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Abort()
	writeAll(t, held, data[:500], 100)
	idle, err := l.BeginResumable(ctx, owner, resumeOf("idle", "idle", data, 0))
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, idle, data[:300], 100)
	if err := idle.Suspend(); err != nil {
		t.Fatal(err)
	}

	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	_, err = l.Stat(ctx, owner, "kept")
	wantUnavailable(t, "Stat", err)
	_, err = l.Open(ctx, owner, "kept")
	wantUnavailable(t, "Open", err)
	page, err := l.List(ctx, owner, "", "", 10)
	wantUnavailable(t, "List", err)
	if len(page) != 0 {
		t.Errorf("List = %d entries, want none", len(page))
	}
	wantUnavailable(t, "Delete", l.Delete(ctx, owner, "kept"))
	if u, err := l.Create(ctx, owner, "new"); err == nil {
		u.Abort()
		t.Error("Create = nil error")
	} else {
		wantUnavailable(t, "Create", err)
	}
	_, err = plain.Commit(ctx, service.Expect{})
	wantUnavailable(t, "Commit of an upload begun before", err)
	_, err = l.QueryResumable(ctx, owner, "idle", 0)
	wantUnavailable(t, "QueryResumable", err)
	if up, err := l.BeginResumable(ctx, owner, resumeOf("idle", "idle", data, 300)); err == nil {
		up.Abort()
		t.Error("BeginResumable = nil error")
	} else {
		wantUnavailable(t, "BeginResumable", err)
	}
	wantUnavailable(t, "Suspend of an upload begun before", held.Suspend())
	_, err = l.Usage(ctx, "carol") // an owner the store has not seen: its usage must be walked
	wantUnavailable(t, "Usage", err)
}

// TestUnavailableWhenReadOnly makes the data directory read-only: reads
// go on, and every write answers service.ErrUnavailable. As root, file
// modes do not stop writes, so the test remounts a tmpfs read-only when it
// may mount and uses chmod as another user.
func TestUnavailableWhenReadOnly(t *testing.T) {
	dir := t.TempDir()
	var readOnly func() error
	switch {
	case unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m") == nil:
		t.Cleanup(func() {
			if err := unix.Unmount(dir, 0); err != nil {
				t.Errorf("unmount %s: %v", dir, err)
			}
		})
		readOnly = func() error { return unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_RDONLY, "") }
	case os.Geteuid() != 0:
		readOnly = func() error {
			for _, d := range []string{"tmp", "objects", "uploads"} {
				if err := os.Chmod(filepath.Join(dir, d), 0o500); err != nil {
					return err
				}
			}
			return nil
		}
		t.Cleanup(func() {
			for _, d := range []string{"tmp", "objects", "uploads"} {
				os.Chmod(filepath.Join(dir, d), 0o750)
			}
		})
	default:
		t.Skip("root without mount permission cannot make a directory read-only")
	}
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := testContext(t)
	data := randomData(t, 1000)
	put(t, s, owner, "kept", data)
	if err := readOnly(); err != nil {
		t.Fatal(err)
	}

	if got, _ := get(t, s, owner, "kept"); string(got) != string(data) {
		t.Error("reading a file of a read-only data directory failed")
	}
	if page, err := s.List(ctx, owner, "", "", 10); err != nil || len(page) != 1 {
		t.Errorf("List = %d entries, %v; want 1, nil", len(page), err)
	}
	wantUnavailable(t, "Delete", s.Delete(ctx, owner, "kept"))
	if u, err := s.Create(ctx, owner, "new"); err == nil {
		u.Abort()
		t.Error("Create = nil error")
	} else {
		wantUnavailable(t, "Create", err)
	}
	if up, err := s.BeginResumable(ctx, owner, resumeOf("new", "new", data, 0)); err == nil {
		up.Abort()
		t.Error("BeginResumable = nil error")
	} else {
		wantUnavailable(t, "BeginResumable", err)
	}
}
