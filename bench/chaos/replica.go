package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync"
	"time"
)

// replica is one greeterd that comes back on the same address.
type replica struct {
	bin, addr string
	args, env []string
	log       string
	mu        sync.Mutex
	cmd       *exec.Cmd
	exited    chan struct{}
}

// start runs greeterd until it accepts connections; it retries, bounded,
// while it exits early (MinIO may be down at that moment).
func (r *replica) start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		return nil
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		logf, err := os.OpenFile(r.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		cmd := exec.Command(r.bin, append([]string{"--listen", r.addr}, r.args...)...)
		cmd.Env = append(os.Environ(), r.env...)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			logf.Close()
			return err
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); logf.Close(); close(exited) }()
		for up := false; !up; {
			select {
			case <-exited:
				up = true
			case <-time.After(50 * time.Millisecond):
				if c, err := net.DialTimeout("tcp", r.addr, time.Second); err == nil {
					c.Close()
					r.cmd, r.exited = cmd, exited
					return nil
				}
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("greeterd on %s did not start; see %s", r.addr, r.log)
		}
		time.Sleep(time.Second) // it exited early: poll, bounded by deadline
	}
}

func (r *replica) kill() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		r.cmd.Process.Kill()
		<-r.exited
		r.cmd = nil
	}
}
