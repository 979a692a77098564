// Package sysdeps finds the system programs some tests run (redis-server,
// prometheus, promtool), installing their Debian package first when they
// are missing and the test runs as root on a Debian-like machine, so that
// `go test ./...` on a fresh machine needs nothing set up by hand.
//
// Elsewhere a missing program fails the test with the package to install;
// it never skips.
package sysdeps

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
)

// mu serialises installs within one test binary; a file lock serialises
// them across the test binaries `go test ./...` runs in parallel.
var mu sync.Mutex

// LookPath returns the path of command, installing the Debian package pkg
// when command is missing and apt-get can run. It fails tb, naming pkg,
// when command cannot be found or installed.
func LookPath(tb testing.TB, command, pkg string) string {
	tb.Helper()
	return ensure(tb, command, pkg, func() (string, error) { return exec.LookPath(command) })
}

// File returns path, installing the Debian package pkg when the file is
// missing and apt-get can run (for packages that ship no command, such as
// bash-completion). It fails tb, naming pkg, when path cannot be had.
func File(tb testing.TB, path, pkg string) string {
	tb.Helper()
	return ensure(tb, path, pkg, func() (string, error) {
		_, err := os.Stat(path)
		return path, err
	})
}

// ensure returns what find finds, installing pkg first when it finds
// nothing; what names the missing thing in failures.
func ensure(tb testing.TB, what, pkg string, find func() (string, error)) string {
	tb.Helper()
	if path, err := find(); err == nil {
		return path
	}
	mu.Lock()
	defer mu.Unlock()
	if path, err := find(); err == nil {
		return path
	}
	apt, err := exec.LookPath("apt-get")
	if err != nil || os.Geteuid() != 0 {
		tb.Fatalf("%s is not installed: install Debian's %s package (apt-get install -y %s; .ci/run does)", what, pkg, pkg)
	}
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "greeter-apt.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		tb.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		tb.Fatal(err)
	}
	if path, err := find(); err == nil {
		return path // another test binary installed it meanwhile
	}
	tb.Logf("%s is missing: installing Debian's %s", what, pkg)
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	for _, args := range [][]string{{"update", "-qq"}, {"install", "-y", "-qq", "--no-install-recommends", pkg}} {
		cmd := exec.Command(apt, args...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			tb.Fatalf("apt-get %s: %v\n%s", args[0], err, out)
		}
	}
	path, err := find()
	if err != nil {
		tb.Fatalf("%s is still missing after installing %s: %v", what, pkg, err)
	}
	return path
}
