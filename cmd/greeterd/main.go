// Command greeterd serves the Greeter file service.
//
//	greeterd [flags]              serve (dev mode when no TLS files are given)
//	greeterd init [--state-dir]   create the dev PKI, JWT keys and token once
//	greeterd cert issue [flags]   issue a certificate from the dev CA
//	greeterd token [flags]        mint a JWT with the dev signing key
//	greeterd --version            print the version from the build information
//
// Every flag has a GREETER_* environment equivalent and may be set in the
// file named by --config; see the README's configuration reference.
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
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// run executes one greeterd command and returns the process exit code:
// 0 on success, 2 for usage errors, 1 for everything else.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	var err error
	switch {
	case len(args) > 0 && args[0] == "init":
		err = runInit(args[1:], stdout, stderr, getenv)
	case len(args) > 1 && args[0] == "cert" && args[1] == "issue":
		err = runCertIssue(args[2:], stdout, stderr, getenv)
	case len(args) > 0 && args[0] == "token":
		err = runToken(args[1:], stdout, stderr, getenv)
	case len(args) > 0 && args[0] == "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		err = runServe(ctx, args, stdout, stderr, getenv)
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(usageError)):
		fmt.Fprintf(stderr, "greeterd: %v\n", err)
		return 2
	default:
		fmt.Fprintf(stderr, "greeterd: %v\n", err)
		return 1
	}
}

const usage = `greeterd serves the Greeter file service over gRPC.

Usage:
  greeterd [flags]                 serve; with no TLS flags, dev mode: a dev PKI,
                                   JWT keys and a token are created once in --state-dir
  greeterd init [--state-dir DIR]  create the dev PKI, JWT keys and dev token
  greeterd cert issue [flags]      issue a client or server certificate from the dev CA
  greeterd token [flags]           mint a JWT with the dev signing key
  greeterd --version               print the module version and VCS revision

Run "greeterd -h", "greeterd cert issue -h" or "greeterd token -h" for flags.
Every flag can also be set as GREETER_<FLAG_NAME> or in the --config file.
`

// usageError marks errors in how the command was called (exit code 2).
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }
