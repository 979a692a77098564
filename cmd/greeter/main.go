// Command greeter is the command-line client of greeterd.
//
//	greeter [connection flags] COMMAND [flags] [args]
//
// Commands: hello, upload, download, ls, stat, rm, usage, completion. Connection
// flags may be given before or after the command, and every flag has a
// GREETER_* environment equivalent (GREETER_ADDR, GREETER_CA, GREETER_TOKEN,
// ...). Each command is one trace when tracing is on (OTEL_* variables).
package main

import (
	"context"
	"errors"
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

// run executes one greeter command line and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	return (&app{stdout: stdout, stderr: stderr, getenv: getenv}).run(ctx, args)
}

// run executes args and returns the exit code, printing any error.
func (a *app) run(ctx context.Context, args []string) int {
	err := a.execute(ctx, args)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(a.stderr, "greeter: %v\n", describe(err))
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
