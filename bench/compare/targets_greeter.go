package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"time"
)

// greeterConfig describes one greeterd instance and how the CLI talks to it.
type greeterConfig struct {
	name string
	// auth is "jwt" (the dev-mode default) or "none".
	auth string
	// limits keeps the rate limits on (with --rate-transfer 1000 so one
	// transfer per round is never throttled); false switches every limit
	// off.
	limits bool
	// tracing exports spans as Harness.traces says; false sets
	// OTEL_TRACES_EXPORTER=none.
	tracing bool
	// metrics serves /metrics on a loopback port (never scraped).
	metrics bool
	// chunk is the server's --chunk-size and the CLI's --chunk-size; zero
	// keeps both defaults.
	chunk int64
	// s3, if set, makes greeterd store in a bucket (--storage s3) instead
	// of its data directory.
	s3 *s3Backend
}

// s3Backend is the bucket greeterd stores in with --storage s3.
type s3Backend struct {
	endpoint string // https://127.0.0.1:port
	bucket   string
	region   string
	ca       string // PEM file of the CA that signed the server's certificate
	// accessKey and secretKey go to greeterd as AWS_ACCESS_KEY_ID and
	// AWS_SECRET_ACCESS_KEY, never on its command line.
	accessKey, secretKey string
	// partSize is --s3-part-size; zero keeps greeterd's default.
	partSize int64
}

// args returns greeterd's storage flags for the bucket.
func (b *s3Backend) args() []string {
	argv := []string{"--storage", "s3", "--s3-endpoint", b.endpoint, "--s3-bucket", b.bucket,
		"--s3-region", b.region, "--s3-ca", b.ca, "--s3-path-style"}
	if b.partSize > 0 {
		argv = append(argv, "--s3-part-size", strconv.FormatInt(b.partSize, 10))
	}
	return argv
}

// env returns the credentials' environment variables.
func (b *s3Backend) env() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + b.accessKey, "AWS_SECRET_ACCESS_KEY=" + b.secretKey}
}

// chainOn is greeterd as users run it in dev mode, with every plugin on.
func chainOn(name string, chunk int64) greeterConfig {
	return greeterConfig{name: name, auth: "jwt", limits: true, tracing: true, metrics: true, chunk: chunk}
}

// chainOff is greeterd with every plugin that can be switched off switched
// off. Recovery and logging are always on in greeterd.
func chainOff(name string) greeterConfig {
	return greeterConfig{name: name, auth: "none"}
}

type greeterTarget struct {
	cfg      greeterConfig
	cli      string
	addr     string
	stateDir string
	proc     *process
}

func (t *greeterTarget) Name() string     { return t.cfg.name }
func (t *greeterTarget) Server() *process { return t.proc }

func (t *greeterTarget) args(cmd ...string) []string {
	argv := []string{t.cli, "--addr", t.addr, "--state-dir", t.stateDir, "--json"}
	if t.cfg.chunk > 0 {
		argv = append(argv, "--chunk-size", strconv.FormatInt(t.cfg.chunk, 10))
	}
	return append(argv, cmd...)
}

func (t *greeterTarget) Upload(src, object string) []string {
	return t.args("upload", src, "--as", object)
}

func (t *greeterTarget) Download(object, dst string) []string {
	return t.args("download", object, "-o", dst)
}

func (t *greeterTarget) Remove(ctx context.Context, object string) error {
	return run(ctx, cleanEnv(), t.args("rm", object)...)
}

// greeterdArgv is greeterd's command line for cfg: its own state
// directory, listening on addr, storing in dataDir or, with cfg.s3, in the
// bucket; metricsAddr, if not empty, serves /metrics.
func greeterdArgv(bin, stateDir, dataDir, addr, metricsAddr string, maxFile int64, cfg greeterConfig) []string {
	argv := []string{bin, "--state-dir", stateDir}
	if cfg.s3 != nil {
		argv = append(argv, cfg.s3.args()...)
	} else {
		argv = append(argv, "--data-dir", dataDir)
	}
	argv = append(argv, "--listen", addr,
		"--max-file-size", strconv.FormatInt(maxFile, 10),
		"--auth", cfg.auth,
	)
	if cfg.chunk > 0 {
		argv = append(argv, "--chunk-size", strconv.FormatInt(cfg.chunk, 10))
	}
	if cfg.limits {
		argv = append(argv, "--rate-transfer", "1000", "--rate-transfer-burst", "1000")
	} else {
		argv = append(argv, "--rate-peer", "-1", "--rate-unary", "-1", "--rate-transfer", "-1",
			"--max-transfers-per-identity", "-1")
	}
	if metricsAddr != "" {
		argv = append(argv, "--metrics-listen", metricsAddr)
	}
	return argv
}

// greeterdEnv is greeterd's environment for cfg: traces as tracesEnv says
// (or off), and the bucket's credentials with cfg.s3.
func greeterdEnv(cfg greeterConfig, tracesEnv []string) []string {
	var extra []string
	if cfg.tracing {
		extra = append(extra, tracesEnv...)
	} else {
		extra = append(extra, "OTEL_TRACES_EXPORTER=none")
	}
	if cfg.s3 != nil {
		extra = append(extra, cfg.s3.env()...)
	}
	return cleanEnv(extra...)
}

// startGreeterd starts greeterd in dev mode (TLS 1.3, dev PKI, JWT keys and
// a dev token in its own state directory) with the plugins cfg asks for.
func (h *harness) startGreeterd(ctx context.Context, cfg greeterConfig) (*greeterTarget, error) {
	slug := slug(cfg.name)
	state, err := mkdir(h.work, "greeterd-"+slug)
	if err != nil {
		return nil, err
	}
	data := ""
	if cfg.s3 == nil {
		if data, err = mkdir(h.serverDir, "greeterd-"+slug); err != nil {
			return nil, err
		}
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	metrics := ""
	if cfg.metrics {
		mport, err := freePort()
		if err != nil {
			return nil, err
		}
		metrics = "127.0.0.1:" + strconv.Itoa(mport)
	}
	argv := greeterdArgv(filepath.Join(h.bin, "greeterd"), state, data, addr, metrics, max(h.opts.size, h.opts.rssSize, 1<<30), cfg)
	env := greeterdEnv(cfg, h.tracesEnv())
	profileDir := ""
	if h.prof != nil {
		if profileDir, err = h.prof.serverDir(h.mode + " " + cfg.name); err != nil {
			return nil, err
		}
		env = append(env, profileEnv+"="+profileDir)
	}
	p, err := startProcess(cfg.name, filepath.Join(h.work, "greeterd-"+slug+".log"), env, h.serverArgv(argv...)...)
	if err != nil {
		return nil, err
	}
	h.onClose(func() { p.stop(10 * time.Second) })
	if h.prof != nil {
		h.prof.register(p, profileDir)
	}
	if err := waitTCP(ctx, p, addr, 30*time.Second); err != nil {
		return nil, err
	}
	t := &greeterTarget{cfg: cfg, cli: filepath.Join(h.bin, "greeter"), addr: addr, stateDir: state, proc: p}
	// The dev token is written before greeterd listens; check it works.
	if err := run(ctx, cleanEnv(), t.args("hello", "--name", "bench")...); err != nil {
		return nil, fmt.Errorf("%s: greeter hello: %w", cfg.name, err)
	}
	return t, nil
}

// greeterS3Bucket is the bucket greeter-s3 stores in, on the MinIO of the
// minio target, next to that target's bucket.
const greeterS3Bucket = "greeterd"

// s3Config is the greeter-s3 target: greeterd as users run it in dev mode
// (chainOn), storing in the bucket b.
func s3Config(chunk int64, b *s3Backend) greeterConfig {
	cfg := chainOn(targetGreeterS3, chunk)
	cfg.s3 = b
	return cfg
}

// startGreeterS3 starts greeterd with --storage s3 on the MinIO of the
// minio target (starting it if it is not running yet), in a bucket of its
// own.
func (h *harness) startGreeterS3(ctx context.Context) (*greeterTarget, error) {
	m, err := h.startMinIO(ctx)
	if err != nil {
		return nil, err
	}
	if err := m.makeBucket(ctx, greeterS3Bucket); err != nil {
		return nil, err
	}
	return h.startGreeterd(ctx, s3Config(h.opts.chunk, m.backend(greeterS3Bucket, h.opts.s3PartSize)))
}
