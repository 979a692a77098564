package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestHardeningCLIPartialFileSymlink: R8: a symbolic link planted at the
// partial-download path is never followed: greeter download fails with
// exit 1 naming the link, the file it points to keeps its bytes, the link
// stays, and no target appears.
func TestHardeningCLIPartialFileSymlink(t *testing.T) {
	srv, state := devServer(t)
	work := t.TempDir()
	src := filepath.Join(work, "src.bin")
	writeRandom(t, src, 1<<20+17)
	cli(t, srv, state, 0, "upload", src, "--as", "r8.bin")

	dst := filepath.Join(work, "copy.bin")
	part := filepath.Join(work, ".copy.bin.greeter-part")
	precious := []byte("bytes the download must not overwrite\n")
	for _, tc := range []struct {
		name, victim, link string
	}{
		// A link beside it stays inside the target's directory, where
		// os.Root alone would follow it.
		{"beside", filepath.Join(work, "victim"), "victim"},
		{"elsewhere", filepath.Join(t.TempDir(), "victim"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(tc.victim, precious, 0o600); err != nil {
				t.Fatal(err)
			}
			link := tc.link
			if link == "" {
				link = tc.victim
			}
			if err := os.Symlink(link, part); err != nil {
				t.Fatal(err)
			}
			defer os.Remove(part)
			for _, args := range [][]string{{"download", "r8.bin", "-o", dst}, {"download", "--no-resume", "r8.bin", "-o", dst}} {
				res := cli(t, srv, state, 1, args...)
				t.Logf("greeter %s: %s", strings.Join(args, " "), res.Stderr)
				if !strings.Contains(res.Stderr, part) || !strings.Contains(res.Stderr, "symbolic link") {
					t.Errorf("greeter %s: stderr %q, want it to name %s as a symbolic link", strings.Join(args, " "), res.Stderr, part)
				}
			}
			if got, err := os.ReadFile(tc.victim); err != nil || !bytes.Equal(got, precious) {
				t.Fatalf("the link's target now holds %d bytes (%v), want its %d own", len(got), err, len(precious))
			}
			if got, err := os.Readlink(part); err != nil || got != link {
				t.Errorf("the planted link now reads %q (%v), want it left pointing to %q", got, err, link)
			}
			if _, err := os.Lstat(dst); !os.IsNotExist(err) {
				t.Errorf("a refused download created %s: %v", dst, err)
			}
		})
	}
}

// TestHardeningCLIPartialFileLocked: R8: while another process holds the
// lock on the partial file (as a running download does), greeter download
// to the same path fails at once with exit 1 and says so, and leaves the
// partial file alone.
func TestHardeningCLIPartialFileLocked(t *testing.T) {
	srv, state := devServer(t)
	work := t.TempDir()
	src := filepath.Join(work, "src.bin")
	data := writeRandom(t, src, 256<<10)
	cli(t, srv, state, 0, "upload", src, "--as", "busy.bin")

	dst := filepath.Join(work, "busy.bin")
	part := filepath.Join(work, ".busy.bin.greeter-part")
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(data[:1000]); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	res := cli(t, srv, state, 1, "download", "busy.bin", "-o", dst)
	t.Logf("greeter download: %s", res.Stderr)
	if !strings.Contains(res.Stderr, "another download") || !strings.Contains(res.Stderr, dst) {
		t.Errorf("stderr %q, want it to say another download to %s is in progress", res.Stderr, dst)
	}
	if st, err := os.Stat(part); err != nil || st.Size() != 1000 {
		t.Errorf("the locked partial file: %v, want it left with its 1000 bytes", err)
	}
	if _, err := os.Lstat(dst); !os.IsNotExist(err) {
		t.Errorf("a refused download created %s: %v", dst, err)
	}

	// Once the holder is gone, the same command resumes from its bytes.
	f.Close()
	cli(t, srv, state, 0, "download", "busy.bin", "-o", dst)
	if got, err := os.ReadFile(dst); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("downloaded %d bytes (%v), want the %d uploaded", len(got), err, len(data))
	}
}
