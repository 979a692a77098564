package bench

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/greeter/greeter/certs"
	"github.com/greeter/greeter/client"
	"github.com/greeter/greeter/coordination"
	"github.com/greeter/greeter/coordination/redislimit"
	"github.com/greeter/greeter/internal/redistest"
	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/diskstore"
)

// The shared-limit benchmarks compare greeterd's whole chain with its
// per-identity limits in a real redis-server on loopback (on, as with
// --redis-url) against the same chain with the limits in process (off),
// in alternating phases as the chain benchmarks do. They need redis-server
// (apt-get install redis-server). Several short runs, medians:
//
//	go test -run '^$' -bench 'SharedLimitsUnary' -benchtime 20000x -count 5 ./bench
//	go test -run '^$' -bench 'SharedLimitsTransfer' -benchtime 4x -count 3 ./bench

// sharedLimits starts a redis-server and returns limits on it, closed when
// tb ends, the counter of their Redis round trips and the count of
// decisions that fell back to local because Redis did not answer in time.
func sharedLimits(tb testing.TB) (coordination.Limits, *redistest.RoundTrips, *atomic.Int64) {
	var fallbacks atomic.Int64
	l, rt := sharedLimitsOn(tb, redistest.Start(tb), &fallbacks)
	return l, rt, &fallbacks
}

// sharedLimitsOn returns limits on srv with a client of their own, as one
// greeterd replica has, closed when tb ends, and the counter of their
// Redis round trips; fallbacks counts their decisions made locally.
func sharedLimitsOn(tb testing.TB, srv *redistest.Server, fallbacks *atomic.Int64) (coordination.Limits, *redistest.RoundTrips) {
	rdb := srv.Client(tb)
	rt := redistest.CountRoundTrips(rdb)
	l := redislimit.New(rdb, coordination.NewLocal(coordination.LocalOptions{}), redislimit.Options{
		// Not greeterd's 100 ms: on a loaded machine a slow answer would
		// fail open to the local limiter and flatter the on side. A run
		// whose fallbacks are not 0 is not a measurement of Redis.
		Timeout:    time.Second,
		OnFallback: func(context.Context) { fallbacks.Add(1) },
	})
	tb.Cleanup(l.Close)
	if err := l.Ping(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return l, rt
}

// BenchmarkSharedLimitsUnary measures SayHello calls per second with 64
// concurrent callers of one identity through one replica (greeterd's whole
// chain) with its per-identity limits in Redis (on), as with --redis-url,
// against one with its limits in process (off): ratio on/off, and cost-%,
// what Redis costs. redis-rt/op is Redis round trips per call: concurrent
// calls of one identity share one, and fast callers spend tokens leased in
// small blocks without one.
func BenchmarkSharedLimitsUnary(b *testing.B) {
	srv := redistest.Start(b)
	dev, serverTLS, clientTLS := devPKI(b)
	var fallbacks atomic.Int64
	shared, rt := sharedLimitsOn(b, srv, &fallbacks)
	opts := client.Options{TLS: clientTLS, PerRPC: client.BearerToken(devToken(b, dev))}
	on := dialLabelled(b, serveChain(b, dev, serverTLS, limits{shared: shared}, "on"), "on", opts)
	off := dialLabelled(b, serveChain(b, dev, serverTLS, limits{}, "off"), "off", opts)
	unaryOnOff(b, on, off, rt.Load, &fallbacks)
}

// BenchmarkSharedLimitsUnaryReplicas is BenchmarkSharedLimitsUnary with
// the on side as the issue states it: three replicas (three servers, each
// with its own Redis client, as three greeterd with --redis-url) sharing
// their limits in Redis (limits=redis), the client balancing over them as
// the CLI does with --addr a,b,c; the off side is one replica with local
// limits. limits=local runs the same three replicas with local limits:
// what three replicas cost or save on this machine without Redis, so the
// difference of the two cost-% is what Redis costs three replicas.
func BenchmarkSharedLimitsUnaryReplicas(b *testing.B) {
	for _, shared := range []bool{true, false} {
		b.Run(map[bool]string{true: "limits=redis", false: "limits=local"}[shared], func(b *testing.B) {
			srv := redistest.Start(b)
			dev, serverTLS, clientTLS := devPKI(b)
			var (
				addrs     []string
				rts       []*redistest.RoundTrips
				fallbacks atomic.Int64
			)
			for i := range 3 {
				lim := limits{}
				if shared {
					l, rt := sharedLimitsOn(b, srv, &fallbacks)
					lim.shared = l
					rts = append(rts, rt)
				}
				addrs = append(addrs, serveChain(b, dev, serverTLS, lim, fmt.Sprintf("on%d", i)))
			}
			opts := client.Options{TLS: clientTLS, PerRPC: client.BearerToken(devToken(b, dev))}
			on := dialLabelled(b, strings.Join(addrs, ","), "on", opts)
			off := dialLabelled(b, serveChain(b, dev, serverTLS, limits{}, "off"), "off", opts)
			unaryOnOff(b, on, off, func() (n int64) {
				for _, rt := range rts {
					n += rt.Load()
				}
				return n
			}, &fallbacks)
		})
	}
}

// unaryOnOff runs b.N hellos on each side in alternating phases and
// reports rates, round trips per on-side call and fallbacks.
func unaryOnOff(b *testing.B, on, off *client.Client, roundTrips func() int64, fallbacks *atomic.Int64) {
	before := roundTrips()
	const phaseCalls = 2000
	var onP, offP phase
	b.ResetTimer()
	for done, i := 0, 0; done < b.N; i++ {
		n := min(phaseCalls, b.N-done)
		onPhase := func() phase {
			return measurePhase("on", n, func(ctx context.Context) { hellos(b, ctx, on, n) })
		}
		offPhase := func() phase {
			return measurePhase("off", n, func(ctx context.Context) { hellos(b, ctx, off, n) })
		}
		if i%2 == 0 {
			onP.add(onPhase())
			offP.add(offPhase())
		} else {
			offP.add(offPhase())
			onP.add(onPhase())
		}
		done += n
	}
	b.ReportMetric(float64(roundTrips()-before)/float64(onP.n), "redis-rt/op")
	b.ReportMetric(float64(fallbacks.Load()), "fallbacks")
	reportOnOff(b, "rps", 1, onP, offP)
}

// serveChain serves greeterd's whole chain with lim on a disk store, over
// TLS, with a health service that reports SERVING, and returns its
// address.
func serveChain(tb testing.TB, dev *certs.DevFiles, serverTLS *tls.Config, lim limits, name string) string {
	chainOpts, svc := chainOnOptions(tb, dev, allPlugins, lim, nil)
	store, err := diskstore.Open(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { store.Close() })
	opts := append([]grpc.ServerOption{grpc.Creds(credentials.NewTLS(serverTLS))}, chainOpts...)
	s := grpc.NewServer(append(opts, hardening()...)...)
	svc.MaxFileSize = 1
	service.New(store, svc).Register(s)
	healthpb.RegisterHealthServer(s, health.NewServer()) // the client's health checks ask it
	return startLabelled(tb, s, name)
}

// BenchmarkSharedLimitsTransfer uploads (and downloads) 64 MiB as the CLI
// does, with a bandwidth limit of 10 GiB/s per identity (on by default burst
// 4 MiB, never reached on loopback, so the cost measured is the limiter's),
// leased from Redis in blocks against spent from an in-process bucket. It
// reports Redis round trips per GiB moved: the blocks, and the few calls
// each transfer makes (QueryUpload, the transfer-start rate, the slot lease
// and its release).
func BenchmarkSharedLimitsTransfer(b *testing.B) {
	const bandwidth = 10 << 30
	for _, op := range []string{"upload", "download"} {
		b.Run("op="+op, func(b *testing.B) {
			shared, rt, fallbacks := sharedLimits(b)
			setup := chainSetup{
				plugins: allPlugins, offPlugins: allPlugins, payload: chainTransferSize,
				onLimits:  limits{shared: shared, bandwidth: bandwidth},
				offLimits: limits{bandwidth: bandwidth},
			}
			e := newChainEnv(b, setup)
			do := e.transfer(b, op)
			before := rt.Load()
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
			gib := float64(b.N) * chainTransferSize / (1 << 30)
			b.ReportMetric(float64(rt.Load()-before)/gib, "redis-rt/GiB")
			b.ReportMetric(float64(fallbacks.Load()), "fallbacks")
			reportOnOff(b, "MB/s", chainTransferSize/1e6, on, off)
		})
	}
}
