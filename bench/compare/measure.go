package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// sample is one timed transfer.
type sample struct {
	// Round counts from 1; round 0 is the RSS transfer (-rss-size), which
	// no throughput figure includes.
	Round      int
	Op         string // "upload" or "download"
	Target     string
	Bytes      int64
	Wall       time.Duration
	ClientCPU  time.Duration // user + system of the client and its children
	ClientRSS  int64         // the client's peak RSS
	ServerCPU  time.Duration // user + system of the server during the transfer
	ServerPeak int64         // the server's VmHWM during the transfer; 0 if unknown
	// Mode is modePinned or modeShared.
	Mode string
	// MachineCPU is the busy time of every CPU of the machine across the
	// transfer (/proc/stat), whoever spent it.
	MachineCPU time.Duration
}

// MBps is the throughput in decimal megabytes per second.
func (s sample) MBps() float64 { return float64(s.Bytes) / 1e6 / s.Wall.Seconds() }

// measureModes runs the rounds of every mode in turn, each with servers of
// its own, and returns every sample. start starts the targets of one mode.
func (h *harness) measureModes(ctx context.Context, start func(*harness) ([]target, error)) ([]sample, []string, error) {
	var (
		samples []sample
		tnames  []string
	)
	for _, mode := range h.opts.modes {
		m, err := h.forMode(mode)
		if err != nil {
			return samples, tnames, err
		}
		h.logf("mode %s: starting the servers", mode)
		targets, err := start(m)
		if err == nil {
			tnames = names(targets)
			var got []sample
			got, err = m.measureRounds(ctx, targets)
			samples = append(samples, got...)
			if err == nil && mode == h.opts.modes[0] && h.opts.rssSize > 0 {
				got, err = m.measureRSS(ctx, targets)
				samples = append(samples, got...)
			}
		}
		m.close()
		if err != nil {
			return samples, tnames, fmt.Errorf("mode %s: %w", mode, err)
		}
	}
	return samples, tnames, nil
}

// measureRounds runs the interleaved rounds and returns every sample.
func (h *harness) measureRounds(ctx context.Context, targets []target) ([]sample, error) {
	var samples []sample
	for r := 0; r < h.opts.rounds; r++ {
		order := append(append([]target(nil), targets[r%len(targets):]...), targets[:r%len(targets)]...)
		object := fmt.Sprintf("bench-%d.bin", r)
		for _, op := range ops {
			for _, t := range order {
				s, err := h.transfer(ctx, t, op, r+1, h.source, h.sourceSum, object, h.opts.size)
				if err != nil {
					return samples, err
				}
				samples = append(samples, s)
			}
		}
		for _, t := range targets {
			if err := t.Remove(ctx, object); err != nil {
				return samples, fmt.Errorf("removing %s from %s: %w", object, t.Name(), err)
			}
		}
	}
	return samples, nil
}

// measureRSS uploads and downloads the larger file of -rss-size once with
// the greeter target, for greeterd's peak RSS (round 0).
func (h *harness) measureRSS(ctx context.Context, targets []target) ([]sample, error) {
	var g target
	for _, t := range targets {
		if t.Name() == targetGreeter {
			g = t
		}
	}
	if g == nil {
		return nil, nil
	}
	src, sum, err := h.rssSource()
	if err != nil {
		return nil, err
	}
	defer os.Remove(src)
	var samples []sample
	for _, op := range ops {
		s, err := h.transfer(ctx, g, op, 0, src, sum, "bench-rss.bin", h.opts.rssSize)
		if err != nil {
			return samples, err
		}
		samples = append(samples, s)
	}
	return samples, g.Remove(ctx, "bench-rss.bin")
}

// transfer times one upload or download of object by t and, after a
// download, checks the file against the source's SHA-256 (not timed).
func (h *harness) transfer(ctx context.Context, t target, op string, round int, src, srcSum, object string, size int64) (sample, error) {
	dst := filepath.Join(h.files, "download-"+strconv.Itoa(round)+".bin")
	argv := t.Upload(src, object)
	if op == "download" {
		argv = t.Download(object, dst)
	}
	if err := prepare(op, src); err != nil {
		return sample{}, err
	}
	if op == "download" {
		if err := warmPages(dst, size); err != nil {
			return sample{}, err
		}
	}
	s, err := h.measure(ctx, t, op, h.clientArgv(argv...))
	if err != nil {
		return s, fmt.Errorf("round %d, %s %s: %w", round, op, t.Name(), err)
	}
	s.Round, s.Op, s.Target, s.Bytes, s.Mode = round, op, t.Name(), size, h.mode
	peak := ""
	if s.ServerPeak > 0 {
		peak = fmt.Sprintf(", server peak RSS %s", mib(s.ServerPeak))
	}
	h.logf("%s round %d/%d %-8s %-16s %6.2f s %7.1f MB/s (CPU client %.2f s, server %.2f s, machine %.2f s%s)",
		h.mode, round, h.opts.rounds, op, t.Name(), s.Wall.Seconds(), s.MBps(), s.ClientCPU.Seconds(), s.ServerCPU.Seconds(), s.MachineCPU.Seconds(), peak)
	if op != "download" {
		return s, nil
	}
	// Every tool's result must be the source's bytes.
	sum, err := fileSHA256(dst)
	if err != nil {
		return s, err
	}
	if sum != srcSum {
		return s, fmt.Errorf("round %d: %s downloaded a file with SHA-256 %s, want %s", round, t.Name(), sum, srcSum)
	}
	return s, os.Remove(dst)
}

// measure runs one client command and reads the server's CPU time and peak
// RSS, and the machine's busy time, around it.
func (h *harness) measure(ctx context.Context, t target, op string, argv []string) (sample, error) {
	srv := t.Server()
	var env []string
	if _, greeter := t.(*greeterTarget); greeter && h.prof != nil {
		var err error
		if env, err = h.prof.begin(srv, t.Name(), op); err != nil {
			return sample{}, err
		}
		defer h.prof.end(srv)
	}
	// sshd's sessions are separate processes: its listener's RSS says nothing.
	_, isSSH := t.(*scpTarget)
	peakOK := !isSSH && srv.resetPeak() == nil
	cpu0 := srv.cpu()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = cleanEnv(env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	busy0, err := machineBusy()
	if err != nil {
		return sample{}, err
	}
	start := time.Now()
	err = cmd.Run()
	wall := time.Since(start)
	busy1, berr := machineBusy()
	if err != nil {
		return sample{}, fmt.Errorf("%s: %w\n%s", strings.Join(argv, " "), err, lastLines(out.String(), 10))
	}
	if berr != nil {
		return sample{}, berr
	}
	// sshd forks a session per connection: wait until it is reaped so its
	// CPU time reaches the listener's child times.
	srv.settle(3 * time.Second)
	s := sample{Wall: wall, ServerCPU: srv.cpu() - cpu0, MachineCPU: busy1 - busy0}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		s.ClientCPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		s.ClientRSS = ru.Maxrss << 10
	}
	if peakOK {
		s.ServerPeak, _ = srv.peakRSS()
	}
	return s, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// warmPages writes size bytes to path and removes it again, so that the
// memory a download's file takes is memory the kernel has just used. On
// this VM the first download after the uploads of a round otherwise paid
// 2–3 s more CPU per GiB, in its client or curl alike, for touching fresh
// pages (whichever tool went first in the round).
func warmPages(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	for n := int64(0); n < size; n += int64(len(buf)) {
		if _, err := f.Write(buf[:min(int64(len(buf)), size-n)]); err != nil {
			f.Close()
			os.Remove(path)
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Remove(path)
}
