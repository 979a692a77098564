package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/greeter/greeter/internal/envflag"
)

// config is the parsed command line.
type config struct {
	addr                    string
	stateDir, ca, cert, key string
	tokenFiles              []string
	subjects                int
	greeterd                string
	users                   int
	duration                time.Duration
	mix                     mix
	sizes                   sizeDist
	keep                    int
	opTimeout               time.Duration
	pid                     int
	serverCmd               []string
	serverLog               string
	json                    bool
	progress                time.Duration
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: go run ./bench/load [flags]\n\nRuns -users concurrent clients against greeterd for -duration and reports\nops/s, throughput, latency percentiles, errors by code and server RSS.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&c.addr, "addr", "127.0.0.1:50051", "greeterd address")
	fs.StringVar(&c.stateDir, "state-dir", "", "greeterd dev state directory: fills in -ca, -cert, -key and the token, and signs the tokens of -subjects")
	fs.StringVar(&c.ca, "ca", "", "CA bundle that verifies the server (default <state-dir>/ca.pem)")
	fs.StringVar(&c.cert, "cert", "", "client certificate for mutual TLS (default <state-dir>/client.pem if present)")
	fs.StringVar(&c.key, "key", "", "client key for mutual TLS (default <state-dir>/client-key.pem if present)")
	tokenFiles := fs.String("token-file", "", "files holding one bearer token each, comma-separated; one subject per file (default <state-dir>/token, or tokens minted for -subjects)")
	fs.IntVar(&c.subjects, "subjects", 0, "distinct identities the users are spread over; more than one without -token-file mints load-01 … load-K with \"greeterd token\" (default: the number of token files, else 1)")
	fs.StringVar(&c.greeterd, "greeterd", "", "greeterd binary that mints tokens (default: the -server-cmd binary, else greeterd from PATH)")
	fs.IntVar(&c.users, "users", 50, "concurrent virtual users, each with its own connection")
	fs.DurationVar(&c.duration, "duration", 30*time.Second, "how long users start new operations")
	mixSpec := fs.String("mix", "hello=70,upload=15,download=15", "relative weights of the operations")
	sizeSpec := fs.String("size", "256KiB", "upload size: SIZE, MIN-MAX (uniform) or SIZE=W,SIZE=W,... (weighted)")
	fs.IntVar(&c.keep, "keep", 16, "files each user keeps on the server; beyond that it deletes its oldest (0: never delete)")
	fs.DurationVar(&c.opTimeout, "op-timeout", time.Minute, "deadline of one operation")
	fs.IntVar(&c.pid, "pid", 0, "greeterd process id whose VmRSS and VmHWM are sampled from /proc")
	serverCmd := fs.String("server-cmd", "", "start this greeterd command line (split on spaces, no quoting), wait until -addr accepts connections, stop it at the end and sample its RSS")
	fs.StringVar(&c.serverLog, "server-log", "", "write the output of -server-cmd to this file (default: kept in memory, shown if it fails to start)")
	fs.BoolVar(&c.json, "json", false, "print the report as JSON")
	fs.DurationVar(&c.progress, "progress", 5*time.Second, "print progress to stderr this often (0: never)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usageError{err}
	}
	if fs.NArg() > 0 {
		return nil, usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	var err error
	if c.mix, err = parseMix(*mixSpec); err != nil {
		return nil, usageError{err}
	}
	if c.sizes, err = parseSizeDist(*sizeSpec); err != nil {
		return nil, usageError{err}
	}
	for f := range strings.SplitSeq(*tokenFiles, ",") {
		if f = strings.TrimSpace(f); f != "" {
			c.tokenFiles = append(c.tokenFiles, f)
		}
	}
	c.serverCmd = strings.Fields(*serverCmd)
	switch {
	case c.users < 1:
		return nil, usageError{errors.New("-users must be at least 1")}
	case c.duration <= 0:
		return nil, usageError{errors.New("-duration must be positive")}
	case c.opTimeout <= 0:
		return nil, usageError{errors.New("-op-timeout must be positive")}
	case c.keep < 0:
		return nil, usageError{errors.New("-keep must not be negative")}
	case c.subjects < 0:
		return nil, usageError{errors.New("-subjects must not be negative")}
	case len(c.tokenFiles) > 0 && c.subjects > 0 && c.subjects != len(c.tokenFiles):
		return nil, usageError{fmt.Errorf("-subjects %d does not match the %d files of -token-file", c.subjects, len(c.tokenFiles))}
	case c.pid != 0 && len(c.serverCmd) > 0:
		return nil, usageError{errors.New("-pid and -server-cmd exclude each other")}
	}
	if c.subjects == 0 {
		c.subjects = max(1, len(c.tokenFiles))
	}
	if c.greeterd == "" {
		c.greeterd = "greeterd"
		if len(c.serverCmd) > 0 {
			c.greeterd = c.serverCmd[0]
		}
	}
	return c, nil
}

// kind is one kind of operation a user performs.
type kind int

const (
	kindHello kind = iota
	kindUpload
	kindDownload
	// kindDelete removes a user's oldest file once it keeps more than -keep;
	// it is housekeeping, not part of -mix.
	kindDelete
	numKinds
)

var kindNames = [numKinds]string{"hello", "upload", "download", "delete"}

func (k kind) String() string { return kindNames[k] }

// mix holds the relative weights of hello, upload and download.
type mix struct {
	weights [kindDelete]int
	total   int
}

// parseMix parses "hello=70,upload=15,download=15". Kinds left out weigh 0.
func parseMix(s string) (mix, error) {
	var m mix
	seen := map[string]bool{}
	for part := range strings.SplitSeq(s, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return m, fmt.Errorf("-mix %q: want KIND=WEIGHT,... with KIND hello, upload or download", s)
		}
		name = strings.TrimSpace(name)
		w, err := strconv.Atoi(strings.TrimSpace(val))
		if err != nil || w < 0 {
			return m, fmt.Errorf("-mix %q: weight of %s must be a non-negative integer", s, name)
		}
		k := -1
		for i, n := range kindNames[:kindDelete] {
			if n == name {
				k = i
			}
		}
		if k < 0 {
			return m, fmt.Errorf("-mix %q: unknown kind %q (want hello, upload or download)", s, name)
		}
		if seen[name] {
			return m, fmt.Errorf("-mix %q: %s given twice", s, name)
		}
		seen[name] = true
		m.weights[k] = w
		m.total += w
	}
	if m.total == 0 {
		return m, fmt.Errorf("-mix %q: the weights add up to 0", s)
	}
	if m.weights[kindDownload] > 0 && m.weights[kindUpload] == 0 {
		return m, fmt.Errorf("-mix %q: downloads need uploads (users download only files they uploaded)", s)
	}
	return m, nil
}

// pick draws a kind according to the weights.
func (m mix) pick(r *rand.Rand) kind {
	n := r.IntN(m.total)
	for k, w := range m.weights {
		if n < w {
			return kind(k)
		}
		n -= w
	}
	panic("unreachable: weights add up to total")
}

func (m mix) String() string {
	var parts []string
	for k, w := range m.weights {
		parts = append(parts, fmt.Sprintf("%s=%d", kind(k), w))
	}
	return strings.Join(parts, ",")
}

// sizeDist is the distribution of upload sizes.
type sizeDist struct {
	spec string
	// Either a uniform range [lo, hi] (lo == hi for a fixed size) ...
	lo, hi int64
	// ... or weighted sizes.
	sizes   []int64
	weights []int
	total   int
}

// parseSizeDist parses "256KiB", "4KiB-1MiB" or "4KiB=50,256KiB=40,4MiB=10".
func parseSizeDist(s string) (sizeDist, error) {
	d := sizeDist{spec: s}
	switch {
	case strings.Contains(s, "="):
		for part := range strings.SplitSeq(s, ",") {
			sz, w, ok := strings.Cut(strings.TrimSpace(part), "=")
			if !ok {
				return d, fmt.Errorf("-size %q: want SIZE=WEIGHT,...", s)
			}
			n, err := envflag.ParseSize(sz)
			if err != nil {
				return d, fmt.Errorf("-size: %v", err)
			}
			wt, err := strconv.Atoi(strings.TrimSpace(w))
			if err != nil || wt < 0 {
				return d, fmt.Errorf("-size %q: weight of %s must be a non-negative integer", s, sz)
			}
			d.sizes = append(d.sizes, int64(n))
			d.weights = append(d.weights, wt)
			d.total += wt
		}
		if d.total == 0 {
			return d, fmt.Errorf("-size %q: the weights add up to 0", s)
		}
	case strings.Contains(s, "-"):
		lo, hi, _ := strings.Cut(s, "-")
		l, err := envflag.ParseSize(lo)
		if err != nil {
			return d, fmt.Errorf("-size: %v", err)
		}
		h, err := envflag.ParseSize(hi)
		if err != nil {
			return d, fmt.Errorf("-size: %v", err)
		}
		if h < l {
			return d, fmt.Errorf("-size %q: the range is empty", s)
		}
		d.lo, d.hi = int64(l), int64(h)
	default:
		n, err := envflag.ParseSize(s)
		if err != nil {
			return d, fmt.Errorf("-size: %v", err)
		}
		d.lo, d.hi = int64(n), int64(n)
	}
	return d, nil
}

// pick draws an upload size.
func (d sizeDist) pick(r *rand.Rand) int64 {
	if d.total == 0 {
		return d.lo + r.Int64N(d.hi-d.lo+1)
	}
	n := r.IntN(d.total)
	for i, w := range d.weights {
		if n < w {
			return d.sizes[i]
		}
		n -= w
	}
	panic("unreachable: weights add up to total")
}

func (d sizeDist) String() string { return d.spec }
