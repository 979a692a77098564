package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Load test parameters. loadDuration is how long the users start new
// operations; with -short the run is cut to loadShortDuration.
const (
	loadUsers         = 50
	loadSubjects      = 10
	loadDuration      = 30 * time.Second
	loadShortDuration = 5 * time.Second
)

// loadServerFlags scale greeterd's default limits to 50 users coming from
// one loopback address and sharing 10 identities, five to an identity:
//
//   - --rate-peer: every user dials from 127.0.0.1, which in production
//     would be 50 addresses, so the per-IP limit is 50 × the default
//     (100/s, burst 200).
//   - --rate-unary, --rate-transfer: each identity gets 5 × the default
//     (10/s burst 20 unary, 1/s burst 5 transfers started), so each user
//     has what the defaults give a whole identity.
//   - --max-transfers-per-identity stays at its default, 4: five users
//     sharing an identity sometimes want five transfers at once, so the
//     concurrency cap's rejections are exercised too.
//
// The users do not pause between operations, so they still run into these
// limits; those rejections (ResourceExhausted with RetryInfo) are expected
// and counted apart.
var loadServerFlags = []string{
	"--rate-peer", "5000", "--rate-peer-burst", "10000",
	"--rate-unary", "50", "--rate-unary-burst", "100",
	"--rate-transfer", "5", "--rate-transfer-burst", "25",
}

// loadReport is the part of bench/load's -json report the test checks.
type loadReport struct {
	Kinds []struct {
		Kind        string `json:"kind"`
		OK          int    `json:"ok"`
		RateLimited int    `json:"rate_limited"`
		Errors      int    `json:"errors"`
	} `json:"kinds"`
	ErrorsByCode      map[string]int `json:"errors_by_code"`
	UnexpectedErrors  int            `json:"unexpected_errors"`
	IntegrityFailures int            `json:"integrity_failures"`
	DownloadsVerified int            `json:"downloads_verified"`
	ErrorSamples      []string       `json:"error_samples"`
	Passed            bool           `json:"passed"`
}

// TestLoadFiftyUsers runs bench/load with 50 concurrent users, each with its
// own TLS connection, against a dev-mode greeterd: hellos, uploads of random
// bytes and downloads of earlier uploads checked against the SHA-256
// recorded at upload. Only rate-limit rejections may fail, every download
// must match, and every kind of operation must have succeeded at least once.
func TestLoadFiftyUsers(t *testing.T) {
	duration := loadDuration
	if testing.Short() {
		duration = loadShortDuration
	}
	load := buildLoad(t)
	srv, state := devServer(t, loadServerFlags...)
	args := []string{
		"-addr", srv.Addr, "-state-dir", state,
		"-users", strconv.Itoa(loadUsers), "-subjects", strconv.Itoa(loadSubjects),
		"-greeterd", bins.Greeterd,
		"-duration", duration.String(),
		"-mix", "hello=70,upload=15,download=15", "-size", "256KiB",
		"-json", "-progress", "0",
	}
	args = append(args, "-pid", strconv.Itoa(srv.PID()))

	// Bounded: the run plus time for the operations in flight (each has a
	// one-minute deadline) and for minting the tokens.
	ctx, cancel := context.WithTimeout(t.Context(), duration+3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, load, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var rep loadReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("load %s: %v, report not JSON: %v\nstdout:\n%s\nstderr:\n%s\ngreeterd log:\n%s", strings.Join(args, " "), runErr, err, stdout.String(), stderr.String(), srv.Log.String())
	}
	for _, k := range rep.Kinds {
		t.Logf("%-8s ok %6d  rate-limited %6d  errors %d", k.Kind, k.OK, k.RateLimited, k.Errors)
	}
	defer func() {
		if t.Failed() {
			t.Logf("load %s\n%s", strings.Join(args, " "), stdout.String())
		}
	}()

	if rep.UnexpectedErrors != 0 {
		t.Errorf("got %d errors other than rate limits, by code %v, want none; first ones:\n%s", rep.UnexpectedErrors, rep.ErrorsByCode, strings.Join(rep.ErrorSamples, "\n"))
	}
	if rep.IntegrityFailures != 0 {
		t.Errorf("got %d integrity failures, want none; first ones:\n%s", rep.IntegrityFailures, strings.Join(rep.ErrorSamples, "\n"))
	}
	ok := map[string]int{}
	for _, k := range rep.Kinds {
		ok[k.Kind] = k.OK
	}
	for _, k := range []string{"hello", "upload", "download"} {
		if ok[k] == 0 {
			t.Errorf("no %s succeeded; want some of each kind", k)
		}
	}
	if rep.DownloadsVerified != ok["download"] {
		t.Errorf("%d downloads succeeded but %d were verified against their upload's SHA-256, want all", ok["download"], rep.DownloadsVerified)
	}
	var exit *exec.ExitError
	switch {
	case runErr == nil && !rep.Passed:
		t.Errorf("load exited 0 but its report says it did not pass")
	case errors.As(runErr, &exit) && rep.Passed:
		t.Errorf("load exited with %v although its report passed\nstderr:\n%s", runErr, stderr.String())
	case runErr != nil && !errors.As(runErr, &exit):
		t.Errorf("running load: %v", runErr)
	}
	if err := srv.Stop(30 * time.Second); err != nil {
		t.Errorf("greeterd did not shut down cleanly after the load: %v\n%s", err, srv.Log.String())
	}
	if log := srv.Log.String(); strings.Contains(log, "panic") || strings.Contains(log, "DATA RACE") {
		t.Errorf("greeterd logged a panic or a data race:\n%s", log)
	}
}

// buildLoad compiles bench/load (with the race detector, like the other
// binaries) into the test's temporary directory.
func buildLoad(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "load")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-race", "-o", bin, "./bench/load")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building bench/load: %v\n%s", err, out)
	}
	return bin
}
