// Command load puts a running greeterd under the load of many concurrent
// clients and reports what they saw.
//
//	go run ./bench/load -addr 127.0.0.1:50051 -state-dir .greeter -users 50 -duration 30s
//
// Each virtual user owns one grpc.ClientConn (one TLS connection, as each
// run of the greeter CLI has) and loops until the duration is over: it says
// hello, uploads random bytes under a random name of its own, or downloads
// one of the files it uploaded earlier and checks the bytes against the
// SHA-256 it recorded when it uploaded them. Users are spread round-robin
// over -subjects identities, so greeterd's per-identity limits apply as they
// would to that many real callers.
//
// Rejections by a rate limit (ResourceExhausted carrying RetryInfo) are
// expected under load: they are counted apart, and the user waits the delay
// the server asked for before its next operation. Every other error, and
// every integrity failure, makes the command exit with status 1.
//
// The command stops starting operations when -duration has passed (or on
// SIGINT/SIGTERM), lets the operations in flight finish (each is bounded by
// -op-timeout), prints its report and exits.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// usageError marks errors in how the command was called (exit status 2).
type usageError struct{ error }

// run executes the command and returns its exit status: 0 when every
// operation succeeded or was rate-limited, 1 when any failed unexpectedly or
// returned bytes that did not match, 2 for usage errors.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(usageError)):
		fmt.Fprintf(stderr, "load: %v\n", err)
		return 2
	case err != nil:
		fmt.Fprintf(stderr, "load: %v\n", err)
		return 1
	}
	rep, err := execute(ctx, cfg, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "load: %v\n", err)
		return 1
	}
	if cfg.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintf(stderr, "load: %v\n", err)
			return 1
		}
	} else {
		rep.writeTable(stdout)
	}
	if !rep.Passed {
		fmt.Fprintf(stderr, "load: FAILED: %d unexpected errors, %d integrity failures\n", rep.UnexpectedErrors, rep.IntegrityFailures)
		return 1
	}
	return 0
}

// execute starts the server if asked to, prepares the users' credentials,
// runs the load and collects the report.
func execute(ctx context.Context, cfg *config, stderr io.Writer) (*report, error) {
	var srv *server
	if len(cfg.serverCmd) > 0 {
		var err error
		if srv, err = startServer(ctx, cfg.serverCmd, cfg.serverLog, cfg.addr); err != nil {
			return nil, err
		}
		defer func() {
			if err := srv.stop(); err != nil {
				fmt.Fprintf(stderr, "load: stopping the server: %v\n", err)
			}
		}()
		cfg.pid = srv.pid()
	}
	creds, err := loadCredentials(ctx, cfg)
	if err != nil {
		return nil, err
	}
	var rss *rssSampler
	if cfg.pid > 0 {
		if rss, err = startRSSSampler(cfg.pid); err != nil {
			return nil, err
		}
	}
	res, err := runLoad(ctx, cfg, creds, stderr)
	if err != nil {
		if rss != nil {
			rss.stop()
		}
		return nil, err
	}
	rep := newReport(cfg, creds, res)
	if rss != nil {
		m := rss.stop()
		rep.Server = &m
	}
	return rep, nil
}
