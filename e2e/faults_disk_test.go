package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// faultMountTmpfs mounts a tmpfs of size bytes on dir and unmounts it when
// the test ends. Call it before starting a server on it, so that the
// server has stopped by the time it is unmounted. It reports false when
// this process may not mount.
func faultMountTmpfs(t *testing.T, dir string, size int64) bool {
	t.Helper()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		t.Logf("cannot mount a tmpfs on %s: %v", dir, err)
		return false
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmounting %s: %v", dir, err)
		}
	})
	return true
}

// faultRemount remounts the tmpfs on dir read-only or read-write. A
// remount to read-only fails with EBUSY while a file is open for writing
// (a health probe, say), so it is retried a bounded number of times.
func faultRemount(t *testing.T, dir string, readOnly bool) {
	t.Helper()
	flags := uintptr(unix.MS_REMOUNT)
	if readOnly {
		flags |= unix.MS_RDONLY
	}
	var err error
	faultPoll(10*time.Second, func() bool {
		err = unix.Mount("", dir, "", flags, "")
		return !errors.Is(err, unix.EBUSY)
	})
	if err != nil {
		t.Fatalf("remounting %s (read-only %v): %v", dir, readOnly, err)
	}
}

// TestFaultHealthFollowsStorage makes the data dir read-only and then
// removes it under a running greeterd: grpc.health.v1 must turn
// NOT_SERVING for "" and "Greeter" each time, uploads must fail with
// Unavailable (exit 6; the store answered Internal before issue 13), and once
// the directory is writable (or back) the server must report SERVING and
// store uploads in it again, logging each change once (RELIABILITY.md F9).
func TestFaultHealthFollowsStorage(t *testing.T) {
	faultNoLeaks(t)
	mnt := t.TempDir()
	mounted := faultMountTmpfs(t, mnt, 64<<20)
	r := newFaultRig(t, filepath.Join(mnt, "data"), "--health-interval", "100ms")
	conn := r.conn()
	waitHealth(t, conn, healthpb.HealthCheckResponse_SERVING)
	src, _ := r.file("probe.bin", 64<<10)
	episodes := 0

	// Read-only. As root, chmod does not stop writes; a read-only remount
	// does. Without mount permission, root cannot make the directory
	// read-only at all, so only the removal below is tested.
	var makeReadOnly, makeWritable func()
	switch {
	case mounted:
		makeReadOnly = func() { faultRemount(t, mnt, true) }
		makeWritable = func() { faultRemount(t, mnt, false) }
	case os.Geteuid() != 0:
		tmp := filepath.Join(r.data, "tmp")
		makeReadOnly = func() { os.Chmod(tmp, 0o500) }
		makeWritable = func() { os.Chmod(tmp, 0o750) }
	default:
		t.Log("root without mount permission: the read-only case is not tested here (diskstore's TestCheckUnwritable covers a broken tmp/)")
	}
	if makeReadOnly != nil {
		makeReadOnly()
		episodes++
		waitHealth(t, conn, healthpb.HealthCheckResponse_NOT_SERVING)
		if res := bins.CLI(t, nil, r.cliArgs([]string{"upload", "--no-resume", "--retries", "0", src, "--as", "ro.bin"})...); res.Code != 6 {
			t.Errorf("an upload to a read-only data dir: exit %d, want 6 (Unavailable)\nstdout: %s\nstderr: %s", res.Code, res.Stdout, res.Stderr)
		}
		makeWritable()
		waitHealth(t, conn, healthpb.HealthCheckResponse_SERVING)
		r.cli(0, "upload", "--no-resume", src, "--as", "after-ro.bin")
	}

	// Removed, then created again: the store reopens the new directory.
	faultWaitFor(t, "the data dir to be removed", func() bool { return os.RemoveAll(r.data) == nil })
	episodes++
	waitHealth(t, conn, healthpb.HealthCheckResponse_NOT_SERVING)
	if res := bins.CLI(t, nil, r.cliArgs([]string{"upload", "--no-resume", "--retries", "0", src, "--as", "gone.bin"})...); res.Code != 6 {
		t.Errorf("an upload with the data dir removed: exit %d, want 6 (Unavailable)\nstdout: %s\nstderr: %s", res.Code, res.Stdout, res.Stderr)
	}
	if err := os.Mkdir(r.data, 0o750); err != nil {
		t.Fatal(err)
	}
	waitHealth(t, conn, healthpb.HealthCheckResponse_SERVING)
	r.cli(0, "upload", "--no-resume", src, "--as", "back.bin")
	if got := r.ls(); len(got) != 1 || got["back.bin"] == "" {
		t.Errorf("files after the data dir came back: %v, want only back.bin", got)
	}
	found := false
	filepath.WalkDir(filepath.Join(r.data, "objects"), func(p string, d fs.DirEntry, err error) error {
		found = found || (err == nil && d.Name() == "back.bin")
		return nil
	})
	if !found {
		t.Errorf("back.bin is not in the recreated %s", r.data)
	}

	// Each change of status is logged once, not once per probe.
	faultWaitFor(t, "the recovery log records", func() bool { return r.logCount("storage healthy again: health reports SERVING") >= episodes })
	if got := r.logCount("storage unhealthy: health reports NOT_SERVING"); got != episodes {
		t.Errorf("%d unhealthy records for %d episodes:\n%s", got, episodes, r.srv.Log.String())
	}
	if got := r.logCount("storage healthy again: health reports SERVING"); got != episodes {
		t.Errorf("%d recovery records for %d episodes", got, episodes)
	}
}

// TestFaultDiskFull runs greeterd on an 8 MiB tmpfs (RELIABILITY.md F8):
// a 16 MiB upload ends with ResourceExhausted (exit code 8), the previous
// version of that name is intact, nothing is left in tmp/, and the space
// is free again for the next upload, in plain and resumable mode. Without
// permission to mount, ENOSPC is covered only by diskstore's TestNoSpace
// (an injected writer error); this test then checks nothing.
func TestFaultDiskFull(t *testing.T) {
	faultNoLeaks(t)
	mnt := t.TempDir()
	if !faultMountTmpfs(t, mnt, 8<<20) {
		t.Log("not tested end to end: see diskstore.TestNoSpace for ENOSPC by injection")
		return
	}
	r := newFaultRig(t, mnt)
	smallPath, small := r.file("small.bin", 4<<10)
	r.cli(0, "upload", "--no-resume", smallPath, "--as", "f.bin")
	bigPath, _ := r.file("big.bin", 16<<20)

	for _, c := range []struct {
		name string
		mode []string
	}{
		{"plain", []string{"--no-resume"}},
		{"resumable", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"upload", "--retries", "0", bigPath, "--as", "f.bin"}, c.mode...)
			res := bins.CLI(t, nil, r.cliArgs(args)...)
			if res.Code != 8 || !strings.Contains(res.Stderr, "ResourceExhausted") {
				t.Errorf("upload to a full disk: exit %d, stderr %q; want 8 and ResourceExhausted", res.Code, res.Stderr)
			}
			if got := r.ls(); len(got) != 1 || got["f.bin"] != faultSum(small) {
				t.Errorf("after the failed upload: ls %v, want f.bin with the previous sha256 %s", got, faultSum(small))
			}
			if temps := r.temps(); len(temps) != 0 {
				t.Errorf("the failed upload left the temporaries %v", temps)
			}
			// The space is free again.
			p, _ := r.file("fits-"+c.name+".bin", 6<<20)
			if res := bins.CLI(t, nil, r.cliArgs([]string{"upload", "--no-resume", "--retries", "0", p})...); res.Code != 0 {
				t.Errorf("after the failed upload, a 6 MiB upload failed (exit %d, %s): the failed upload still holds the space; part files of resumable uploads: %v", res.Code, strings.TrimSpace(res.Stderr), r.parts())
				return
			}
			r.cli(0, "rm", filepath.Base(p))
		})
	}
	dst := filepath.Join(r.work, "f-copy.bin")
	r.cli(0, "download", "f.bin", "-o", dst)
	if b, err := os.ReadFile(dst); err != nil || !bytes.Equal(b, small) {
		t.Errorf("f.bin after the disk filled up differs from the previous version (%v)", err)
	}
}
