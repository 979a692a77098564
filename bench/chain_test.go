package bench

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"syscall"
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
	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/diskstore"
	"github.com/greeter/greeter/telemetry"
)

// The chain benchmarks compare two servers in one process, over loopback
// TLS 1.3 with the dev PKI (client certificate requested and presented, as
// the greeter CLI does with --state-dir), with the same transport limits:
//
//   - on: greeterd's chain as cmd/greeterd builds it, every plugin on:
//     recovery, logging (an access-log line per RPC to a file), the per-peer
//     limit, JWT authentication (Ed25519 dev key, verified-token cache),
//     authorization, the per-identity limits, and the telemetry stats
//     handler with tracing on (every span sampled, batched, exported to a
//     discarding exporter) and metrics; the service gets the tracer and the
//     transfer metrics too. Rate limits are on but high enough never to
//     throttle.
//   - off: the same service with no interceptor, no stats handler, no
//     tracer and no metrics.
//
// Both get the same bearer token. Calls to the two alternate in short
// phases, so that whatever else the machine is doing hits both alike. The
// profile labels side=server|client and chain=on|off separate the
// goroutines in a -cpuprofile:
//
//	go test -run '^$' -bench Chain -benchmem -cpuprofile cpu.out ./bench
//	go tool pprof -top -tagfocus side=server -tagfocus chain=on bench.test cpu.out

// callers is the number of concurrent SayHello callers.
const callers = 64

// chainTransferSize is the file moved by BenchmarkChainTransfer.
const chainTransferSize = 64 << 20

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
	// logging is the access log: one line per RPC to a file, through the
	// telemetry log handler.
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
func chainOnOptions(tb testing.TB, dev *certs.DevFiles, p plugins, lim limits) ([]grpc.ServerOption, service.Options) {
	ctx := context.Background()
	tel, err := telemetry.Setup(ctx, telemetry.Config{ServiceName: "greeterd", SpanExporter: discardExporter{}, Sampler: sdktrace.AlwaysSample()})
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
		log = slog.New(telemetry.NewLogHandler(slog.NewTextHandler(logFile, nil)))
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
}

func newChainEnv(tb testing.TB, setup chainSetup) *chainEnv {
	dev, serverTLS, clientTLS := devPKI(tb)
	onOpts, onSvc := chainOnOptions(tb, dev, setup.plugins, setup.onLimits)
	offOpts, offSvc := []grpc.ServerOption(nil), service.Options{DefaultOwner: "bench"}
	if setup.offPlugins != (plugins{}) {
		offOpts, offSvc = chainOnOptions(tb, dev, setup.offPlugins, setup.offLimits)
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
		{"on", onOpts, onSvc, setup.onServerOptions, setup.onDialOptions, setup.onStoreOptions, &e.on},
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

// phase is what one measured phase cost: wall time, process CPU time and
// heap allocations (client and server together).
type phase struct {
	wall, cpu time.Duration
	mallocs   uint64
	n         int
}

func (p *phase) add(q phase) {
	p.wall += q.wall
	p.cpu += q.cpu
	p.mallocs += q.mallocs
	p.n += q.n
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measurePhase runs fn, labelled side=client and chain=name, and returns
// what it cost.
func measurePhase(name string, n int, fn func(ctx context.Context)) phase {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m0, c0, t0 := ms.Mallocs, processCPU(), time.Now()
	pprof.Do(context.Background(), pprof.Labels("side", "client", "chain", name), fn)
	wall, cpu := time.Since(t0), processCPU()-c0
	runtime.ReadMemStats(&ms)
	return phase{wall: wall, cpu: cpu, mallocs: ms.Mallocs - m0, n: n}
}

// hellos makes n SayHello calls on c from callers goroutines.
func hellos(tb testing.TB, ctx context.Context, c *client.Client, n int) {
	var (
		next atomic.Int64
		wg   sync.WaitGroup
		once sync.Once
	)
	for range callers {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				if _, err := c.Greeter().SayHello(ctx, &pb.HelloRequest{Name: "bench", Age: 42}); err != nil {
					once.Do(func() { tb.Error(err) })
					return
				}
			}
		})
	}
	wg.Wait()
}

// reportOnOff reports both sides' rates, their ratio (on/off, higher is
// better, 1 means the chain is free) and the chain's cost in percent, and
// sets ns/op to the chain-on side's time per op.
func reportOnOff(b *testing.B, unit string, scale float64, on, off phase) {
	b.StopTimer()
	onRate, offRate := scale*float64(on.n)/on.wall.Seconds(), scale*float64(off.n)/off.wall.Seconds()
	b.ReportMetric(onRate, "on-"+unit)
	b.ReportMetric(offRate, "off-"+unit)
	b.ReportMetric(onRate/offRate, "ratio")
	b.ReportMetric(100*(1-onRate/offRate), "cost-%")
	// CPU time of the whole process (client and server) per op, and heap
	// allocations per op, for each side.
	b.ReportMetric(float64(on.cpu.Nanoseconds())/float64(on.n), "on-cpu-ns/op")
	b.ReportMetric(float64(off.cpu.Nanoseconds())/float64(off.n), "off-cpu-ns/op")
	b.ReportMetric(float64(on.mallocs)/float64(on.n), "on-allocs/op")
	b.ReportMetric(float64(off.mallocs)/float64(off.n), "off-allocs/op")
	b.ReportMetric(float64(on.wall.Nanoseconds())/float64(on.n), "ns/op")
}

// BenchmarkChainUnary measures SayHello requests per second with 64
// concurrent callers on one connection, greeterd's whole chain on against
// no chain. b.N calls go to each server, in alternating phases of up to
// 2000 calls. ns/op is the chain-on side's; the built-in B/op and allocs/op
// cover both sides, client and server (see on-allocs/op and off-allocs/op).
func BenchmarkChainUnary(b *testing.B) {
	benchUnary(b, chainSetup{plugins: allPlugins})
}

// BenchmarkChainUnaryPlugin is BenchmarkChainUnary with one plugin at a
// time (and recovery) on the chain-on server, to see what each costs.
func BenchmarkChainUnaryPlugin(b *testing.B) {
	for _, bm := range []struct {
		name string
		p    plugins
	}{
		{"logging", plugins{logging: true}},
		{"ratelimit", plugins{ratelimit: true}},
		{"auth", plugins{auth: true}},
		{"telemetry", plugins{telemetry: true}},
	} {
		b.Run("plugin="+bm.name, func(b *testing.B) { benchUnary(b, chainSetup{plugins: bm.p}) })
	}
}

func benchUnary(b *testing.B, setup chainSetup) {
	e := newChainEnv(b, setup)
	const phaseCalls = 2000
	var on, off phase
	b.ResetTimer()
	for done, i := 0, 0; done < b.N; i++ {
		n := min(phaseCalls, b.N-done)
		run := func(name string, c *client.Client) phase {
			return measurePhase(name, n, func(ctx context.Context) { hellos(b, ctx, c, n) })
		}
		if i%2 == 0 {
			on.add(run("on", e.on))
			off.add(run("off", e.off))
		} else {
			off.add(run("off", e.off))
			on.add(run("on", e.on))
		}
		done += n
	}
	reportOnOff(b, "rps", 1, on, off)
}

// BenchmarkChainTransfer uploads (and downloads) a 64 MiB file with the
// greeter client, as the CLI does (resumable upload: SHA-256 first, then
// QueryUpload and the stream; download verified and fsynced), alternating
// chain on and chain off each iteration.
func BenchmarkChainTransfer(b *testing.B) {
	for _, op := range []string{"upload", "download"} {
		b.Run("op="+op, func(b *testing.B) {
			benchTransfer(b, op, chainSetup{plugins: allPlugins, payload: chainTransferSize})
		})
	}
}

func benchTransfer(b *testing.B, op string, setup chainSetup) {
	e := newChainEnv(b, setup)
	do := e.transfer(b, op)
	var on, off phase
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%2 == 0 {
			on.add(measurePhase("on", 1, do(e.on)))
			off.add(measurePhase("off", 1, do(e.off)))
		} else {
			off.add(measurePhase("off", 1, do(e.off)))
			on.add(measurePhase("on", 1, do(e.on)))
		}
	}
	reportOnOff(b, "MB/s", float64(setup.payload)/1e6, on, off)
}

// transfer returns one transfer of op ("upload" or "download") with a
// client; for downloads it first puts the file on both servers.
func (e *chainEnv) transfer(b *testing.B, op string) func(c *client.Client) func(ctx context.Context) {
	do := func(c *client.Client) func(ctx context.Context) {
		return func(ctx context.Context) {
			var err error
			if op == "upload" {
				_, err = c.UploadFile(ctx, e.payload, "f.bin", nil)
			} else {
				_, err = c.DownloadFile(ctx, "f.bin", e.out, nil)
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	if op == "download" {
		for _, c := range []*client.Client{e.on, e.off} {
			if _, err := c.UploadFile(context.Background(), e.payload, "f.bin", nil); err != nil {
				b.Fatal(err)
			}
		}
	}
	return do
}

// TestChainServersAgree checks the benchmark's two servers answer alike, so
// the benchmarks compare like with like.
func TestChainServersAgree(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two TLS servers")
	}
	e := newChainEnv(t, chainSetup{plugins: allPlugins, payload: 1 << 20})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, c := range []*client.Client{e.on, e.off} {
		got, err := c.Hello(ctx, "bench", 42)
		if err != nil {
			t.Fatal(err)
		}
		if want := "Hello, bench! Your age is 42"; got != want {
			t.Errorf("got %q, want %q", got, want)
		}
		up, err := c.UploadFile(ctx, e.payload, "f.bin", nil)
		if err != nil {
			t.Fatal(err)
		}
		down, err := c.DownloadFile(ctx, "f.bin", e.out, nil)
		if err != nil {
			t.Fatal(err)
		}
		if up.SHA256 != down.SHA256 || down.Size != 1<<20 {
			t.Errorf("got upload %s, download %s (%d bytes), want the same digest and %d bytes", up.SHA256, down.SHA256, down.Size, 1<<20)
		}
	}
}
