//go:build unix

package client

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"

	"google.golang.org/grpc"

	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/service/servicetest"
)

// TestDownloadRefusesUnsafePartialFile: R8: whatever is planted at the
// partial-download path, a download never writes through it, never removes
// it, and fails with ErrUnsafePartial.
func TestDownloadRefusesUnsafePartialFile(t *testing.T) {
	ctx := testContext(t)
	_, c, _ := startWithFile(t, ctx, servicetest.Config{}, "v.bin", 2*mib)
	precious := []byte("the victim's bytes, which no download may touch")
	for _, tc := range []struct {
		name  string
		plant func(t *testing.T, part, victim string)
		root  bool // needs to change a file's owner
	}{
		{"symlink to a file beside it", func(t *testing.T, part, victim string) {
			symlink(t, filepath.Base(victim), part)
		}, false},
		{"symlink to a file elsewhere", func(t *testing.T, part, _ string) {
			outside := filepath.Join(t.TempDir(), "outside")
			if err := os.WriteFile(outside, precious, 0o600); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { wantFile(t, outside, precious) })
			symlink(t, outside, part)
		}, false},
		{"dangling symlink", func(t *testing.T, part, _ string) {
			symlink(t, filepath.Join(t.TempDir(), "nothing-yet"), part)
		}, false},
		{"hard link to a file", func(t *testing.T, part, victim string) {
			if err := os.Link(victim, part); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"world-writable file", func(t *testing.T, part, _ string) {
			if err := os.WriteFile(part, precious[:5], 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(part, 0o666); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"directory", func(t *testing.T, part, _ string) {
			if err := os.Mkdir(part, 0o700); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"fifo", func(t *testing.T, part, _ string) {
			if err := syscall.Mkfifo(part, 0o600); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"file of another user", func(t *testing.T, part, _ string) {
			if err := os.WriteFile(part, precious[:5], 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(part, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.root && os.Geteuid() != 0 {
				t.Skip("changing a file's owner needs root")
			}
			dir := t.TempDir()
			dst, victim := filepath.Join(dir, "v.bin"), filepath.Join(dir, "victim")
			if err := os.WriteFile(victim, precious, 0o600); err != nil {
				t.Fatal(err)
			}
			part := PartialPath(dst)
			tc.plant(t, part, victim)
			before, err := os.Lstat(part)
			if err != nil {
				t.Fatal(err)
			}
			for _, opts := range [][]TransferOption{nil, {NoResume()}} {
				_, err := c.DownloadFile(ctx, "v.bin", dst, nil, opts...)
				if !errors.Is(err, ErrUnsafePartial) {
					t.Fatalf("DownloadFile (%d options) through a planted %s: %v, want ErrUnsafePartial", len(opts), tc.name, err)
				}
			}
			wantFile(t, victim, precious)
			if _, err := os.Lstat(dst); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a refused download created %s: %v", dst, err)
			}
			after, err := os.Lstat(part)
			if err != nil || !os.SameFile(before, after) || after.Mode() != before.Mode() {
				t.Errorf("the planted %s was changed or removed: %v", tc.name, err)
			}
		})
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// TestDownloadResumesFromReadablePartialFile: R8: a partial file that is
// the user's own regular file resumes as before, also when others may read
// it.
func TestDownloadResumesFromReadablePartialFile(t *testing.T) {
	ctx := testContext(t)
	const size, have = 2 * mib, mib
	_, c, data := startWithFile(t, ctx, servicetest.Config{}, "r.bin", size)
	dst := filepath.Join(t.TempDir(), "r.bin")
	if err := os.WriteFile(PartialPath(dst), data[:have], 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(PartialPath(dst), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := c.DownloadFile(ctx, "r.bin", dst, nil)
	if err != nil || res.Received != size-have {
		t.Fatalf("DownloadFile from a 0644 partial file: %v, %d bytes received; want the %d missing", err, res.Received, size-have)
	}
	wantFile(t, dst, data)
}

// TestConcurrentDownloadsToOnePathDoNotRace: R8: while one download to a
// path runs, a second one to the same path fails at once with
// ErrDownloadInProgress and touches nothing; the first one completes.
func TestConcurrentDownloadsToOnePathDoNotRace(t *testing.T) {
	ctx := testContext(t)
	const size = 3 * mib
	entered, release := make(chan struct{}), make(chan struct{})
	var first atomic.Bool
	holdFirst := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, next grpc.StreamHandler) error {
		if info.FullMethod == pb.Greeter_DownloadFile_FullMethodName && first.CompareAndSwap(false, true) {
			close(entered)
			select {
			case <-release:
			case <-ss.Context().Done():
				return ss.Context().Err()
			}
		}
		return next(srv, ss)
	}
	_, c, data := startWithFile(t, ctx, servicetest.Config{Stream: []grpc.StreamServerInterceptor{holdFirst}}, "c.bin", size)
	dst := filepath.Join(t.TempDir(), "c.bin")

	done := make(chan error, 1)
	go func() {
		_, err := c.DownloadFile(ctx, "c.bin", dst, nil)
		done <- err
	}()
	select {
	case <-entered:
	case err := <-done:
		t.Fatalf("the first download ended before the server saw it: %v", err)
	}
	// The first download holds its partial file while its stream waits.
	res, err := c.DownloadFile(ctx, "c.bin", dst, nil)
	if !errors.Is(err, ErrDownloadInProgress) || res.Attempts != 0 {
		t.Errorf("a second download to the same path: %v after %d attempts, want ErrDownloadInProgress at once", err, res.Attempts)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("the first download: %v", err)
	}
	wantFile(t, dst, data)
	if _, err := os.Lstat(PartialPath(dst)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the partial file is still there: %v", err)
	}
}

// TestDownloadFailsWhenPartialFileIsLocked: R8: a partial file locked by
// another process (here the test) is left alone.
func TestDownloadFailsWhenPartialFileIsLocked(t *testing.T) {
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	srv := servicetest.Start(t, servicetest.Config{})
	c, _ := dial(t, srv, Options{}, nil)
	dst := filepath.Join(t.TempDir(), "l.bin")
	f, err := os.OpenFile(PartialPath(dst), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DownloadFile(ctx, "l.bin", dst, nil); !errors.Is(err, ErrDownloadInProgress) {
		t.Fatalf("DownloadFile onto a locked partial file: %v, want ErrDownloadInProgress", err)
	}
	if _, err := os.Lstat(PartialPath(dst)); err != nil {
		t.Errorf("the locked partial file was removed: %v", err)
	}
}
