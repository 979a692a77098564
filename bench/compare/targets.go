package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// target is one way of moving a file to a server on loopback and back.
type target interface {
	// Name labels the target in tables, CSV files and charts.
	Name() string
	// Server is the server process, whose CPU time and peak RSS are read
	// around every transfer.
	Server() *process
	// Upload returns the command that stores the file src as object.
	Upload(src, object string) []string
	// Download returns the command that fetches object into the file dst.
	Download(object, dst string) []string
	// Remove deletes object from the server (not timed).
	Remove(ctx context.Context, object string) error
}

// startJaeger starts the Jaeger all-in-one that scripts/jaeger.sh installs
// into .bin, with every port private, and returns its OTLP/HTTP endpoint.
func (h *harness) startJaeger(ctx context.Context) (string, error) {
	bin := filepath.Join(h.root, ".bin", "all-in-one")
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("-traces jaeger needs %s: run scripts/jaeger.sh once to install it", bin)
	}
	port, err := freePort()
	if err != nil {
		return "", err
	}
	otlp := "127.0.0.1:" + strconv.Itoa(port)
	anyPort := "127.0.0.1:0"
	p, err := startProcess("jaeger", filepath.Join(h.work, "jaeger.log"), cleanEnv("SPAN_STORAGE_TYPE=memory"), bin,
		"--collector.otlp.enabled=true",
		"--collector.otlp.grpc.host-port="+anyPort,
		"--collector.otlp.http.host-port="+otlp,
		"--query.http-server.host-port="+anyPort,
		"--query.grpc-server.host-port="+anyPort,
		"--admin.http.host-port="+anyPort,
		"--collector.grpc-server.host-port="+anyPort,
		"--collector.http-server.host-port="+anyPort,
		"--collector.zipkin.host-port=",
		"--http-server.host-port="+anyPort,
		"--processor.jaeger-binary.server-host-port="+anyPort,
		"--processor.jaeger-compact.server-host-port="+anyPort,
		"--processor.zipkin-compact.server-host-port="+anyPort,
	)
	if err != nil {
		return "", err
	}
	h.onClose(func() { p.stop(5 * time.Second) })
	if err := waitTCP(ctx, p, otlp, 30*time.Second); err != nil {
		return "", err
	}
	return "http://" + otlp, nil
}

// run runs argv to completion, returning its output in the error if it
// fails.
func run(ctx context.Context, env []string, argv ...string) error {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(argv[:min(len(argv), 3)], " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
