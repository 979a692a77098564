package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc/<pid>/stat. It
// is 100 on every Linux architecture Go supports.
const clockTicks = 100

// process is a server the harness started. It runs in its own process group
// and dies with the harness (Pdeathsig), so nothing outlives a run.
type process struct {
	name string
	cmd  *exec.Cmd
	log  string // path of its combined stdout and stderr
	done chan struct{}
	err  error // valid once done is closed
}

// startProcess starts argv with env in the background, its output going to
// logPath.
func startProcess(name, logPath string, env []string, argv ...string) (*process, error) {
	out, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		out.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// tail returns the last lines of the process's log, for error messages.
func (p *process) tail() string {
	data, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}

// stop ends the process and everything it started: SIGTERM to its process
// group and to its descendants (sshd puts each session in a new session),
// then SIGKILL after grace.
func (p *process) stop(grace time.Duration) {
	if p.exited() {
		return
	}
	signalTree(p.pid(), syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		signalTree(p.pid(), syscall.SIGKILL)
		<-p.done
	}
	// Descendants that ignored SIGTERM or outlived their parent.
	for _, d := range descendants(p.pid()) {
		syscall.Kill(d, syscall.SIGKILL)
	}
}

func signalTree(pid int, sig syscall.Signal) {
	kids := descendants(pid)
	syscall.Kill(-pid, sig)
	for _, d := range kids {
		syscall.Kill(d, sig)
	}
}

// procStat is the part of /proc/<pid>/stat the harness reads.
type procStat struct {
	ppid int
	// cpu is utime + stime + cutime + cstime: the process's own CPU time
	// and that of the children it has reaped.
	cpu time.Duration
}

func readStat(pid int) (procStat, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	// The command name is in parentheses and may contain spaces.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(data[i+1:]))
	// f[0] is field 3 (state): ppid is field 4, utime..cstime fields 14..17.
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ppid, _ := strconv.Atoi(f[1])
	var ticks int64
	for _, s := range f[11:15] {
		n, _ := strconv.ParseInt(s, 10, 64)
		ticks += n
	}
	return procStat{ppid: ppid, cpu: time.Duration(ticks) * time.Second / clockTicks}, nil
}

// descendants returns the pids of every live descendant of pid.
func descendants(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	parent := map[int]int{}
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readStat(n); err == nil {
			parent[n] = st.ppid
		}
	}
	var out []int
	for n := range parent {
		for q := parent[n]; q > 1; q = parent[q] {
			if q == pid {
				out = append(out, n)
				break
			}
		}
	}
	return out
}

// cpu returns the CPU time the process and its reaped children used so far.
func (p *process) cpu() time.Duration {
	st, err := readStat(p.pid())
	if err != nil {
		return 0
	}
	return st.cpu
}

// settle waits (up to max) until the process has no descendants, so that
// the CPU time of a finished session (sshd forks one per connection) has
// been added to the parent's cumulative child time.
func (p *process) settle(max time.Duration) {
	deadline := time.Now().Add(max)
	for len(descendants(p.pid())) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
}

// resetPeak resets the process's peak RSS (VmHWM) to its current RSS.
func (p *process) resetPeak() error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", p.pid()), []byte("5"), 0)
}

// peakRSS returns the process's peak resident set size (VmHWM) in bytes.
func (p *process) peakRSS() (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.pid()))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmHWM in " + p.name + "'s status")
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitTCP waits until addr accepts connections or p exits.
func waitTCP(ctx context.Context, p *process, addr string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if p.exited() {
			return fmt.Errorf("%s exited before listening on %s:\n%s", p.name, addr, p.tail())
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not listen on %s within %s:\n%s", p.name, addr, timeout, p.tail())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// cleanEnv returns the harness's environment without the variables that
// would change how greeter, greeterd, scp or curl behave (OTEL_*, GREETER_*,
// MINIO_*, AWS_* such as a session token or profile that greeterd on MinIO
// would pick up, proxies), plus extra.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "OTEL_"), strings.HasPrefix(k, "GREETER_"), strings.HasPrefix(k, "MINIO_"), strings.HasPrefix(k, "AWS_"),
			strings.EqualFold(k, "http_proxy"), strings.EqualFold(k, "https_proxy"), strings.EqualFold(k, "all_proxy"):
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// mkdir creates dir and its parents, private to the user.
func mkdir(parts ...string) (string, error) {
	dir := filepath.Join(parts...)
	return dir, os.MkdirAll(dir, 0o700)
}
