package bench

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/greeter/greeter/coordination"
	"github.com/greeter/greeter/coordination/redislimit"
	"github.com/greeter/greeter/internal/redistest"
)

// The shared-limit benchmarks compare greeterd's whole chain with its
// per-identity limits in a real redis-server on loopback (on, as with
// --redis-url) against the same chain with the limits in process (off),
// in alternating phases as the chain benchmarks do. Both need redis-server
// (apt-get install redis-server):
//
//	go test -run '^$' -bench SharedLimits -benchtime 20000x ./bench

// sharedLimits starts a redis-server and returns limits on it, closed when
// tb ends, the counter of their Redis round trips and the count of
// decisions that fell back to local because Redis did not answer in time.
func sharedLimits(tb testing.TB) (coordination.Limits, *redistest.RoundTrips, *atomic.Int64) {
	srv := redistest.Start(tb)
	rdb := srv.Client(tb)
	rt := redistest.CountRoundTrips(rdb)
	var fallbacks atomic.Int64
	l := redislimit.New(rdb, coordination.NewLocal(coordination.LocalOptions{}), redislimit.Options{
		OnFallback: func(context.Context) { fallbacks.Add(1) },
	})
	tb.Cleanup(l.Close)
	if err := l.Ping(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return l, rt, &fallbacks
}

// BenchmarkSharedLimitsUnary measures SayHello calls per second with 64
// concurrent callers, per-identity limits in Redis against in process
// (ratio on/off; cost-% is what Redis costs). Each call makes one Redis
// round trip (redis-rt/op).
func BenchmarkSharedLimitsUnary(b *testing.B) {
	shared, rt, fallbacks := sharedLimits(b)
	e := newChainEnv(b, chainSetup{
		plugins: allPlugins, offPlugins: allPlugins,
		onLimits: limits{shared: shared},
	})
	before := rt.Load()
	const phaseCalls = 2000
	var on, off phase
	b.ResetTimer()
	for done, i := 0, 0; done < b.N; i++ {
		n := min(phaseCalls, b.N-done)
		onPhase := func() phase {
			return measurePhase("on", n, func(ctx context.Context) { hellos(b, ctx, e.on, n) })
		}
		offPhase := func() phase {
			return measurePhase("off", n, func(ctx context.Context) { hellos(b, ctx, e.off, n) })
		}
		if i%2 == 0 {
			on.add(onPhase())
			off.add(offPhase())
		} else {
			off.add(offPhase())
			on.add(onPhase())
		}
		done += n
	}
	b.ReportMetric(float64(rt.Load()-before)/float64(on.n), "redis-rt/op")
	b.ReportMetric(float64(fallbacks.Load()), "fallbacks")
	reportOnOff(b, "rps", 1, on, off)
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
