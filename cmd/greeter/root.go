package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/greeter/greeter/client"
	"github.com/greeter/greeter/internal/buildinfo"
	"github.com/greeter/greeter/internal/envflag"
)

// app is one invocation of greeter: where it writes, its environment and,
// in tests, a span exporter that replaces the one OTEL_* would choose.
type app struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	spanExporter   sdktrace.SpanExporter

	conn connection
	// ran is set once a command's own code starts: errors before that come
	// from cobra (an unknown command, a bad flag) and are usage errors.
	ran bool
}

// execute parses args with cobra and runs the command they name.
func (a *app) execute(ctx context.Context, args []string) error {
	root := a.rootCommand()
	root.SetArgs(longFlagsWithOneDash(root, args))
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	err := root.ExecuteContext(ctx)
	if err != nil && !a.ran && !errors.As(err, new(usageError)) {
		return usageError{err}
	}
	return err
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "greeter [connection flags] COMMAND [flags] [args]",
		Short: "greeter talks to a greeterd file server",
		Long:  rootLong,
		// Cobra adds --version (and -v) because Version is set.
		Version: strings.TrimSuffix(buildinfo.String("greeter"), "\n"),
		// The caller prints errors once, as "greeter: ..."; the usage is
		// printed only when no command was named.
		SilenceErrors: true,
		SilenceUsage:  true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SetOut(a.stderr)
			cmd.Usage()
			return usageError{errors.New("a command is required")}
		},
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	a.conn.register(root.PersistentFlags())
	root.AddCommand(a.helloCommand(), a.uploadCommand(), a.downloadCommand(),
		a.lsCommand(), a.statCommand(), a.rmCommand(), a.usageCommand())
	return root
}

// connection holds the connection flags every command shares.
type connection struct {
	addr       string
	stateDir   string
	ca         string
	cert       string
	key        string
	serverName string
	token      string
	tokenFile  string
	plaintext  bool
	json       bool
	timeout    time.Duration
	chunkSize  envflag.Size
}

// register adds the connection flags to fs (the root's persistent flags,
// so they may come before or after the command).
func (c *connection) register(fs *pflag.FlagSet) {
	fs.StringVar(&c.addr, "addr", "localhost:50051", "server address host:port, replicas host:port,host:port,... or dns:///name:port")
	fs.StringVar(&c.stateDir, "state-dir", "", "use the dev CA, client certificate and token greeterd wrote in this directory")
	fs.StringVar(&c.ca, "ca", "", "CA bundle that verifies the server (default: system roots)")
	fs.StringVar(&c.cert, "cert", "", "client certificate for mutual TLS")
	fs.StringVar(&c.key, "key", "", "client key for mutual TLS")
	fs.StringVar(&c.serverName, "server-name", "", "name to verify in the server certificate")
	fs.StringVar(&c.token, "token", "", "bearer token")
	fs.StringVar(&c.tokenFile, "token-file", "", "file holding the bearer token")
	fs.BoolVar(&c.plaintext, "plaintext", false, "connect without TLS (only for a local --plaintext server)")
	fs.BoolVar(&c.json, "json", false, "print results as JSON")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "deadline for non-transfer calls")
	c.chunkSize = client.DefaultChunkSize
	fs.Var(sizeValue{&c.chunkSize}, "chunk-size", "bytes per upload message")
}

// sizeValue gives envflag.Size the Type method pflag wants.
type sizeValue struct{ *envflag.Size }

func (sizeValue) Type() string { return "size" }

// applyEnv sets every flag of fs not given on the command line from its
// GREETER_* variable, as envflag.Apply does for Go flag sets.
func (a *app) applyEnv(fs *pflag.FlagSet) error {
	var first error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || first != nil || f.Name == "help" || f.Name == "version" {
			return
		}
		name := envflag.EnvName(f.Name)
		v := a.getenv(name)
		if v == "" {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			first = fmt.Errorf("%s: invalid value for %s: %v", name, f.Name, err)
		}
	})
	return first
}

// longFlagsWithOneDash rewrites "-addr" to "--addr" for every long flag of
// the command tree, up to "--": greeter parsed its flags with the standard
// flag package before, which accepts both spellings, and scripts may use
// either. Words that are the value of the flag before them stay as they are.
func longFlagsWithOneDash(root *cobra.Command, args []string) []string {
	valued := map[string]bool{} // long and short names; true: takes a value
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		add := func(f *pflag.Flag) {
			takes := f.NoOptDefVal == ""
			valued[f.Name] = takes
			if f.Shorthand != "" {
				valued[f.Shorthand] = takes
			}
		}
		c.LocalFlags().VisitAll(add)
		c.PersistentFlags().VisitAll(add)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	out := make([]string, len(args))
	copy(out, args)
	for i := 0; i < len(out); i++ {
		arg := out[i]
		if arg == "--" {
			break
		}
		if !strings.HasPrefix(arg, "-") || arg == "-" {
			continue
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(arg, "-"), "=")
		takes, known := valued[name]
		if !known {
			continue
		}
		if !strings.HasPrefix(arg, "--") && len(name) > 1 {
			out[i] = "-" + arg
		}
		if takes && !hasValue {
			i++ // the next word is this flag's value
		}
	}
	return out
}
