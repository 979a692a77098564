package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/grpc"

	"github.com/greeter/greeter/client"
	"github.com/greeter/greeter/internal/envflag"
	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/telemetry"
)

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

// register adds the connection flags to fs with their current values as
// defaults, so flags given before the command survive a second FlagSet.
func (c *connection) register(fs *flag.FlagSet) {
	fs.StringVar(&c.addr, "addr", c.addr, "server address host:port, replicas host:port,host:port,... or dns:///name:port")
	fs.StringVar(&c.stateDir, "state-dir", c.stateDir, "dev state directory written by greeterd")
	fs.StringVar(&c.ca, "ca", c.ca, "CA bundle verifying the server")
	fs.StringVar(&c.cert, "cert", c.cert, "client certificate for mutual TLS")
	fs.StringVar(&c.key, "key", c.key, "client key for mutual TLS")
	fs.StringVar(&c.serverName, "server-name", c.serverName, "server name to verify")
	fs.StringVar(&c.token, "token", c.token, "bearer token")
	fs.StringVar(&c.tokenFile, "token-file", c.tokenFile, "file holding the bearer token")
	fs.BoolVar(&c.plaintext, "plaintext", c.plaintext, "connect without TLS")
	fs.BoolVar(&c.json, "json", c.json, "print JSON")
	fs.DurationVar(&c.timeout, "timeout", c.timeout, "deadline for non-transfer calls")
	fs.Var(&c.chunkSize, "chunk-size", "bytes per upload message")
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parse parses args into fs allowing flags after positional arguments
// ("upload FILE --as NAME"); "--" ends flag parsing. The positional
// arguments end up in fs.Args().
func parse(fs *flag.FlagSet, args []string) error {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if err == flag.ErrHelp {
				return err
			}
			return usageError{err}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			positional = append(positional, rest...)
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
	return fs.Parse(append([]string{"--"}, positional...))
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	conn := connection{addr: "localhost:50051", timeout: 30 * time.Second, chunkSize: client.DefaultChunkSize}
	top := newFlagSet("greeter", stderr)
	top.Usage = func() { fmt.Fprint(stderr, usage) }
	conn.register(top)
	if err := top.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return usageError{err}
	}
	if top.NArg() == 0 {
		fmt.Fprint(stderr, usage)
		return usageError{fmt.Errorf("a command is required")}
	}
	cmd, rest := top.Arg(0), top.Args()[1:]
	if cmd == "help" {
		fmt.Fprint(stdout, usage)
		return nil
	}
	fs := newFlagSet("greeter "+cmd, stderr)
	conn.register(fs)
	out := &output{w: stdout, stderr: stderr}
	var runCmd func(context.Context, *client.Client) error
	switch cmd {
	case "hello":
		name := fs.String("name", "you", "name to greet")
		age := fs.Int("age", 0, "age to mention")
		runCmd = func(ctx context.Context, c *client.Client) error {
			ctx, cancel := context.WithTimeout(ctx, conn.timeout)
			defer cancel()
			msg, err := c.Hello(ctx, *name, int32(*age))
			if err != nil {
				return err
			}
			return out.print(map[string]any{"message": msg}, msg)
		}
	case "upload":
		as := fs.String("as", "", "name to store a single file under, or with -r or a directory the prefix of every name")
		recursive := fs.Bool("r", false, "upload directories recursively, --as being the prefix of every name")
		var tf transferFlags
		tf.register(fs)
		var pf preconditionFlags
		pf.register(fs)
		runCmd = func(ctx context.Context, c *client.Client) error {
			if err := tf.check(); err != nil {
				return err
			}
			jobs, single, err := uploadJobs(fs.Args(), *as, *recursive)
			if err != nil {
				return err
			}
			pre, err := pf.options(len(jobs))
			if err != nil {
				return err
			}
			opts := append(tf.options(), pre...)
			outcomes := runJobs(ctx, jobs, tf.jobs, out.progress(len(jobs)), func(ctx context.Context, j job, p client.Progress) (client.Result, error) {
				return c.UploadFile(ctx, j.path, j.name, p, opts...)
			})
			return report(out, "upload", outcomes, single, func(o outcome) string {
				return fmt.Sprintf("uploaded %s: %d bytes, sha256 %s", o.res.Name, o.res.Size, o.res.SHA256)
			})
		}
	case "download":
		dest := fs.String("o", "", "where to write the file, or the directory for several (default: base names in the current directory)")
		var tf transferFlags
		tf.register(fs)
		runCmd = func(ctx context.Context, c *client.Client) error {
			if err := tf.check(); err != nil {
				return err
			}
			jobs, err := downloadJobs(fs.Args(), *dest)
			if err != nil {
				return err
			}
			opts := tf.options()
			outcomes := runJobs(ctx, jobs, tf.jobs, out.progress(len(jobs)), func(ctx context.Context, j job, p client.Progress) (client.Result, error) {
				return c.DownloadFile(ctx, j.name, j.path, p, opts...)
			})
			return report(out, "download", outcomes, len(jobs) == 1, func(o outcome) string {
				return fmt.Sprintf("downloaded %s to %s: %d bytes, sha256 %s", o.res.Name, o.path, o.res.Size, o.res.SHA256)
			})
		}
	case "ls":
		runCmd = func(ctx context.Context, c *client.Client) error {
			if fs.NArg() > 1 {
				return usageError{fmt.Errorf("ls takes at most one PREFIX")}
			}
			ctx, cancel := context.WithTimeout(ctx, conn.timeout)
			defer cancel()
			files, err := c.List(ctx, fs.Arg(0))
			if err != nil {
				return err
			}
			var text strings.Builder
			rows := make([]map[string]any, len(files))
			for i, f := range files {
				rows[i] = fileJSON(f)
				fmt.Fprintf(&text, "%12d  %s  %s\n", f.GetSize(), f.GetModified().AsTime().Local().Format(time.DateTime), f.GetName())
			}
			return out.print(rows, strings.TrimSuffix(text.String(), "\n"))
		}
	case "stat":
		runCmd = func(ctx context.Context, c *client.Client) error {
			if fs.NArg() != 1 {
				return usageError{fmt.Errorf("stat takes one NAME")}
			}
			ctx, cancel := context.WithTimeout(ctx, conn.timeout)
			defer cancel()
			f, err := c.Stat(ctx, fs.Arg(0))
			if err != nil {
				return err
			}
			return out.print(fileJSON(f), fmt.Sprintf("name:     %s\nsize:     %d\nsha256:   %s\nmodified: %s",
				f.GetName(), f.GetSize(), f.GetSha256(), f.GetModified().AsTime().Local().Format(time.RFC3339)))
		}
	case "usage":
		runCmd = func(ctx context.Context, c *client.Client) error {
			if fs.NArg() != 0 {
				return usageError{fmt.Errorf("usage takes no arguments")}
			}
			ctx, cancel := context.WithTimeout(ctx, conn.timeout)
			defer cancel()
			u, err := c.Usage(ctx)
			if err != nil {
				return err
			}
			return out.print(usageJSON(u), usageText(u))
		}
	case "rm":
		runCmd = func(ctx context.Context, c *client.Client) error {
			if fs.NArg() != 1 {
				return usageError{fmt.Errorf("rm takes one NAME")}
			}
			ctx, cancel := context.WithTimeout(ctx, conn.timeout)
			defer cancel()
			if err := c.Delete(ctx, fs.Arg(0)); err != nil {
				return err
			}
			return out.print(map[string]any{"deleted": fs.Arg(0)}, "deleted "+fs.Arg(0))
		}
	default:
		fmt.Fprint(stderr, usage)
		return usageError{fmt.Errorf("unknown command %q", cmd)}
	}
	if err := parse(fs, rest); err != nil {
		return err
	}
	if err := envflag.Apply(mergedFlags(top, fs), getenv, ""); err != nil {
		return usageError{err}
	}
	out.json = conn.json
	out.interactive = !conn.json && isTerminal(stderr)
	opts, err := conn.clientOptions()
	if err != nil {
		return err
	}
	// Tracing is off unless OTEL_TRACES_EXPORTER (or the OTLP variables'
	// exporter) says otherwise; then the client span and its W3C trace
	// context join the server's trace.
	tel, err := telemetry.Setup(ctx, telemetry.Config{ServiceName: "greeter", SampleRatio: 1}) // every command, unless OTEL_TRACES_SAMPLER[_ARG] says otherwise
	if err != nil {
		return usageError{fmt.Errorf("telemetry: %v", err)}
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		tel.Shutdown(sctx)
	}()
	opts.DialOptions = append(opts.DialOptions, grpc.WithStatsHandler(telemetry.ClientHandler(tel)))
	c, err := client.New(conn.addr, opts)
	if err != nil {
		return usageError{fmt.Errorf("--addr: %w", err)}
	}
	defer c.Close()
	return runCmd(ctx, c)
}

// mergedFlags returns fs with the flags set on top marked as set, so that
// envflag does not override a flag given before the command.
func mergedFlags(top, fs *flag.FlagSet) *flag.FlagSet {
	top.Visit(func(f *flag.Flag) {
		if g := fs.Lookup(f.Name); g != nil {
			_ = fs.Set(f.Name, f.Value.String())
		}
	})
	return fs
}

func fileJSON(f *pb.FileInfo) map[string]any {
	return map[string]any{
		"name":     f.GetName(),
		"size":     f.GetSize(),
		"sha256":   f.GetSha256(),
		"modified": f.GetModified().AsTime().UTC().Format(time.RFC3339Nano),
	}
}

// output prints results as text or, with --json, as one JSON document.
type output struct {
	w           io.Writer
	stderr      io.Writer
	json        bool
	interactive bool // draw progress bars on stderr
}

func (o *output) print(v any, text string) error {
	if o.json {
		enc := json.NewEncoder(o.w)
		return enc.Encode(v)
	}
	if text == "" {
		return nil
	}
	_, err := fmt.Fprintln(o.w, text)
	return err
}
