package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// deadAddr returns a loopback address where nothing listens.
func deadAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

// TestAddrListSkipsDeadReplica: --addr and GREETER_ADDR take a list of
// replicas, and calls go to those that are up.
func TestAddrListSkipsDeadReplica(t *testing.T) {
	list := deadAddr(t) + "," + serve(t)
	for _, via := range []string{"flag", "env"} {
		t.Run(via, func(t *testing.T) {
			args := []string{"--plaintext"}
			getenv := func(string) string { return "" }
			if via == "flag" {
				args = append(args, "--addr", list)
			} else {
				getenv = func(name string) string {
					if name == "GREETER_ADDR" {
						return list
					}
					return ""
				}
			}
			for range 4 {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				var out, errOut bytes.Buffer
				code := run(ctx, append(args, "hello", "--name", "Ada"), &out, &errOut, getenv)
				cancel()
				if code != exitOK || !strings.Contains(out.String(), "Ada") {
					t.Fatalf("hello with %s %s: exit %d, stdout %q, stderr %q", via, list, code, out.String(), errOut.String())
				}
			}
		})
	}
}

// TestAddrListUsageErrors: a list element that is not HOST:PORT is a
// usage error.
func TestAddrListUsageErrors(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:1,", "127.0.0.1:1,dns:///localhost:2", "127.0.0.1:1,localhost"} {
		code, _, stderr := greeter(t, addr, "hello")
		if code != exitUsage || !strings.Contains(stderr, "--addr") {
			t.Errorf("--addr %q: exit %d, stderr %q; want exit %d naming --addr", addr, code, stderr, exitUsage)
		}
	}
}
