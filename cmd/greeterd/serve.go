package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/greeter/greeter/internal/buildinfo"
	"github.com/greeter/greeter/internal/envflag"
	"github.com/greeter/greeter/proto/wire"
	"github.com/greeter/greeter/proto/wire/codec"
	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/telemetry"
)

// serveConfig is everything greeterd serve can be told.
type serveConfig struct {
	configFile      string
	listen          string
	dataDir         string
	stateDir        string
	maxFileSize     envflag.Size
	chunkSize       envflag.Size
	idleTimeout     time.Duration
	logFormat       string
	logLevel        string
	reflection      bool
	shutdownTimeout time.Duration
	drainDelay      time.Duration
	defaultOwner    string
	resumableTTL    time.Duration
	metricsListen   string
	telemetry       telemetryConfig

	health    healthConfig
	storage   storageConfig
	transport transportConfig
	chain     chainConfig
	limits    limitsConfig
	peers     peerConfig
	quota     quotaConfig
	redis     redisConfig
}

// limitsConfig holds the transport hardening knobs: stream, message and
// header limits, handshake timeout, keepalive and connection ages.
type limitsConfig struct {
	maxConcurrentStreams uint
	maxRecvMsgSize       envflag.Size
	maxSendMsgSize       envflag.Size
	maxHeaderListSize    envflag.Size
	connectionTimeout    time.Duration
	keepaliveMinTime     time.Duration
	keepaliveTime        time.Duration
	keepaliveTimeout     time.Duration
	maxConnectionIdle    time.Duration
	maxConnectionAge     time.Duration
	maxConnectionGrace   time.Duration
	streamWindow         envflag.Size
}

func serveFlags(c *serveConfig) *flag.FlagSet {
	fs := flag.NewFlagSet("greeterd", flag.ContinueOnError)
	fs.StringVar(&c.configFile, "config", "", "read settings from this file (\"name = value\" lines, names as flags)")
	fs.StringVar(&c.listen, "listen", "127.0.0.1:50051", "address to listen on")
	fs.StringVar(&c.dataDir, "data-dir", "", "where files are stored with --storage disk (default <state-dir>/data; ignored with --storage s3)")
	fs.StringVar(&c.stateDir, "state-dir", ".greeter", "dev mode state: dev PKI, JWT keys, dev token")
	c.maxFileSize = service.DefaultMaxFileSize
	fs.Var(&c.maxFileSize, "max-file-size", "largest file an upload may store")
	c.chunkSize = service.DefaultChunkSize
	fs.Var(&c.chunkSize, "chunk-size", "bytes per download message")
	fs.DurationVar(&c.idleTimeout, "idle-timeout", service.DefaultIdleTimeout, "end an upload that sends nothing, or a download whose client reads nothing, for this long")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.BoolVar(&c.reflection, "reflection", false, "serve gRPC server reflection (default: on in dev and plaintext mode, which listen on loopback only; --reflection=false turns it off)")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 30*time.Second, "on SIGTERM, after the drain delay, let in-flight calls finish for this long, then stop")
	fs.DurationVar(&c.drainDelay, "drain-delay", 2*time.Second, "on SIGTERM, report NOT_SERVING and keep serving this long before refusing new calls, so that clients move to other replicas (0: refuse at once)")
	fs.DurationVar(&c.resumableTTL, "resumable-ttl", service.DefaultResumableTTL, "incomplete resumable uploads are deleted after this long without progress")
	fs.StringVar(&c.defaultOwner, "default-owner", "anonymous", "owner of files when authentication is off")
	c.telemetry.flags(fs)
	fs.StringVar(&c.metricsListen, "metrics-listen", "", "serve Prometheus metrics on this address at /metrics (off when empty)")
	c.transport.flags(fs)
	c.chain.flags(fs)
	c.health.flags(fs)
	c.peers.flags(fs)
	c.quota.flags(fs)
	c.redis.flags(fs)
	c.storage.flags(fs)

	l := &c.limits
	fs.UintVar(&l.maxConcurrentStreams, "max-concurrent-streams", 100, "streams per connection")
	l.maxRecvMsgSize = 2 << 20
	fs.Var(&l.maxRecvMsgSize, "max-recv-msg-size", "largest message accepted (an upload chunk plus framing)")
	l.maxSendMsgSize = 2 << 20
	fs.Var(&l.maxSendMsgSize, "max-send-msg-size", "largest message sent")
	l.maxHeaderListSize = 16 << 10
	fs.Var(&l.maxHeaderListSize, "max-header-list-size", "largest header list accepted")
	fs.DurationVar(&l.connectionTimeout, "connection-timeout", 10*time.Second, "time allowed for a connection's TLS handshake")
	l.streamWindow = defaultStreamWindow
	fs.Var(&l.streamWindow, "stream-window", "HTTP/2 flow-control window per stream (and 4x per connection): bounds what a fast client can have buffered in greeterd; 0 lets gRPC size it from the measured bandwidth-delay product (up to 16 MiB)")
	fs.DurationVar(&l.keepaliveMinTime, "keepalive-min-time", 20*time.Second, "clients pinging more often than this are disconnected")
	fs.DurationVar(&l.keepaliveTime, "keepalive-time", 60*time.Second, "ping a client after this much silence (at least 1s)")
	fs.DurationVar(&l.keepaliveTimeout, "keepalive-timeout", 20*time.Second, "close a connection whose ping is unanswered for this long")
	fs.DurationVar(&l.maxConnectionIdle, "max-connection-idle", 5*time.Minute, "close connections without calls for this long")
	fs.DurationVar(&l.maxConnectionAge, "max-connection-age", defaultMaxConnectionAge, "close connections older than this, so that no stream is held forever (0: never)")
	fs.DurationVar(&l.maxConnectionGrace, "max-connection-age-grace", defaultMaxConnectionGrace, "after max-connection-age, let calls finish for this long, then close (0: forever)")
	return fs
}

// Connection ages: a connection (and every stream on it, such as a health
// Watch) is reclaimed within age + grace. The grace lets a transfer of a few
// GiB finish; a longer one resumes on a new connection anyway.
const (
	defaultMaxConnectionAge   = 30 * time.Minute
	defaultMaxConnectionGrace = 30 * time.Minute
)

// check reports settings out of range as usage errors.
func (l limitsConfig) check() error {
	if l.maxConnectionAge < 0 || l.maxConnectionGrace < 0 {
		return usageError{fmt.Errorf("--max-connection-age and --max-connection-age-grace must not be negative, got %v and %v", l.maxConnectionAge, l.maxConnectionGrace)}
	}
	return nil
}

func (l limitsConfig) serverOptions() []grpc.ServerOption {
	params := keepalive.ServerParameters{
		Time:              l.keepaliveTime,
		Timeout:           l.keepaliveTimeout,
		MaxConnectionIdle: l.maxConnectionIdle,
	}
	if l.maxConnectionAge > 0 {
		params.MaxConnectionAge = l.maxConnectionAge
		params.MaxConnectionAgeGrace = l.maxConnectionGrace
	}
	opts := []grpc.ServerOption{
		grpc.MaxConcurrentStreams(uint32(l.maxConcurrentStreams)),
		grpc.MaxRecvMsgSize(int(l.maxRecvMsgSize)),
		grpc.MaxSendMsgSize(int(l.maxSendMsgSize)),
		grpc.MaxHeaderListSize(uint32(l.maxHeaderListSize)),
		grpc.WriteBufferSize(256 << 10), grpc.SharedWriteBuffer(true),
		grpc.ConnectionTimeout(l.connectionTimeout),
		grpc.KeepaliveParams(params),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: l.keepaliveMinTime}),
	}
	if w := int32(min(int64(l.streamWindow), 1<<30)); w > 0 {
		// A fixed window turns off gRPC's BDP estimate, which grows windows
		// to 16 MiB when pings are slow, as they are on a busy server.
		opts = append(opts, grpc.InitialWindowSize(w), grpc.InitialConnWindowSize(4*w))
	}
	return opts
}

// defaultStreamWindow is a flow-control window that keeps loopback and LAN
// transfers at full speed (their bandwidth-delay product is far smaller)
// while bounding what one upload can have buffered in greeterd.
const defaultStreamWindow = 1 << 20

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	var c serveConfig
	fs := serveFlags(&c)
	fs.SetOutput(stderr)
	showVersion := fs.Bool("version", false, "print the version (module, VCS revision and time) and exit")
	fs.Usage = func() { fmt.Fprint(stderr, usage, "\nFlags:\n"); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if *showVersion { // before the environment is read: only the flag asks for it
		fmt.Fprint(stdout, buildinfo.String("greeterd"))
		return nil
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	cfgFile := c.configFile
	if cfgFile == "" {
		cfgFile = getenv(envflag.EnvName("config"))
	}
	if err := envflag.Apply(fs, getenv, cfgFile); err != nil {
		return usageError{err}
	}
	if err := checkDurations(fs); err != nil {
		return err
	}
	log, closeLog, err := newLogger(stderr, c.logFormat, c.logLevel)
	if err != nil {
		return err
	}
	defer closeLog() // deferred first, so it runs last: every record is written
	tel, err := c.telemetry.setup(ctx, fs, stdout, log)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := tel.Shutdown(sctx); err != nil {
			log.Warn("flushing telemetry failed", slog.Any("error", err))
		}
	}()
	if c.chunkSize <= 0 || int64(c.chunkSize)+1024 > int64(c.limits.maxSendMsgSize) {
		return usageError{fmt.Errorf("--chunk-size must be positive and at least 1KiB below --max-send-msg-size (%s)", &c.limits.maxSendMsgSize)}
	}
	if err := c.limits.check(); err != nil {
		return err
	}
	if err := c.peers.check(); err != nil {
		return err
	}
	if err := c.storage.check(fs); err != nil {
		return err
	}
	quotas, err := c.quota.load()
	if err != nil {
		return err
	}
	redisOpts, err := c.redis.options(getenv)
	if err != nil {
		return err
	}
	if c.dataDir == "" {
		c.dataDir = filepath.Join(c.stateDir, "data")
	}

	sec, err := c.transport.build(ctx, c.listen, c.stateDir, log)
	if err != nil {
		return err
	}
	defer sec.close()

	legacyOwnerKey, err := c.chain.legacyOwnerKey(sec)
	if err != nil {
		return err
	}
	coord := c.storage.coordination(redisOpts, log)
	defer coord.close() // deferred before store.Close, so it runs after
	store, storeAttrs, err := c.storage.open(ctx, storeDeps{dataDir: c.dataDir, legacyOwnerKey: legacyOwnerKey, quotas: quotas.For, log: log, coord: coord})
	if err != nil {
		return err
	}
	defer store.Close()
	cleanTemporaries(store, log) // before serving, so no stale temporary outlives start-up
	stopExpiry := expireUploads(ctx, store, c.resumableTTL, log)
	defer stopExpiry() // deferred after store.Close, so it runs first

	metrics, err := telemetry.NewMetrics(tel.MeterProvider(), sec.certExpiry)
	if err != nil {
		return err
	}
	defer metrics.Close()
	coord.countFallbacks(metrics)
	if scanner, ok := store.(usageScanner); ok { // the disk store; the S3 store counts an owner at its first use
		if err := metrics.ObserveStorage(scanner.UsageTotals); err != nil {
			return err
		}
		stopScan := scanUsage(ctx, scanner, log)
		defer stopScan() // deferred after store.Close, so it runs first
	}

	limits, closeLimits := c.redis.open(redisOpts, c.chain.limiterKeys, c.chain.limiterIdle, log, metrics)
	defer closeLimits() // after the server has stopped
	c.chain.limits = limits

	stats := telemetry.ServerHandler(tel, telemetry.WithFilter(isTraced))
	chain, err := c.chain.build(ctx, sec, stats, c.defaultOwner, log, metrics, &c.peers)
	if err != nil {
		return err
	}
	defer c.chain.close() // after the server has stopped: stops the key refresher
	log.Info("middleware chain", slog.String("order", strings.Join(chain.Names(), " → ")))

	// The transfer codec receives upload chunks with one copy into pooled
	// buffers and sends download chunks without a copy; every other
	// message goes through the proto codec as before.
	srvOpts := append(chain.ServerOptions(), c.limits.serverOptions()...)
	srv := grpc.NewServer(append(srvOpts, grpc.ForceServerCodecV2(codec.Codec{}))...)
	svc := service.New(store, service.Options{
		MaxFileSize:  int64(c.maxFileSize),
		ChunkSize:    int(c.chunkSize),
		IdleTimeout:  c.idleTimeout,
		DefaultOwner: c.chain.serviceDefaultOwner(sec, c.defaultOwner),
		Logger:       log,
		Tracer:       tel.TracerProvider().Tracer(telemetry.ScopeName),
		OnTransfer:   metrics.OnTransfer,
		ResumableTTL: c.resumableTTL,

		OnQuotaExceeded: metrics.QuotaExceeded,
	})
	svc.Register(srv)
	healthSrv := health.NewServer()
	healthpb.RegisterHealthServer(srv, healthSrv)
	stopHealth := watchStorage(ctx, store, healthSrv, c.health.interval, log, func(serving bool) {
		metrics.StorageServing(context.Background(), serving)
	})
	defer stopHealth()
	if reflectionOn(fs, c.reflection, sec.mode) {
		reflection.Register(srv)
	}

	if c.metricsListen != "" {
		stopMetrics, err := serveMetrics(c.metricsListen, tel.MetricsHandler(), log)
		if err != nil {
			return err
		}
		defer stopMetrics()
	}

	lis, err := net.Listen("tcp", c.listen)
	if err != nil {
		return err
	}
	lis = c.peers.listener(lis, c.chain.limiterKeys, func() {
		metrics.RateLimited(context.Background(), telemetry.RateLimitConcurrency)
	})
	if sec.hint != "" {
		wd, _ := os.Getwd()
		hint := connectHint(strings.ReplaceAll(sec.hint, "ADDR", lis.Addr().String()), exec.LookPath, wd)
		fmt.Fprintf(stdout, "greeterd is ready. Connect with:\n\n  %s\n\n", hint)
	}
	// Logged last: tests and scripts wait for this line.
	log.Info("greeterd listening", append([]any{slog.String("addr", lis.Addr().String()), slog.String("security", sec.mode)}, storeAttrs...)...)

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(lis) }()
	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}

	drain{health: healthSrv, stopWatch: stopHealth, delay: c.drainDelay, timeout: c.shutdownTimeout, log: log}.stop(srv)
	return nil
}

// isTraced keeps health checks out of traces and RPC metrics (load
// balancers poll them every few seconds) and keeps everything else in.
func isTraced(fullMethod string) bool {
	return !wire.IsHealth(fullMethod)
}

// serveMetrics serves Prometheus metrics at /metrics on addr and returns a
// func that stops it.
func serveMetrics(addr string, h http.Handler, log *slog.Logger) (func(), error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(lis)
	log.Info("metrics listening", slog.String("addr", lis.Addr().String()))
	return func() { srv.Close() }, nil
}
