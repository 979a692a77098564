// Package envflag fills a flag.FlagSet from environment variables and an
// optional configuration file, so that every flag of greeterd and greeter
// has a GREETER_* equivalent.
//
// Precedence, highest first: a flag on the command line, its environment
// variable, its line in the configuration file, the flag's default. The
// environment variable of flag "max-file-size" is GREETER_MAX_FILE_SIZE.
// A configuration file holds one "name = value" per line, where name is a
// flag name; blank lines and lines starting with '#' are ignored.
package envflag

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"strings"
)

// Prefix starts the name of every environment variable.
const Prefix = "GREETER_"

// EnvName returns the environment variable that sets the flag name.
func EnvName(name string) string {
	return Prefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// Apply sets every flag of fs that was not given on the command line from
// its environment variable (looked up with getenv) or, failing that, from
// the configuration file at configPath (none when empty). fs must already
// have been parsed.
func Apply(fs *flag.FlagSet, getenv func(string) string, configPath string) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })

	file := map[string]string{}
	if configPath != "" {
		var err error
		if file, err = readConfig(configPath); err != nil {
			return err
		}
		for name := range file {
			if fs.Lookup(name) == nil {
				return fmt.Errorf("%s: unknown setting %q", configPath, name)
			}
		}
	}

	var firstErr error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || firstErr != nil {
			return
		}
		source, value, ok := EnvName(f.Name), getenv(EnvName(f.Name)), false
		if value != "" {
			ok = true
		} else if v, found := file[f.Name]; found {
			source, value, ok = configPath, v, true
		}
		if !ok {
			return
		}
		if err := fs.Set(f.Name, value); err != nil {
			firstErr = fmt.Errorf("%s: invalid value for %s: %v", source, f.Name, err)
		}
	})
	return firstErr
}

func readConfig(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s:%d: want \"name = value\"", path, n)
		}
		out[strings.TrimSpace(name)] = strings.Trim(strings.TrimSpace(value), `"`)
	}
	return out, sc.Err()
}
