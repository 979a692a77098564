package buildinfo

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestDescribe(t *testing.T) {
	stamped := &debug.BuildInfo{
		GoVersion: "go1.26.0",
		Main:      debug.Module{Path: "github.com/greeter/greeter", Version: "v1.2.3"},
		Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
			{Key: "vcs.time", Value: "2026-11-29T15:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	unstamped := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: "github.com/greeter/greeter"}}
	for _, c := range []struct {
		name string
		bi   *debug.BuildInfo
		want []string
	}{
		{"stamped", stamped, []string{
			"greeter v1.2.3\n",
			"module:   github.com/greeter/greeter\n",
			"revision: 0123456789abcdef0123456789abcdef01234567\n",
			"time:     2026-11-29T15:00:00Z\n",
			"modified: true\n",
			"go:       go1.26.0\n",
		}},
		{"without VCS stamping", unstamped, []string{
			"greeter (devel)\n",
			"revision: unknown (built without VCS stamping)\n",
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := Describe("greeter", c.bi)
			for _, w := range c.want {
				if !strings.Contains(got, w) {
					t.Errorf("Describe =\n%s\nwant it to contain %q", got, w)
				}
			}
		})
	}
}

// TestStringOfThisBinary: the test binary has build information, and String
// reports its Go version.
func TestStringOfThisBinary(t *testing.T) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		t.Fatal("the test binary has no build information")
	}
	if got := String("x"); !strings.HasPrefix(got, "x ") || !strings.Contains(got, "go:       "+bi.GoVersion+"\n") {
		t.Fatalf("String = %q, want it to start with the program and name %s", got, bi.GoVersion)
	}
}
