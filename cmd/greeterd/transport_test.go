package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/greeter/greeter/certs"
	"github.com/greeter/greeter/internal/envflag"
)

// TestClientAuthFlag: --client-auth parses with certs.ClientAuth, from the
// command line or the environment, and remembers whether it was given.
func TestClientAuthFlag(t *testing.T) {
	tests := []struct {
		args    []string
		env     string
		want    certs.ClientAuth
		given   bool
		wantErr string
	}{
		{args: nil, want: certs.ClientAuthNone, given: false},
		{args: []string{"--client-auth=none"}, want: certs.ClientAuthNone, given: true},
		{args: []string{"--client-auth", "request"}, want: certs.ClientAuthRequest, given: true},
		{args: []string{"--client-auth=require"}, want: certs.ClientAuthRequire, given: true},
		{env: "require", want: certs.ClientAuthRequire, given: true},
		{args: []string{"--client-auth=sometimes"}, wantErr: "want none, request or require"},
	}
	for _, tc := range tests {
		var c serveConfig
		fs := serveFlags(&c)
		fs.SetOutput(new(bytes.Buffer))
		err := fs.Parse(tc.args)
		if err == nil && tc.env != "" {
			env := map[string]string{envflag.EnvName("client-auth"): tc.env}
			err = envflag.Apply(fs, func(k string) string { return env[k] }, "")
		}
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: got error %v, want one containing %q", tc.args, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q env %q: %v", tc.args, tc.env, err)
			continue
		}
		if got := c.transport.clientAuth; got.mode != tc.want || got.given != tc.given {
			t.Errorf("%q env %q: got %v (given %v), want %v (given %v)", tc.args, tc.env, got.mode, got.given, tc.want, tc.given)
		}
	}
}

// TestClientAuthFlagHasNoPrintedDefault: the usage text explains the
// default, so PrintDefaults must not add a misleading "(default none)".
func TestClientAuthFlagHasNoPrintedDefault(t *testing.T) {
	var c serveConfig
	fs := serveFlags(&c)
	var out bytes.Buffer
	fs.SetOutput(&out)
	fs.PrintDefaults()
	_, after, _ := strings.Cut(out.String(), "-client-auth")
	line, _, _ := strings.Cut(after, "\n  -")
	if strings.Contains(line, "(default ") {
		t.Errorf("--client-auth usage prints a default:%s", line)
	}
}
