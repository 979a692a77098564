// Package buildinfo describes the running binary from the build information
// the Go toolchain embeds in it: the module version and, when the binary was
// built from a version control checkout with VCS stamping on, the revision,
// its commit time and whether the tree had local changes.
package buildinfo

import (
	"fmt"
	"runtime/debug"
	"strings"
)

// String returns the --version text of program, read from the running
// binary's build information.
func String(program string) string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return program + " (no build information)\n"
	}
	return Describe(program, bi)
}

// Describe returns the --version text of program for bi: the first line is
// "PROGRAM VERSION", then one "key: value" line each for the module path,
// the VCS revision, its commit time, whether the tree was modified, and the
// Go version. A binary built without VCS stamping (go build -buildvcs=false,
// or outside a checkout) says so on the revision line.
func Describe(program string, bi *debug.BuildInfo) string {
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	version := bi.Main.Version
	if version == "" {
		version = "(devel)"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s\n", program, version)
	fmt.Fprintf(&b, "module:   %s\n", bi.Main.Path)
	if rev, ok := settings["vcs.revision"]; ok {
		fmt.Fprintf(&b, "revision: %s\n", rev)
		fmt.Fprintf(&b, "time:     %s\n", orUnknown(settings["vcs.time"]))
		fmt.Fprintf(&b, "modified: %s\n", orUnknown(settings["vcs.modified"]))
	} else {
		b.WriteString("revision: unknown (built without VCS stamping)\n")
	}
	fmt.Fprintf(&b, "go:       %s\n", bi.GoVersion)
	return b.String()
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
