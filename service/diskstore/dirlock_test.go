package diskstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/greeter/greeter/service"
)

// wantLocked fails the test unless err is Open's error for dir held by
// this process.
func wantLocked(t *testing.T, err error, dir string) {
	t.Helper()
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("Open of a held data directory = %v, want an error wrapping ErrLocked", err)
	}
	host, _ := os.Hostname()
	for _, want := range []string{
		"data directory " + dir + " is in use",
		fmt.Sprintf("pid %d on host %s", os.Getpid(), host),
		"(lock file " + filepath.Join(dir, lockName) + ")",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Open of a held data directory = %q, want it to say %q", err, want)
		}
	}
}

// TestOpenLocksDirectory opens a data directory twice (R7: a second server
// on one data directory must fail naming the holder, before it touches
// anything), then closes the first Store: the directory is free again.
func TestOpenLocksDirectory(t *testing.T) {
	s, dir := newStore(t)
	young := filepath.Join(dir, tmpDir, "inflight"+tmpSuffix)
	if err := os.WriteFile(young, []byte("x"), tmpMode); err != nil {
		t.Fatal(err)
	}

	s2, err := Open(dir)
	if err == nil {
		s2.Close()
	}
	wantLocked(t, err, dir)
	var locked *LockedError
	if !errors.As(err, &locked) || locked.PID != os.Getpid() {
		t.Errorf("Open of a held data directory = %#v, want a *LockedError with PID %d", err, os.Getpid())
	}
	if _, err := OpenLive(dir); !errors.Is(err, ErrLocked) {
		t.Errorf("OpenLive of a held data directory = %v, want ErrLocked", err)
	}
	if _, err := os.Stat(young); err != nil {
		t.Errorf("the holder's temporary file after a refused Open: %v", err)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s3, err := Open(dir)
	if err != nil {
		t.Fatalf("Open after the holder closed = %v, want it to succeed", err)
	}
	defer s3.Close()
	put(t, s3, owner, "f", []byte("data"))
}

// TestOpenLockedUnknownHolder holds the lock the way a holder that has not
// written its record yet does: the error still wraps ErrLocked and says
// so instead of naming a stale or empty record.
func TestOpenLockedUnknownHolder(t *testing.T) {
	dir := t.TempDir()
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"pid":"not a number"}`)
	s, err := Open(dir)
	if err == nil {
		s.Close()
	}
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("Open with an unreadable holder record = %v, want ErrLocked naming no holder", err)
	}
	if _, err := os.Stat(filepath.Join(dir, tmpDir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open created tmp/ in a directory it could not lock (Stat err = %v)", err)
	}
}

// TestLiveReopenTakesLock checks that a Live store holds the lock of the
// directory it switches to (R7), and that its own lock never stops it
// from reopening the same directory when only tmp/ went missing.
func TestLiveReopenTakesLock(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	l := openLive(t, dir)

	// Removed and created again: the new directory is locked too.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := l.Check(testContext(t)); err != nil {
		t.Fatalf("Check after the directory is back = %v", err)
	}
	_, err := Open(dir)
	wantLocked(t, err, dir)

	// Only tmp/ removed: the Store reopens the directory it holds.
	if err := os.RemoveAll(filepath.Join(dir, tmpDir)); err != nil {
		t.Fatal(err)
	}
	first := l.Store()
	if err := l.Check(testContext(t)); err != nil {
		t.Fatalf("Check after tmp/ was removed = %v, want the same directory reopened", err)
	}
	if l.Store() == first {
		t.Fatal("Check did not switch to a new Store")
	}
	_, err = Open(dir)
	wantLocked(t, err, dir)
	put(t, l.Store(), owner, "after", []byte("ok"))

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir)
	if err != nil {
		t.Fatalf("Open after the Live store closed = %v", err)
	}
	s.Close()
}

// TestLiveReopenLockedByAnother puts a directory held by another Store at
// the path of a Live store: Check does not switch and says who holds it.
func TestLiveReopenLockedByAnother(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "data")
	l := openLive(t, dir)
	if err := os.Rename(dir, filepath.Join(parent, "data.old")); err != nil {
		t.Fatal(err)
	}
	other, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	err = l.Check(testContext(t))
	wantUnhealthy(t, err, true)
	wantLocked(t, err, dir)
}

// TestCleanTemporariesKeepsYoung checks the janitor's second line of
// defence (R7): whatever olderThan says, a temporary file written less
// than MinTemporaryAge ago stays, so an upload in flight in a process that
// ignores the lock still commits.
func TestCleanTemporariesKeepsYoung(t *testing.T) {
	s, dir := newStore(t)
	ctx := testContext(t)
	tmp := filepath.Join(dir, tmpDir)
	for name, age := range map[string]time.Duration{
		"young.tmp": time.Minute,
		"old.tmp":   MinTemporaryAge + time.Minute,
	} {
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, []byte("x"), tmpMode); err != nil {
			t.Fatal(err)
		}
		at := time.Now().Add(-age)
		if err := os.Chtimes(p, at, at); err != nil {
			t.Fatal(err)
		}
	}
	u, err := s.Create(ctx, owner, "in-flight")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Abort()
	if _, err := u.Write([]byte("partial")); err != nil {
		t.Fatal(err)
	}

	for _, olderThan := range []time.Duration{0, -time.Hour, time.Second} {
		removed, err := s.CleanTemporaries(olderThan)
		if err != nil || removed > 1 {
			t.Errorf("CleanTemporaries(%v) = %d, %v; want at most old.tmp removed", olderThan, removed, err)
		}
	}
	if _, err := os.Stat(filepath.Join(tmp, "old.tmp")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("old.tmp after cleaning: Stat err = %v, want it removed", err)
	}
	if _, err := os.Stat(filepath.Join(tmp, "young.tmp")); err != nil {
		t.Errorf("young.tmp after cleaning: %v, want it kept", err)
	}
	if _, err := u.Write([]byte(" and the rest")); err != nil {
		t.Fatal(err)
	}
	info, err := u.Commit(ctx, service.Expect{})
	if err != nil {
		t.Fatalf("Commit of the upload in flight after cleaning = %v, want it committed", err)
	}
	if info.Size != int64(len("partial and the rest")) {
		t.Errorf("committed %d bytes, want %d", info.Size, len("partial and the rest"))
	}
}
