package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	// startTimeout bounds how long -server-cmd may take to accept
	// connections.
	startTimeout = time.Minute
	// stopTimeout is how long the server may take to exit after SIGTERM
	// before it is killed.
	stopTimeout = 30 * time.Second
	// tailSize bounds the server output kept in memory.
	tailSize = 16 << 10
	// rssInterval is how often the server's RSS is sampled.
	rssInterval = 100 * time.Millisecond
)

// server is a greeterd started with -server-cmd.
type server struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // of Wait, once exited is closed
	out    io.Writer
	tail   *tail
	log    *os.File
}

// startServer starts argv and waits until addr accepts TCP connections. It
// refuses to start when addr already accepts them, so the load cannot go to
// some other server by mistake.
func startServer(ctx context.Context, argv []string, logPath, addr string) (*server, error) {
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("-server-cmd: something already listens on %s", addr)
	}
	s := &server{cmd: exec.Command(argv[0], argv[1:]...), exited: make(chan struct{}), tail: &tail{}}
	s.out = s.tail
	if logPath != "" {
		f, err := os.Create(logPath)
		if err != nil {
			return nil, err
		}
		s.log = f
		s.out = io.MultiWriter(f, s.tail)
	}
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	s.cmd.SysProcAttr = serverSysProcAttr()
	if err := s.cmd.Start(); err != nil {
		s.closeLog()
		return nil, err
	}
	go func() {
		s.err = s.cmd.Wait()
		close(s.exited)
	}()
	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return s, nil
		}
		select {
		case <-s.exited:
			s.closeLog()
			return nil, fmt.Errorf("-server-cmd exited before listening on %s: %v\n%s", addr, s.err, s.tail)
		case <-deadline.C:
			s.stop()
			return nil, fmt.Errorf("-server-cmd did not listen on %s within %v\n%s", addr, startTimeout, s.tail)
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// stop sends SIGTERM, waits up to stopTimeout for the server to exit, then
// kills it. It returns the server's exit error.
func (s *server) stop() error {
	defer s.closeLog()
	select {
	case <-s.exited:
		return s.err
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(stopTimeout)
	defer t.Stop()
	select {
	case <-s.exited:
		return s.err
	case <-t.C:
		s.cmd.Process.Kill()
		<-s.exited
		return fmt.Errorf("greeterd did not exit within %v of SIGTERM; killed", stopTimeout)
	}
}

func (s *server) closeLog() {
	if s.log != nil {
		s.log.Close()
		s.log = nil
	}
}

// tail keeps the last tailSize bytes written to it.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - tailSize; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// rssReport is the server's memory as /proc reported it during the run.
type rssReport struct {
	PID int `json:"pid"`
	// StartRSSBytes is VmRSS when the load started.
	StartRSSBytes int64 `json:"start_rss_bytes"`
	// MaxRSSBytes is the largest VmRSS sampled (every 100 ms).
	MaxRSSBytes int64 `json:"max_sampled_rss_bytes"`
	// PeakRSSBytes is VmHWM, the kernel's record of the largest RSS over
	// the whole life of the process (so including anything before the run).
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
	Samples      int   `json:"samples"`
}

// rssSampler samples /proc/PID/status until stopped.
type rssSampler struct {
	done chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	rep  rssReport
}

// startRSSSampler reads /proc/pid/status once, failing if it cannot, and
// then every rssInterval.
func startRSSSampler(pid int) (*rssSampler, error) {
	s := &rssSampler{done: make(chan struct{}), rep: rssReport{PID: pid}}
	rss, hwm, err := readMemory(pid)
	if err != nil {
		return nil, fmt.Errorf("-pid %d: %w", pid, err)
	}
	s.rep.StartRSSBytes = rss
	s.record(rss, hwm)
	s.wg.Go(func() {
		t := time.NewTicker(rssInterval)
		defer t.Stop()
		for {
			select {
			case <-s.done:
				return
			case <-t.C:
				if rss, hwm, err := readMemory(pid); err == nil {
					s.record(rss, hwm)
				}
			}
		}
	})
	return s, nil
}

func (s *rssSampler) record(rss, hwm int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rep.MaxRSSBytes = max(s.rep.MaxRSSBytes, rss)
	s.rep.PeakRSSBytes = max(s.rep.PeakRSSBytes, hwm)
	s.rep.Samples++
}

// stop takes a last sample and returns the report.
func (s *rssSampler) stop() rssReport {
	close(s.done)
	s.wg.Wait()
	if rss, hwm, err := readMemory(s.rep.PID); err == nil {
		s.record(rss, hwm)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rep
}

// readMemory returns VmRSS and VmHWM of pid in bytes.
func readMemory(pid int) (rss, hwm int64, err error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	var found int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(val), "kB")), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("parsing %s in /proc/%d/status: %v", key, pid, err)
		}
		if key == "VmRSS" {
			rss = kb << 10
		} else {
			hwm = kb << 10
		}
		found++
	}
	if err := sc.Err(); err != nil {
		return 0, 0, err
	}
	if found != 2 {
		return 0, 0, errors.New("no VmRSS and VmHWM in /proc/" + strconv.Itoa(pid) + "/status (a zombie, or not Linux?)")
	}
	return rss, hwm, nil
}
