package main

import (
	"bytes"
	"context"
	"flag"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// serveDurations is every duration flag of greeterd serve with what it
// accepts: zeroOK when 0 has a documented meaning, and the least positive
// value. A duration flag missing here fails TestDurationFlagsAreChecked.
var serveDurations = map[string]struct {
	zeroOK bool
	floor  time.Duration
}{
	"idle-timeout":             {},
	"shutdown-timeout":         {},
	"resumable-ttl":            {},
	"connection-timeout":       {},
	"keepalive-min-time":       {},
	"keepalive-time":           {floor: time.Second},
	"keepalive-timeout":        {},
	"max-connection-idle":      {},
	"max-connection-age":       {zeroOK: true},
	"max-connection-age-grace": {zeroOK: true},
	"jwt-leeway":               {zeroOK: true},
	"drain-delay":              {zeroOK: true},
	"jwt-max-lifetime":         {},
	"limiter-idle-ttl":         {},
	"health-interval":          {floor: 100 * time.Millisecond},
	"tls-reload-interval":      {floor: 100 * time.Millisecond},
}

// runArgs runs greeterd with args in a fresh state dir, on a context that
// is already cancelled: a command that passes its flag checks starts and
// stops at once.
func runArgs(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	dir := t.TempDir()
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		args = append(args, "--plaintext", "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "data"))
	}
	args = append(args, "--state-dir", dir)
	var stderr bytes.Buffer
	code := run(ctx, args, new(bytes.Buffer), &stderr, func(string) string { return "" })
	return code, stderr.String()
}

// TestDurationFlagsAreChecked gives every duration flag of greeterd a
// negative value, zero and a value under its floor (RELIABILITY.md R6):
// each is a usage error (exit 2) naming the flag, except zero where it
// has a documented meaning.
func TestDurationFlagsAreChecked(t *testing.T) {
	var c serveConfig
	fs := serveFlags(&c)
	var names []string
	fs.VisitAll(func(f *flag.Flag) {
		if g, ok := f.Value.(flag.Getter); ok {
			if _, ok := g.Get().(time.Duration); ok {
				names = append(names, f.Name)
			}
		}
	})
	if want := slices.Sorted(maps.Keys(serveDurations)); !slices.Equal(names, want) {
		t.Fatalf("greeterd's duration flags are %v, the test knows %v: add the new ones", names, want)
	}
	for _, name := range names {
		want := serveDurations[name]
		bad := []string{"-1s"}
		if !want.zeroOK {
			bad = append(bad, "0")
		}
		if want.floor > 0 {
			bad = append(bad, (want.floor - time.Nanosecond).String())
		}
		for _, v := range bad {
			t.Run(name+"="+v, func(t *testing.T) {
				code, stderr := runArgs(t, "--"+name+"="+v)
				if code != 2 || !strings.Contains(stderr, "greeterd: --"+name+" must ") {
					t.Errorf("exit %d, stderr %q; want 2 and a usage error naming --%s", code, stderr, name)
				}
			})
		}
		good := []string{"1h"}
		if want.zeroOK {
			good = append(good, "0")
		}
		if want.floor > 0 {
			good = append(good, want.floor.String())
		}
		for _, v := range good {
			var c serveConfig
			fs := serveFlags(&c)
			if err := fs.Set(name, v); err != nil {
				t.Fatal(err)
			}
			if err := checkDurations(fs); err != nil {
				t.Errorf("--%s=%s: %v, want it accepted", name, v, err)
			}
		}
	}
}

// TestSubcommandDurationsAreChecked covers the duration flags of the
// token and cert issue subcommands (RELIABILITY.md R6).
func TestSubcommandDurationsAreChecked(t *testing.T) {
	for _, args := range [][]string{
		{"token", "--sub", "ada", "--ttl=0"},
		{"token", "--sub", "ada", "--ttl=-1s"},
		{"cert", "issue", "--name", "ada", "--lifetime=0"},
		{"cert", "issue", "--name", "ada", "--lifetime=-1s"},
	} {
		flag, _, _ := strings.Cut(args[len(args)-1], "=")
		code, stderr := runArgs(t, args...)
		if code != 2 || !strings.Contains(stderr, "greeterd: "+flag+" must be positive") {
			t.Errorf("greeterd %s: exit %d, stderr %q; want 2 and a usage error naming %s", strings.Join(args, " "), code, stderr, flag)
		}
	}
}
