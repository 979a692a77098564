package e2etest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/greeter/greeter/internal/sysdeps"
)

// Redis is a redis-server process on a free loopback port, with
// persistence off. Kill and Start play an outage: the same port comes
// back, empty.
//
// internal/redistest, for tests of the packages, is built on it.
type Redis struct {
	// Addr is the server's host:port.
	Addr string

	bin, dir string
	args     []string // added to redis-server's command line
	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   chan struct{}
}

// redisStartTimeout bounds how long a start waits for PING to answer.
const redisStartTimeout = 10 * time.Second

// StartRedis launches a redis-server for t and kills it when t ends. It
// installs Debian's redis-server first if it is missing and the test runs
// as root, and fails the test if it cannot or redis-server does not answer.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	sysdeps.LookPath(t, "redis-server", "redis-server") // installs it when missing and root
	r, err := LaunchRedis(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Kill)
	return r
}

// LaunchRedis starts a redis-server that keeps its log in dir and waits
// until it answers. args are added to its command line, such as
// "--requirepass", "secret" (a server with a password still answers PING,
// with an error that shows it is up). The caller must Kill it.
func LaunchRedis(dir string, args ...string) (*Redis, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("e2etest: redis-server not found (%v): install it with `apt-get install redis-server` (.ci/run does)", err)
	}
	r := &Redis{bin: bin, dir: dir, args: args}
	var last error
	for range 5 { // another process may take the free port before redis binds it
		if r.Addr, err = freeAddr(); err != nil {
			return nil, err
		}
		if last = r.Start(); last == nil {
			return r, nil
		}
	}
	return nil, last
}

// URL returns the server's redis:// URL, database 0.
func (r *Redis) URL() string { return "redis://" + r.Addr + "/0" }

// Start starts the server (again, after Kill: same port, no data) and
// waits until it answers PING. It does nothing if it runs.
func (r *Redis) Start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		return nil
	}
	_, port, _ := net.SplitHostPort(r.Addr)
	deadline := time.Now().Add(redisStartTimeout)
	for {
		err := r.startLocked(port, deadline)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond) // the port may still be held briefly after a kill: poll, bounded
	}
}

func (r *Redis) startLocked(port string, deadline time.Time) error {
	logPath := filepath.Join(r.dir, "redis.log")
	cmd := exec.Command(r.bin, append([]string{"--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no",
		"--dir", r.dir, "--logfile", logPath, "--daemonize", "no"}, r.args...)...)
	setParentDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	for {
		if err := redisPing(r.Addr); err == nil {
			r.cmd, r.exited = cmd, exited
			return nil
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(logPath)
			return fmt.Errorf("e2etest: redis-server on %s exited: %s", r.Addr, strings.TrimSpace(string(log)))
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited
			return fmt.Errorf("e2etest: redis-server on %s did not answer PING within %v", r.Addr, redisStartTimeout)
		}
	}
}

// Kill SIGKILLs the server and waits for it to exit; its data is lost. It
// does nothing if the server is not running.
func (r *Redis) Kill() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Kill()
	<-r.exited
	r.cmd = nil
}

// redisPing sends PING over a fresh connection and expects +PONG.
func redisPing(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line = strings.TrimSpace(line); line != "+PONG" && !strings.HasPrefix(line, "-NOAUTH") {
		return errors.New("PING answered " + strconv.Quote(line))
	}
	return nil
}
