package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
)

// Dev mode is meant to be explored: reflection is on there unless
// --reflection=false says otherwise, and the connect hint is a command that
// works on a fresh clone.

// reflectionOn reports whether to serve reflection: as --reflection says
// when it was given (flag, environment or config file, which fs records as
// set), else only in the loopback-only modes (dev and plaintext).
func reflectionOn(fs *flag.FlagSet, flagValue bool, mode string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "reflection" })
	if given {
		return flagValue
	}
	return mode == "dev" || mode == "plaintext"
}

// connectHint turns hint ("greeter ...") into a command the user can run:
// as it is when greeter is on the PATH; else, inside a checkout of this
// module, "go run ./cmd/greeter ..." (with "-C ROOT" when not at its root);
// else as it is.
func connectHint(hint string, lookPath func(string) (string, error), wd string) string {
	rest, ok := strings.CutPrefix(hint, "greeter ")
	if !ok {
		return hint
	}
	if _, err := lookPath("greeter"); err == nil {
		return hint
	}
	root, ok := moduleRoot(wd)
	switch {
	case !ok:
		return hint
	case root == wd:
		return "go run ./cmd/greeter " + rest
	default:
		return "go -C " + root + " run ./cmd/greeter " + rest
	}
}

// moduleRoot returns the directory at or above dir whose go.mod declares
// this module.
func moduleRoot(dir string) (string, bool) {
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil {
			first, _, _ := strings.Cut(string(data), "\n")
			return dir, strings.TrimSpace(first) == "module "+modulePath
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}

// modulePath is the module greeter belongs to.
const modulePath = "github.com/greeter/greeter"
