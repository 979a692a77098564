package redislimit

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/greeter/greeter/coordination"
	"github.com/greeter/greeter/internal/redistest"
)

// The log messages of an outage and of the recovery.
const (
	outage    = `msg="redis unreachable`
	recovered = `msg="redis answers again`
)

func TestRedisOutageFailsOpenAndRecovers(t *testing.T) {
	srv := redistest.Start(t)
	o := Options{ProbeInterval: 100 * time.Millisecond, LeaseTTL: time.Second}
	a, b := newReplica(t, srv, o), newReplica(t, srv, o)
	ctx := context.Background()
	limit := coordination.Limit{PerSecond: 5, Burst: 5}
	release, ok := a.Acquire(ctx, "transfers:alice", 1)
	if !ok {
		t.Fatal("slot before the outage: refused")
	}
	defer release()

	srv.Kill()
	admitted, took := burstOfCalls([]*replica{a, b}, "unary:alice", limit, 60)
	if admitted < 10 {
		t.Errorf("60 calls over two replicas with Redis down: %d admitted, want at least 10 (each replica's own burst of 5)", admitted)
	}
	if took > 2*time.Second {
		t.Errorf("60 calls with Redis down took %v: an outage must not stall calls", took)
	}
	if err := b.Wait(ctx, "bytes:alice", coordination.Limit{PerSecond: 1 << 30, Burst: 4 << 20}, 1<<20); err != nil {
		t.Errorf("bandwidth with Redis down: %v", err)
	}
	if rel, ok := b.Acquire(ctx, "transfers:bob", 1); !ok {
		t.Error("slot with Redis down: refused, want the local counter's answer")
	} else {
		rel()
	}
	for name, r := range map[string]*replica{"a": a, "b": b} {
		if got := r.log.Count(outage); got != 1 {
			t.Errorf("replica %s logged the outage %d times, want once", name, got)
		}
		if r.fallbacks.Load() == 0 {
			t.Errorf("replica %s counted no fallback", name)
		}
	}

	srv.Restart()
	redistest.Eventually(t, 10*time.Second, "recovery logged by both replicas", func() bool {
		return a.log.Count(recovered) == 1 && b.log.Count(recovered) == 1
	})
	// Redis came back empty; a's slot, still held, is written back.
	redistest.Eventually(t, 5*time.Second, "the held slot written back", func() bool {
		rel, ok := b.Acquire(ctx, "transfers:alice", 1)
		if ok {
			rel()
		}
		return !ok
	})
	fallbacks := a.fallbacks.Load() + b.fallbacks.Load()
	admitted, took = burstOfCalls([]*replica{a, b}, "unary:carol", limit, 60)
	if most := 5 + int(took.Seconds()*limit.PerSecond+0.999); admitted < 5 || admitted > most || admitted >= 10 {
		t.Errorf("after recovery, 60 calls over two replicas: %d admitted, want 5 to %d (shared again)", admitted, most)
	}
	if got := a.fallbacks.Load() + b.fallbacks.Load(); got != fallbacks {
		t.Errorf("fallbacks after recovery: %d more, want none", got-fallbacks)
	}
	for name, r := range map[string]*replica{"a": a, "b": b} {
		if got := r.log.Count("level=WARN"); got != 1 || r.log.Count(recovered) != 1 {
			t.Errorf("replica %s logged %d warnings and %d recoveries over one outage, want 1 and 1", name, got, r.log.Count(recovered))
		}
	}
}

// blackHole accepts connections and never answers, like a Redis behind a
// dead network path.
func blackHole(t *testing.T) string {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		lis.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return lis.Addr().String()
}

func TestUnansweredRedisCostsOneTimeout(t *testing.T) {
	const timeout = 100 * time.Millisecond
	rdb := redis.NewClient(Tune(&redis.Options{Addr: blackHole(t)}))
	defer rdb.Close()
	rt := redistest.CountRoundTrips(rdb)
	l := New(rdb, coordination.NewLocal(coordination.LocalOptions{}), Options{Timeout: timeout, ProbeInterval: time.Hour})
	defer l.Close()
	limit := coordination.Limit{PerSecond: 5, Burst: 5}
	start := time.Now()
	if ok, _ := l.Allow(context.Background(), "k", limit); !ok {
		t.Error("first call with Redis silent: refused, want the local bucket's answer")
	}
	if took := time.Since(start); took > 10*timeout {
		t.Errorf("first call with Redis silent took %v, want about the %v timeout", took, timeout)
	}
	tried := rt.Load()
	for range 100 {
		l.Allow(context.Background(), "k", limit)
		l.Acquire(context.Background(), "slots", 1)
	}
	if got := rt.Load() - tried; got != 0 {
		t.Errorf("calls to Redis while the breaker is open: got %d, want 0", got)
	}
}
