package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Modes: where the servers and the clients run.
const (
	// modePinned gives each side one core, as it would have on its own
	// machine: every server on CPU 0, every client on CPU 1 (taskset).
	modePinned = "pinned"
	// modeShared lets both sides run on every core.
	modeShared = "shared"
)

// The cores of the pinned mode.
const (
	serverCPU = "0"
	clientCPU = "1"
)

// forMode returns a harness for the servers of one mode: its own work and
// server directories under h's, no servers yet, and closers of its own, so
// that closing it stops that mode's servers and nothing else. Servers are
// started afresh per mode because Go servers (greeterd, MinIO) size
// GOMAXPROCS from their CPU affinity at start-up.
func (h *harness) forMode(mode string) (*harness, error) {
	m := *h
	m.mode, m.closers, m.minioT, m.sshT = mode, nil, nil, nil
	var err error
	if m.work, err = mkdir(h.work, mode); err != nil {
		return nil, err
	}
	if m.serverDir, err = mkdir(h.serverDir, mode); err != nil {
		return nil, err
	}
	return &m, nil
}

// serverArgv returns argv run on the server's core in the pinned mode.
// Processes a server starts (sshd's sessions) inherit the affinity.
func (h *harness) serverArgv(argv ...string) []string { return pinned(h.mode, serverCPU, argv) }

// clientArgv returns argv run on the client's core in the pinned mode.
func (h *harness) clientArgv(argv ...string) []string { return pinned(h.mode, clientCPU, argv) }

func pinned(mode, cpu string, argv []string) []string {
	if mode != modePinned {
		return argv
	}
	return append([]string{"taskset", "-c", cpu}, argv...)
}

// checkModes fails when a mode cannot run on this machine.
func checkModes(modes []string) error {
	for _, m := range modes {
		if m != modePinned {
			continue
		}
		if runtime.NumCPU() < 2 {
			return fmt.Errorf("-modes pinned needs at least 2 CPUs, this machine has %d", runtime.NumCPU())
		}
		if !onPath("taskset") {
			return fmt.Errorf("-modes pinned needs taskset (Debian's util-linux)")
		}
	}
	return nil
}

// machineBusy returns the time every CPU of the machine has spent busy
// since boot, from the first line of /proc/stat: user + nice + system +
// irq + softirq + steal (idle and iowait are not busy; guest time is
// already in user). Read around a transfer it counts both sides, kernel
// writeback and the network stack for every tool alike, and anything else
// the machine runs meanwhile.
func machineBusy() (time.Duration, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	return parseBusy(string(data))
}

// parseBusy reads the busy time from the text of /proc/stat.
func parseBusy(stat string) (time.Duration, error) {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	// cpu user nice system idle iowait irq softirq steal ...
	if len(f) < 9 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		n, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %v", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// prepare flushes dirty pages (sync) and, before an upload, reads the
// source once, so that every transfer starts from a warm source and no
// writeback left over from the transfer before. Not timed.
func prepare(op, source string) error {
	if out, err := exec.Command("sync").CombinedOutput(); err != nil {
		return fmt.Errorf("sync: %w: %s", err, out)
	}
	if op != "upload" {
		return nil
	}
	f, err := os.Open(source)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(io.Discard, f)
	return err
}

// rssSource writes the source of the RSS transfer next to the main one.
func (h *harness) rssSource() (path, sum string, err error) {
	path = filepath.Join(h.files, "source-rss.bin")
	h.logf("writing a %s source file for the RSS transfer", sizeName(h.opts.rssSize))
	sum, err = writeSource(path, h.opts.rssSize)
	return path, sum, err
}
