package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFaultKillServerDuringUploads SIGKILLs greeterd while plain and
// resumable uploads run (RELIABILITY.md F10, U7). After a restart on the
// same dirs: only files complete before the kill are visible, each with
// its digest; the janitor removed every temporary; the server serves; and
// the resumable uploads continue from what was stored.
func TestFaultKillServerDuringUploads(t *testing.T) {
	faultNoLeaks(t)
	// Throttled, so that the uploads are surely in flight when killed.
	r := newFaultRig(t, "", "--bandwidth-per-identity", "8MiB")
	want := map[string]string{}
	for i := range 3 {
		path, data := r.file(fmt.Sprintf("done-%d.bin", i), 256<<10+i)
		r.cli(0, "upload", path)
		want[filepath.Base(path)] = faultSum(data)
	}

	const size = 16 << 20
	type inflight struct {
		name, path, sum string
		resumable       bool
		proc            *faultProc
	}
	var ups []inflight
	for i := range 4 {
		path, data := r.file(fmt.Sprintf("inflight-%d.bin", i), size)
		up := inflight{name: filepath.Base(path), path: path, sum: faultSum(data), resumable: i%2 == 1}
		args := []string{"upload", "--retries", "0", path}
		if !up.resumable {
			args = append(args, "--no-resume")
		}
		up.proc = r.startCLI(args...)
		ups = append(ups, up)
	}
	// Kill once every upload has bytes on the server's disk.
	faultWaitFor(t, "4 uploads to be under way", func() bool {
		return faultCountAtLeast(r.temps(), 1) == 2 && faultCountAtLeast(r.parts(), 1) == 2
	})
	r.srv.Kill()
	for _, up := range ups {
		up.proc.kill()
	}
	if n := len(r.temps()); n != 2 {
		t.Errorf("after SIGKILL tmp/ holds %d temporaries, want the 2 of the plain uploads", n)
	}
	// The janitor keeps temporaries younger than diskstore.MinTemporaryAge
	// (1 h; another process might still be writing them, R7): age these as a
	// restart an hour or more later would find them.
	old := time.Now().Add(-2 * time.Hour) // twice diskstore.MinTemporaryAge
	for name := range r.temps() {
		if err := os.Chtimes(filepath.Join(r.data, "tmp", name), old, old); err != nil {
			t.Fatal(err)
		}
	}

	r.start()
	if n := len(r.temps()); n != 0 {
		t.Errorf("after restart tmp/ still holds %d temporaries: %v", n, r.temps())
	}
	if !strings.Contains(r.srv.Log.String(), "janitor removed stale temporaries") {
		t.Errorf("the janitor did not report removing the temporaries:\n%s", r.srv.Log.String())
	}
	got := r.ls()
	for name, sum := range got {
		if want[name] != sum {
			t.Errorf("after restart %s is visible with sha256 %q; want only the files completed before the kill: %v", name, sum, want)
		}
	}
	for name := range want {
		if _, ok := got[name]; !ok {
			t.Errorf("%s, completed before the kill, is missing after restart", name)
		}
	}
	dst := filepath.Join(r.work, "copy.bin")
	r.cli(0, "download", "done-1.bin", "-o", dst)
	if b, err := os.ReadFile(dst); err != nil || faultSum(b) != want["done-1.bin"] {
		t.Errorf("done-1.bin downloaded after restart does not match (%v)", err)
	}
	r.cli(0, "hello", "--name", "after-kill")

	// The resumable uploads kept their bytes and finish now.
	for _, up := range ups {
		if !up.resumable {
			continue
		}
		r.cli(0, "upload", "--retries", "0", up.path)
		res := r.cli(0, "--json", "stat", up.name)
		if !strings.Contains(res.Stdout, up.sum) {
			t.Errorf("resumed %s: stat %s, want sha256 %s", up.name, res.Stdout, up.sum)
		}
	}
	if n := len(r.parts()); n != 0 {
		t.Errorf("%d part files remain after the resumed uploads completed", n)
	}
}
