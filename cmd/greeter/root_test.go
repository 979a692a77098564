package main

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

// runCLI runs greeter with no environment and returns what it printed.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	code = run(ctx, args, &out, &errOut, func(string) string { return "" })
	return code, out.String(), errOut.String()
}

func TestCommandLine(t *testing.T) {
	for _, c := range []struct {
		name      string
		args      []string
		code      int
		stdout    []string
		stderr    []string
		notStdout string
	}{
		{"version", []string{"--version"}, exitOK, []string{"greeter ", "module:   github.com/greeter/greeter\n", "revision: "}, nil, ""},
		{"help", []string{"help"}, exitOK, []string{"Available Commands:", "upload", "download", "completion", "Exit codes:"}, nil, ""},
		{"upload --help", []string{"upload", "--help"}, exitOK, []string{"greeter upload FILE|DIR...", "--create-only", "--if-match", "-j, --j", "Global Flags:", "--addr"}, nil, "Available Commands"},
		{"download -h", []string{"download", "-h"}, exitOK, []string{"greeter download NAME...", "-o, --o", "--no-resume"}, nil, "--create-only"},
		{"no command", nil, exitUsage, nil, []string{"a command is required", "Available Commands:"}, ""},
		{"mistyped command", []string{"uplaod", "x"}, exitUsage, nil, []string{`unknown command "uplaod"`, "Did you mean this?\n\tupload"}, ""},
		{"mistyped flag", []string{"hello", "--nmae", "x"}, exitUsage, nil, []string{"unknown flag: --nmae"}, ""},
		{"bad flag value", []string{"--timeout", "soon", "hello"}, exitUsage, nil, []string{"--timeout"}, ""},
		{"completion bash", []string{"completion", "bash"}, exitOK, []string{"# bash completion V2 for greeter", "__start_greeter"}, nil, ""},
		{"completion zsh", []string{"completion", "zsh"}, exitOK, []string{"#compdef greeter", "compdef _greeter greeter"}, nil, ""},
		{"completion fish", []string{"completion", "fish"}, exitOK, []string{"complete -c greeter"}, nil, ""},
		// What the shell scripts call: command names, then a command's flags.
		{"completes commands", []string{"__complete", "up"}, exitOK, []string{"upload\t"}, nil, "download"},
		{"completes flags", []string{"__complete", "upload", "--cr"}, exitOK, []string{"--create-only\t"}, nil, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, c.args...)
			if code != c.code {
				t.Fatalf("greeter %q: exit %d, want %d\nstdout: %s\nstderr: %s", c.args, code, c.code, stdout, stderr)
			}
			for _, w := range c.stdout {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout)
				}
			}
			for _, w := range c.stderr {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			if c.notStdout != "" && strings.Contains(stdout, c.notStdout) {
				t.Errorf("stdout holds %q:\n%s", c.notStdout, stdout)
			}
		})
	}
}

// TestOneDashLongFlags: the spellings the standard flag package accepted
// still work; values that look like flags stay values.
func TestOneDashLongFlags(t *testing.T) {
	root := (&app{}).rootCommand()
	for _, c := range []struct{ in, want []string }{
		{[]string{"-addr", "h:1", "-plaintext", "hello", "-name=Ada"}, []string{"--addr", "h:1", "--plaintext", "hello", "--name=Ada"}},
		{[]string{"upload", "-j", "2", "-r", "dir", "-as", "-timeout"}, []string{"upload", "-j", "2", "-r", "dir", "--as", "-timeout"}},
		{[]string{"upload", "x", "--", "-as"}, []string{"upload", "x", "--", "-as"}},
		{[]string{"hello", "-unknown"}, []string{"hello", "-unknown"}},
	} {
		if got := longFlagsWithOneDash(root, c.in); !slices.Equal(got, c.want) {
			t.Errorf("longFlagsWithOneDash(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestOneDashFlagsReachTheServer: "-addr" and "-name" work end to end.
func TestOneDashFlagsReachTheServer(t *testing.T) {
	addr := serve(t)
	code, stdout, stderr := runCLI(t, "-plaintext", "-addr", addr, "hello", "-name", "Grace")
	if code != exitOK || !strings.Contains(stdout, "Grace") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}
