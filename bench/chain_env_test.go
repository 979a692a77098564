package bench

import (
	"cmp"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/pprof"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/greeter/greeter/certs"
	"github.com/greeter/greeter/client"
	"github.com/greeter/greeter/coordination"
	"github.com/greeter/greeter/middleware"
	"github.com/greeter/greeter/middleware/auth"
	"github.com/greeter/greeter/middleware/authz"
	"github.com/greeter/greeter/middleware/logging"
	"github.com/greeter/greeter/middleware/ratelimit"
	"github.com/greeter/greeter/middleware/recovery"
	"github.com/greeter/greeter/middleware/standard"
	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/diskstore"
	"github.com/greeter/greeter/telemetry"
)

// chainEnv is a chain-on and a chain-off server and a client of each.
type chainEnv struct {
	on, off *client.Client
	payload string
	out     string
}

// hardening returns the transport limits greeterd applies whatever the
// chain (cmd/greeterd, limitsConfig.serverOptions with its defaults).
func hardening() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxConcurrentStreams(100),
		grpc.MaxRecvMsgSize(2 << 20),
		grpc.MaxSendMsgSize(2 << 20),
		grpc.MaxHeaderListSize(16 << 10),
		grpc.ConnectionTimeout(10 * time.Second),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: time.Minute, Timeout: 20 * time.Second, MaxConnectionIdle: 5 * time.Minute}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 20 * time.Second}),
	}
}

// discardExporter drops finished spans after the SDK batched them.
type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }

// devPKI creates a dev PKI and returns it with the server and client TLS
// configurations greeterd and the greeter CLI build from it.
func devPKI(tb testing.TB) (*certs.DevFiles, *tls.Config, *tls.Config) {
	dev, err := certs.InitDev(tb.TempDir(), certs.DevOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	serverTLS, reloader, err := certs.ServerConfig(certs.ServerOptions{
		CertFile: dev.ServerCert, KeyFile: dev.ServerKey,
		ClientCAFile: dev.CA, ClientAuth: certs.ClientAuthRequest,
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { reloader.Close() })
	clientTLS, err := certs.ClientConfig(certs.ClientOptions{CAFile: dev.CA, CertFile: dev.ClientCert, KeyFile: dev.ClientKey})
	if err != nil {
		tb.Fatal(err)
	}
	return dev, serverTLS, clientTLS
}

// plugins selects what the chain-on server runs besides recovery, which is
// always on in greeterd.
type plugins struct {
	// logging is the access log: one line per RPC to a file, through a
	// telemetry.LogBuffer and the telemetry log handler, as greeterd logs.
	logging bool
	// ratelimit is the per-peer and per-identity limiter.
	ratelimit bool
	// auth is JWT authentication and authorization.
	auth bool
	// telemetry is the stats handler (a span per RPC, every one sampled,
	// and the RPC metrics) and the service's own tracer and transfer
	// metrics.
	telemetry bool
}

// allPlugins is greeterd's chain, built with standard.Chain as greeterd
// builds it.
var allPlugins = plugins{logging: true, ratelimit: true, auth: true, telemetry: true}

// limits is where a chain keeps its per-identity limits, and the bandwidth
// limit it applies.
type limits struct {
	// shared is ratelimit.Options.Limits; nil keeps the limits in-process.
	shared coordination.Limits
	// bandwidth is bytes per second per identity; zero is greeterd's
	// default, unlimited.
	bandwidth int64
}

// chainOnOptions builds the chain p selects, with lim, and returns its
// server options and the service options that go with it.
func chainOnOptions(tb testing.TB, dev *certs.DevFiles, p plugins, lim limits, sampler sdktrace.Sampler) ([]grpc.ServerOption, service.Options) {
	ctx := context.Background()
	if sampler == nil {
		sampler = sdktrace.AlwaysSample()
	}
	tel, err := telemetry.Setup(ctx, telemetry.Config{ServiceName: "greeterd", SpanExporter: discardExporter{}, Sampler: sampler})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { tel.Shutdown(context.Background()) })
	metrics, err := telemetry.NewMetrics(tel.MeterProvider(), nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { metrics.Close() })
	log := slog.New(slog.DiscardHandler)
	if p.logging {
		logFile, err := os.Create(filepath.Join(tb.TempDir(), "access.log"))
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { logFile.Close() })
		// As greeterd logs: formatted and written by a LogBuffer.
		buf, h := telemetry.NewLogBuffer(logFile, telemetry.DefaultLogFlushInterval, func(w io.Writer) slog.Handler {
			return telemetry.NewLogHandler(slog.NewTextHandler(w, nil))
		})
		tb.Cleanup(func() { buf.Close() }) // before the file closes
		log = slog.New(h)
	}
	authn, err := auth.New(ctx, auth.Config{
		PublicKeyFiles:  []string{dev.JWTPublicKey},
		Issuer:          "greeterd",
		Audience:        []string{"greeter"},
		PeerCertificate: certs.PeerCertificate,
		Logger:          log,
		OnResult:        func(context.Context, string) {},
	})
	if err != nil {
		tb.Fatal(err)
	}
	high := ratelimit.Rate{PerSecond: 1e9, Burst: 1 << 30}
	bandwidth := lim.bandwidth
	if bandwidth == 0 {
		bandwidth = -1 // greeterd's default: unlimited
	}
	limiter := ratelimit.New(ratelimit.Options{
		PerPeer: high, Unary: high, Transfer: high,
		MaxConcurrentTransfers: 1 << 20,
		Bandwidth:              bandwidth,
		Limits:                 lim.shared,
		OnReject:               func(ctx context.Context, reason string) { metrics.RateLimited(ctx, telemetry.RateLimitReason(reason)) },
	})
	svc := service.Options{Logger: log}
	if p.telemetry {
		svc.Tracer = tel.TracerProvider().Tracer(telemetry.ScopeName)
		svc.OnTransfer = metrics.OnTransfer
	}
	var chain *middleware.Chain
	if p == allPlugins {
		chain = standard.Chain(standard.Config{Logger: log, Auth: authn.Plugin(), Limiter: limiter})
	} else {
		list := []middleware.Plugin{recovery.New(recovery.Options{Logger: log})}
		if p.logging {
			list = append(list, logging.New(logging.Options{Logger: log}))
		}
		if p.ratelimit {
			list = append(list, limiter.PerPeer())
		}
		if p.auth {
			list = append(list, authn.Plugin(), authz.New(authz.Options{}))
		} else {
			svc.DefaultOwner = "bench"
		}
		if p.ratelimit {
			list = append(list, limiter.PerIdentity())
		}
		chain = middleware.NewChain(list...)
	}
	opts := chain.ServerOptions()
	if p.telemetry {
		opts = append(opts, grpc.StatsHandler(telemetry.ServerHandler(tel)))
	}
	return opts, svc
}

// devToken mints a token as "greeterd token" does, with every scope.
func devToken(tb testing.TB, dev *certs.DevFiles) string {
	key, err := os.ReadFile(dev.JWTSigningKey)
	if err != nil {
		tb.Fatal(err)
	}
	tok, err := auth.MintPEM(key, auth.MintOptions{
		Subject: "bench", Scopes: authz.AllScopes(), Issuer: "greeterd", Audience: []string{"greeter"}, TTL: time.Hour,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// startLabelled serves srv on a loopback listener from a goroutine carrying
// the profile labels side=server and chain=name; the goroutines grpc starts
// for connections and calls inherit them.
func startLabelled(tb testing.TB, srv *grpc.Server, name string) string {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	go pprof.Do(context.Background(), pprof.Labels("side", "server", "chain", name), func(context.Context) {
		srv.Serve(lis)
	})
	tb.Cleanup(srv.Stop)
	return lis.Addr().String()
}

// dialLabelled returns a client whose connection goroutines carry the
// labels side=client and chain=name.
func dialLabelled(tb testing.TB, addr, name string, opts client.Options) *client.Client {
	var (
		c   *client.Client
		err error
	)
	pprof.Do(context.Background(), pprof.Labels("side", "client", "chain", name), func(ctx context.Context) {
		c, err = client.New(addr, opts)
		if err == nil {
			// Connect now, from this goroutine, so the transport's
			// goroutines inherit the labels.
			_, err = c.Hello(ctx, "warm-up", 1)
		}
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// chainSetup describes a chainEnv.
type chainSetup struct {
	// plugins is what the chain-on server runs.
	plugins plugins
	// offPlugins is what the chain-off server runs; the zero value means no
	// chain, no stats handler and no service telemetry at all. Setting it
	// turns the pair into an A/B test of onServerOptions and onDialOptions.
	offPlugins plugins
	// payload is the size of the file to move; zero for none.
	payload int64
	// onServerOptions and onDialOptions are added to the chain-on server
	// and its client only, to try transport settings.
	onServerOptions []grpc.ServerOption
	onDialOptions   []grpc.DialOption
	// onStoreOptions open the chain-on server's store.
	onStoreOptions []diskstore.Option
	// onLimits and offLimits are the limits of each side's chain.
	onLimits, offLimits limits
	// sampler is the chain-on server's root sampler; nil samples every
	// span. The chain-off server, when it has a chain, samples every span.
	sampler sdktrace.Sampler
	// onLabel is the chain-on side's profile label; empty means "on".
	onLabel string
}

func newChainEnv(tb testing.TB, setup chainSetup) *chainEnv {
	dev, serverTLS, clientTLS := devPKI(tb)
	onOpts, onSvc := chainOnOptions(tb, dev, setup.plugins, setup.onLimits, setup.sampler)
	offOpts, offSvc := []grpc.ServerOption(nil), service.Options{DefaultOwner: "bench"}
	if setup.offPlugins != (plugins{}) {
		offOpts, offSvc = chainOnOptions(tb, dev, setup.offPlugins, setup.offLimits, nil)
	}
	e := &chainEnv{}
	for _, side := range []struct {
		name  string
		opts  []grpc.ServerOption
		svc   service.Options
		extra []grpc.ServerOption
		dial  []grpc.DialOption
		store []diskstore.Option
		dst   **client.Client
	}{
		{cmp.Or(setup.onLabel, "on"), onOpts, onSvc, setup.onServerOptions, setup.onDialOptions, setup.onStoreOptions, &e.on},
		{"off", offOpts, offSvc, nil, nil, nil, &e.off},
	} {
		store, err := diskstore.Open(tb.TempDir(), side.store...)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { store.Close() })
		opts := append([]grpc.ServerOption{grpc.Creds(credentials.NewTLS(serverTLS))}, side.opts...)
		opts = append(append(opts, hardening()...), side.extra...)
		srv := grpc.NewServer(opts...)
		side.svc.MaxFileSize = max(setup.payload, 1)
		service.New(store, side.svc).Register(srv)
		addr := startLabelled(tb, srv, side.name)
		*side.dst = dialLabelled(tb, addr, side.name, client.Options{
			TLS: clientTLS, PerRPC: client.BearerToken(devToken(tb, dev)), DialOptions: side.dial,
		})
	}
	if setup.payload > 0 {
		e.payload = filepath.Join(tb.TempDir(), "payload.bin")
		writeRandom(tb, e.payload, setup.payload)
		e.out = filepath.Join(tb.TempDir(), "out.bin")
	}
	return e
}

func writeRandom(tb testing.TB, path string, size int64) {
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	var x uint64 = 0x9e3779b97f4a7c15
	for left := size; left > 0; left -= int64(len(buf)) {
		for i := 0; i+8 <= len(buf); i += 8 {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			buf[i], buf[i+1], buf[i+2], buf[i+3] = byte(x), byte(x>>8), byte(x>>16), byte(x>>24)
			buf[i+4], buf[i+5], buf[i+6], buf[i+7] = byte(x>>32), byte(x>>40), byte(x>>48), byte(x>>56)
		}
		if _, err := f.Write(buf[:min(left, int64(len(buf)))]); err != nil {
			tb.Fatal(err)
		}
	}
}
