// Command compare measures the greeter CLI against what users would run
// instead, file to file over loopback (issue 15): rsync over ssh, which
// verifies a whole-file checksum as greeter does; scp followed by sync of
// the written file, durable as greeter's commit; plain scp; curl (SigV4)
// to MinIO; and a raw TLS 1.3 sender and receiver (this command itself),
// the physical limit. Every ssh peer uses one cipher (aes128-gcm). It
// measures twice: pinned (every server on CPU 0, every client on CPU 1,
// with taskset: one core per side, as on two machines) and shared (both
// sides on every core), with fresh servers per mode, and prints a table per
// mode and the verdict against each of the targets. With
// -targets greeter-nochain it also compares greeterd with every plugin that
// can be switched off switched off (issue 8). With -s3 it measures
// greeterd storing on MinIO (--storage s3) against curl straight to the
// same MinIO (issue 13).
//
//	go run ./bench/compare                                  # issue 15: both modes, 1 GiB, 5 rounds, the 4 GiB RSS transfer
//	go run ./bench/compare -size 256MiB -rounds 2 -rss-size 0   # a quick look
//	go run ./bench/compare -s3 -size 1GiB -rounds 3
//	go run ./bench/compare -sweep -csv sweep.csv -chart docs/throughput.png
//	go run ./bench/compare -plot sweep.csv -chart docs/throughput.png
//	go run ./bench/compare -size 256MiB -rounds 3 -targets greeter -cpuprofile /tmp/prof
//
// It installs what is missing (openssh-server, openssh-client, rsync and
// curl with apt-get update and install; MinIO with go install into a cache directory, unless the tests'
// MinIO is in $GREETER_MINIO or .bin), builds greeterd and greeter from
// this module, and starts every server on 127.0.0.1 with private ports,
// keys and certificates. Rounds are interleaved: in each
// round every target uploads the same file, then every target downloads
// it, in an order rotated from round to round. Every downloaded file is
// checked against the source's SHA-256 after the timed run; the greeter CLI
// also verifies SHA-256 end to end inside its timed run, the baselines do
// not. The report gives medians, ratios, client and server CPU time, and
// greeterd's peak RSS (VmHWM) per transfer. Everything the run starts is
// stopped and everything it writes is removed when it ends.
//
// It is not part of go test ./... and needs Linux (/proc).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/greeter/greeter/internal/envflag"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ok, err := runTLSPeer(ctx, os.Args[1:])
	if !ok {
		err = runCompare(ctx, os.Args[1:])
	}
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "compare: %v\n", err)
		os.Exit(1)
	}
}

// options are the command's flags.
type options struct {
	size      int64
	rounds    int
	targets   []string
	chunk     int64
	fileDir   string
	serverDir string
	traces    string
	sweep     bool
	csvPath   string
	chartPath string
	plotFrom  string
	cacheDir  string
	keep      bool
	timeout   time.Duration
	profile   string
	// s3 selects the issue 13 comparison: greeterd on MinIO against curl
	// to the same MinIO.
	s3 bool
	// s3PartSize is greeterd's --s3-part-size; zero keeps its default.
	s3PartSize int64
	// modes are modePinned and/or modeShared, run in this order.
	modes []string
	// rssSize, if positive, is the size of one more upload and download
	// by the greeter target in the first mode, for greeterd's peak RSS.
	rssSize int64
}

// Target names.
const (
	targetGreeter = "greeter"         // greeterd with the whole chain on
	targetNoChain = "greeter-nochain" // greeterd with the plugins off
	targetSCP     = "scp"
	targetSCPSync = "scp-sync" // scp, then sync of the written file
	targetRsync   = "rsync"    // rsync -e ssh
	targetTLS     = "tls"      // the raw TLS peer
	targetMinIO   = "minio"
	// targetGreeterS3 is greeterd, every plugin on, storing in a bucket of
	// the MinIO that the minio target talks to (--storage s3).
	targetGreeterS3 = "greeter-s3"
)

func parseFlags(args []string) (options, error) {
	o := options{}
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	size := envflag.Size(1 << 30)
	fs.Var(&size, "size", "size of the file moved (1GiB; 256MiB with -sweep)")
	fs.IntVar(&o.rounds, "rounds", 5, "interleaved rounds (3 with -sweep)")
	targets := fs.String("targets", "greeter,rsync,scp-sync,scp,minio,tls", "targets to run, comma-separated (also greeter-nochain, greeter-s3)")
	modes := fs.String("modes", "pinned,shared", "pinned (servers on CPU 0, clients on CPU 1) and/or shared (every core); shared only with -s3 and -sweep")
	rss := envflag.Size(4 << 30)
	fs.Var(&rss, "rss-size", "one more greeter upload and download of this size in the first mode, for greeterd's peak RSS (0: none; none with -s3 and -sweep)")
	chunk := envflag.Size(0)
	fs.Var(&chunk, "chunk", "greeter chunk size, client and server (0: the defaults, 256KiB)")
	fs.StringVar(&o.fileDir, "file-dir", "", "where the source file and downloads go (default /dev/shm if it has room, else the temp dir)")
	fs.StringVar(&o.serverDir, "server-dir", "", "where the servers store files (default the temp dir)")
	fs.StringVar(&o.traces, "traces", "down", "greeterd's span export: down (OTLP to a closed port), jaeger (a private Jaeger from .bin) or none")
	fs.BoolVar(&o.sweep, "sweep", false, "measure greeter by chunk size and by plugin instead (for the chart), with scp and minio for reference")
	fs.StringVar(&o.csvPath, "csv", "", "write every measured transfer to this CSV file")
	fs.StringVar(&o.chartPath, "chart", "", "render the chart to this PNG file (by mode and tool; with -sweep by chunk size and plugin)")
	fs.StringVar(&o.plotFrom, "plot", "", "render -chart from this CSV file written by -sweep -csv, and measure nothing")
	cache, _ := os.UserCacheDir()
	fs.StringVar(&o.cacheDir, "cache", cache+"/greeter-bench", "where MinIO is installed when neither $GREETER_MINIO nor the module's .bin/minio (the tests' MinIO) exists")
	fs.StringVar(&o.profile, "cpuprofile", "", "profile greeterd and greeter (built with a profiling overlay) and write per-transfer CPU profiles and pprof -top reports to this directory")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directories and logs (servers are stopped anyway)")
	fs.DurationVar(&o.timeout, "timeout", 45*time.Minute, "give up after this long")
	fs.BoolVar(&o.s3, "s3", false, "compare greeterd on MinIO (--storage s3) with curl --aws-sigv4 straight to the same MinIO (issue 13): -targets greeter-s3,minio and 3 rounds unless given")
	partSize := envflag.Size(0)
	fs.Var(&partSize, "s3-part-size", "greeterd's --s3-part-size for greeter-s3 (0: greeterd's default, 16MiB)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	o.size, o.chunk, o.s3PartSize, o.rssSize = int64(size), int64(chunk), int64(partSize), int64(rss)
	if (o.s3 || o.sweep) && !set["modes"] {
		*modes = modeShared
	}
	if (o.s3 || o.sweep) && !set["rss-size"] {
		o.rssSize = 0
	}
	for _, m := range strings.Split(*modes, ",") {
		switch m = strings.TrimSpace(m); m {
		case modePinned, modeShared:
			if !slices.Contains(o.modes, m) {
				o.modes = append(o.modes, m)
			}
		case "":
		default:
			return o, fmt.Errorf("-modes: unknown mode %q", m)
		}
	}
	if o.s3 && !set["targets"] {
		*targets = targetGreeterS3 + "," + targetMinIO
	}
	if o.s3 && !set["rounds"] {
		o.rounds = 3
	}
	if o.sweep && !set["size"] {
		o.size = 256 << 20
	}
	if o.sweep && !set["rounds"] {
		o.rounds = 3
	}
	for _, t := range strings.Split(*targets, ",") {
		switch t = strings.TrimSpace(t); t {
		case targetGreeter, targetNoChain, targetSCP, targetSCPSync, targetRsync, targetTLS, targetMinIO, targetGreeterS3:
			o.targets = append(o.targets, t)
		case "":
		default:
			return o, fmt.Errorf("-targets: unknown target %q", t)
		}
	}
	switch {
	case o.size < 1<<20:
		return o, fmt.Errorf("-size must be at least 1MiB")
	case o.rounds < 1:
		return o, fmt.Errorf("-rounds must be at least 1")
	case len(o.targets) == 0 && !o.sweep:
		return o, fmt.Errorf("-targets: none selected")
	case len(o.modes) == 0:
		return o, fmt.Errorf("-modes: none selected")
	case o.rssSize != 0 && o.rssSize < 1<<20:
		return o, fmt.Errorf("-rss-size must be 0 or at least 1MiB")
	case o.traces != "down" && o.traces != "jaeger" && o.traces != "none":
		return o, fmt.Errorf("-traces must be down, jaeger or none")
	case o.plotFrom != "" && o.chartPath == "":
		return o, fmt.Errorf("-plot needs -chart")
	case o.s3 && o.sweep:
		return o, fmt.Errorf("-s3 and -sweep measure different things: choose one")
	case o.s3PartSize != 0 && (o.s3PartSize < 5<<20 || o.s3PartSize > 5<<30):
		return o, fmt.Errorf("-s3-part-size must be between 5MiB and 5GiB (S3's limits)")
	}
	return o, nil
}

func runCompare(ctx context.Context, args []string) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	if o.plotFrom != "" {
		samples, err := readCSV(o.plotFrom)
		if err != nil {
			return err
		}
		return renderAnyChart(o.chartPath, samples)
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	h, err := newHarness(ctx, o)
	if err != nil {
		return err
	}
	defer h.close()

	samples, targetNames, err := h.measureModes(ctx, func(m *harness) ([]target, error) {
		if o.sweep {
			return m.startSweepTargets(ctx)
		}
		return m.startTargets(ctx)
	})
	if o.csvPath != "" && len(samples) > 0 {
		if werr := writeCSV(o.csvPath, samples); werr != nil && err == nil {
			err = werr
		}
	}
	if err != nil {
		return err
	}
	h.describe(os.Stdout)
	if h.prof != nil {
		if err := h.prof.report(ctx, h); err != nil {
			return err
		}
	}
	if o.sweep {
		printSweep(os.Stdout, samples, targetNames)
		if o.chartPath != "" {
			if err := renderChart(o.chartPath, samples); err != nil {
				return err
			}
			fmt.Printf("\nchart written to %s\n", o.chartPath)
		}
		return nil
	}
	printReport(os.Stdout, samples, targetNames, o.size)
	if o.chartPath != "" {
		if err := renderModesChart(o.chartPath, samples); err != nil {
			return err
		}
		fmt.Printf("\nchart written to %s\n", o.chartPath)
	}
	return nil
}

func names(targets []target) []string {
	out := make([]string, len(targets))
	for i, t := range targets {
		out[i] = t.Name()
	}
	return out
}

// startTargets starts the servers of the selected targets.
func (h *harness) startTargets(ctx context.Context) ([]target, error) {
	var out []target
	for _, name := range h.opts.targets {
		var (
			t   target
			err error
		)
		switch name {
		case targetGreeter:
			t, err = h.startGreeterd(ctx, chainOn(targetGreeter, h.opts.chunk))
		case targetNoChain:
			cfg := chainOff(targetNoChain)
			cfg.chunk = h.opts.chunk
			t, err = h.startGreeterd(ctx, cfg)
		case targetSCP, targetSCPSync, targetRsync:
			t, err = h.startSSHPeer(ctx, name)
		case targetTLS:
			t, err = h.startTLSPeer(ctx)
		case targetMinIO:
			t, err = h.startMinIO(ctx)
		case targetGreeterS3:
			t, err = h.startGreeterS3(ctx)
		}
		if err != nil {
			return nil, err
		}
		h.logf("started %s (pid %d, %s)", name, t.Server().pid(), h.mode)
		out = append(out, t)
	}
	return out, nil
}

// Sweep targets: greeterd by chunk size with every plugin on, and by plugin
// at the default chunk size.
var (
	sweepChunks   = []int64{16 << 10, 64 << 10, 256 << 10, 1 << 20}
	sweepFeatures = []greeterConfig{
		{name: "plugins: none", auth: "none"},
		{name: "+rate limits", auth: "none", limits: true},
		{name: "+auth (JWT)", auth: "jwt"},
		{name: "+tracing", auth: "none", tracing: true},
	}
)

func chunkName(c int64) string {
	if c >= 1<<20 {
		return fmt.Sprintf("chunk %dMiB", c>>20)
	}
	return fmt.Sprintf("chunk %dKiB", c>>10)
}

func (h *harness) startSweepTargets(ctx context.Context) ([]target, error) {
	var out []target
	for _, c := range sweepChunks {
		t, err := h.startGreeterd(ctx, chainOn(chunkName(c), c))
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	for _, cfg := range sweepFeatures {
		t, err := h.startGreeterd(ctx, cfg)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	s, err := h.startSSHD(ctx)
	if err != nil {
		return nil, err
	}
	m, err := h.startMinIO(ctx)
	if err != nil {
		return nil, err
	}
	return append(out, s, m), nil
}
