// Command greeter is the command-line client of greeterd.
//
//	greeter [connection flags] COMMAND [flags] [args]
//
// Commands: hello, upload, download, ls, stat, rm, usage. Connection flags may be
// given before or after the command, and every flag has a GREETER_*
// environment equivalent (GREETER_ADDR, GREETER_CA, GREETER_TOKEN, ...).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// Exit codes. Scripts can tell what went wrong without parsing messages.
const (
	exitOK          = 0
	exitFailure     = 1 // anything not listed below, local file errors included
	exitUsage       = 2 // bad flags or arguments
	exitNotFound    = 3 // NotFound
	exitDenied      = 4 // Unauthenticated, PermissionDenied
	exitInvalid     = 5 // InvalidArgument, FailedPrecondition, OutOfRange
	exitUnavailable = 6 // Unavailable, DeadlineExceeded: worth retrying
	exitIntegrity   = 7 // DataLoss: bytes did not verify
	exitExhausted   = 8 // ResourceExhausted: too large, rate limited, storage full
)

const usage = `greeter talks to a greeterd file server.

Usage:
  greeter [connection flags] COMMAND [flags] [args]

Commands:
  hello [--name NAME] [--age N]     say hello
  upload FILE|DIR... [flags]        store files (a directory: every file in it)
      --as NAME        name of a single FILE (default its base name); with -r
                       or a DIR, the prefix of every name
      -r               upload recursively: names are paths relative to each DIR
      --create-only    store only files that do not exist on the server yet
      --if-match SHA   replace the stored file only if its SHA-256 is SHA (hex;
                       a single FILE)
  download NAME... [-o PATH]        fetch files into PATH (default: base names here;
                                    with several NAMEs, PATH must be a directory)
  ls [PREFIX]                       list files
  stat NAME                         describe a file
  rm NAME                           delete a file
  usage                             show the storage you use and your quotas

Transfer flags (upload and download):
  -j N                 transfers at once (default 4), with one progress display
  --no-resume          start every transfer and retry from the first byte
  --retries N          retries of a transfer failing without progress (default 7)
Transfers retry broken connections, server restarts and rate limits with
backoff and resume where they stopped, also in a later run: an upload from the
bytes the server committed, a download from its .NAME.greeter-part file. That
file must be your own regular file, not writable by others and not a link;
anything else there is refused and left alone. While a download writes it, a
second download to the same path fails at once.

Connection flags (also GREETER_ADDR, GREETER_CA, ... in the environment):
  --addr HOST:PORT     server address (default localhost:50051); for replicas of
                       one service, HOST:PORT,HOST:PORT,... or dns:///NAME:PORT
  --state-dir DIR      use the dev CA, client certificate and token greeterd wrote in DIR
  --ca FILE            CA bundle that verifies the server (default: system roots)
  --cert, --key FILE   client certificate and key for mutual TLS
  --server-name NAME   name to verify in the server certificate
  --token TOKEN, --token-file FILE   bearer token
  --plaintext          no TLS (only for a local --plaintext server; tokens are refused)
  --json               print results as JSON
  --timeout D          deadline for non-transfer calls (default 30s)

With several replicas (a list, or every address a dns:/// name resolves to),
calls are spread over them and skip any replica whose health is not SERVING or
that is down; a transfer cut off by a replica going away retries on another.
TLS verifies every replica under one name: --server-name, else the host of the
first address.

With --json, upload and download print an array of per-file results (name,
path, size, sha256, bytes_sent, bytes_received, attempts, error); with a
single FILE or NAME argument, that one object.

With --json, usage prints bytes, objects, quota_bytes and quota_objects (a
quota of 0 means none).

Exit codes: 0 ok, 1 failure (also local file errors: an unsafe partial file, a
download already in progress), 2 usage, 3 not found, 4 unauthenticated or denied,
5 invalid argument or failed condition, 6 unavailable or timed out, 7 integrity
failure, 8 resource exhausted.
When several transfers fail, stderr lists each and the exit code is the first's.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	err := dispatch(ctx, args, stdout, stderr, getenv)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	fmt.Fprintf(stderr, "greeter: %v\n", describe(err))
	return exitCode(err)
}

// usageError marks errors in how the command was called.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

func exitCode(err error) int {
	if errors.As(err, new(usageError)) {
		return exitUsage
	}
	st, ok := status.FromError(err)
	if !ok {
		return exitFailure
	}
	switch st.Code() {
	case codes.NotFound:
		return exitNotFound
	case codes.Unauthenticated, codes.PermissionDenied:
		return exitDenied
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange, codes.AlreadyExists:
		return exitInvalid
	case codes.Unavailable, codes.DeadlineExceeded:
		return exitUnavailable
	case codes.DataLoss:
		return exitIntegrity
	case codes.ResourceExhausted:
		return exitExhausted
	default:
		return exitFailure
	}
}

// describe turns a status error into "Code: message" for people.
func describe(err error) string {
	if errors.As(err, new(*transferFailures)) {
		return err.Error()
	}
	if st, ok := status.FromError(err); ok && !errors.As(err, new(usageError)) {
		return fmt.Sprintf("%s: %s", st.Code(), st.Message())
	}
	return err.Error()
}
