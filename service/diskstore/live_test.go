package diskstore

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/greeter/greeter/service"
)

func openLive(t *testing.T, dir string) *Live {
	t.Helper()
	l, err := OpenLive(dir)
	if err != nil {
		t.Fatalf("OpenLive(%q) = %v", dir, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// TestLiveReopensRemovedDirectory removes the data directory under a Live
// store: Check fails with ErrRootGone, uploads fail, and nothing comes back
// by itself. Once a directory is at the path again, Check switches to it
// and uploads land there.
func TestLiveReopensRemovedDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	l := openLive(t, dir)
	put(t, l.Store(), owner, "before", []byte("old"))
	first := l.Store()

	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the failure is stable, not a one-off
		wantUnhealthy(t, l.Check(testContext(t)), true)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Check created the missing data directory (Stat err = %v); only an operator may", err)
	}
	if u, err := l.Create(testContext(t), owner, "during"); err == nil {
		u.Abort()
		t.Fatal("Create with the data directory removed succeeded")
	}

	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := l.Check(testContext(t)); err != nil {
		t.Fatalf("Check after the directory is back = %v", err)
	}
	if l.Store() == first {
		t.Fatal("Check did not switch to a new Store")
	}
	if _, err := first.root.Stat("."); err == nil {
		t.Error("the old Store is still open")
	}
	put(t, l.Store(), owner, "after", []byte("new"))
	if got, err := os.ReadFile(diskPath(dir, owner, "after")); err != nil || string(got) != "new" {
		t.Fatalf("the upload after reopening is not in the new directory: %q, %v", got, err)
	}
	if _, err := l.Stat(testContext(t), owner, "before"); !errors.Is(err, service.ErrNotFound) {
		t.Errorf("Stat of a file of the removed directory = %v, want ErrNotFound", err)
	}
	assertNoTemps(t, dir)
}

// TestLiveFollowsReplacedDirectory renames the data directory away and puts
// another one at its path. The old directory still works, but the store
// must follow the path, not keep writing where nobody looks.
func TestLiveFollowsReplacedDirectory(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "data")
	l := openLive(t, dir)
	old := filepath.Join(parent, "data.old")
	if err := os.Rename(dir, old); err != nil {
		t.Fatal(err)
	}
	wantUnhealthy(t, l.Store().Check(testContext(t)), true)
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := l.Check(testContext(t)); err != nil {
		t.Fatalf("Check after another directory took the path = %v", err)
	}
	put(t, l.Store(), owner, "f", []byte("here"))
	if _, err := os.Stat(diskPath(dir, owner, "f")); err != nil {
		t.Errorf("the upload is not in the directory at the path: %v", err)
	}
	if _, err := os.Stat(diskPath(old, owner, "f")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the upload went to the old directory: Stat err = %v", err)
	}
}

// TestLiveConcurrentSwitch runs uploads and reads while the directory is
// removed and recreated and Check switches stores, for the race detector:
// every call must either succeed or fail cleanly.
func TestLiveConcurrentSwitch(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	l := openLive(t, dir)
	ctx := testContext(t)
	data := bytes.Repeat([]byte("z"), 8<<10)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 4 {
		wg.Go(func() {
			name := []string{"a", "b", "c", "d"}[w]
			for i := 0; i < 10_000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if u, err := l.Create(ctx, owner, name); err == nil {
					u.Write(data)
					u.Commit(ctx, service.Expect{})
					u.Abort()
				}
				if f, err := l.Open(ctx, owner, name); err == nil {
					f.ReadAt(make([]byte, 16), 0)
					f.Close()
				}
				l.List(ctx, owner, "", "", 10)
			}
		})
	}
	for range 5 {
		// Uploads keep creating files in tmp/ while it is being removed,
		// so removing may take a few tries.
		for try := 0; ; try++ {
			err := os.RemoveAll(dir)
			if err == nil {
				break
			}
			if try == 100 {
				t.Fatal(err)
			}
		}
		l.Check(ctx)
		if err := os.Mkdir(dir, 0o750); err != nil {
			t.Fatal(err)
		}
		if err := l.Check(ctx); err != nil {
			t.Errorf("Check after recreating = %v", err)
		}
	}
	close(stop)
	wg.Wait()
	if err := l.Check(ctx); err != nil {
		t.Fatalf("Check at the end = %v", err)
	}
	put(t, l.Store(), owner, "final", data)
}

func TestLiveClosed(t *testing.T) {
	l := openLive(t, t.TempDir())
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Check(testContext(t)); !errors.Is(err, service.ErrUnavailable) {
		t.Fatalf("Check after Close = %v, want ErrUnavailable", err)
	}
}
