package redislimit

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/greeter/greeter/coordination"
	"github.com/greeter/greeter/internal/redistest"
)

func TestMain(m *testing.M) {
	// go-redis logs each failed dial of the outage tests on its own;
	// the tests read what the breaker logs instead.
	redis.SetLogger(quiet{})
	goleak.VerifyTestMain(m)
}

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

// replica is one Limits standing for one greeterd replica: its own client,
// its own local fallback, and what it logged and counted.
type replica struct {
	*Limits
	rt        *redistest.RoundTrips
	log       *redistest.LogBuffer
	fallbacks atomic.Int64
}

// newReplica returns Limits on srv with o, closed when the test ends. A
// zero o.Timeout is 1 s: a loaded machine under -race can take longer than
// the default 100 ms, and a timeout would fail open and hide what a test
// checks.
func newReplica(t *testing.T, srv *redistest.Server, o Options) *replica {
	t.Helper()
	if o.Timeout == 0 {
		o.Timeout = time.Second
	}
	rdb := srv.Client(t)
	r := &replica{rt: redistest.CountRoundTrips(rdb), log: &redistest.LogBuffer{}}
	o.Logger = slog.New(slog.NewTextHandler(r.log, nil))
	o.OnFallback = func(context.Context) { r.fallbacks.Add(1) }
	r.Limits = New(rdb, coordination.NewLocal(coordination.LocalOptions{}), o)
	t.Cleanup(r.Close)
	if err := r.Ping(t.Context()); err != nil { // as greeterd does at start
		t.Fatal(err)
	}
	return r
}

// burstOfCalls makes n concurrent Allow calls for key, spread over the
// replicas in turn, and returns how many were admitted and how long the
// whole burst took.
func burstOfCalls(replicas []*replica, key string, limit coordination.Limit, n int) (int, time.Duration) {
	var admitted atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		wg.Go(func() {
			if ok, _ := replicas[i%len(replicas)].Allow(context.Background(), key, limit); ok {
				admitted.Add(1)
			}
		})
	}
	wg.Wait()
	return int(admitted.Load()), time.Since(start)
}

func TestRateIsSharedBetweenReplicas(t *testing.T) {
	srv := redistest.Start(t)
	a, b := newReplica(t, srv, Options{}), newReplica(t, srv, Options{})
	limit := coordination.Limit{PerSecond: 5, Burst: 5}
	admitted, took := burstOfCalls([]*replica{a, b}, "unary:alice", limit, 60)
	// The burst, plus what the bucket refilled while the calls ran.
	most := 5 + int(took.Seconds()*limit.PerSecond+0.999)
	if admitted < 5 || admitted > most || admitted >= 10 {
		t.Errorf("60 calls over two replicas in %v: %d admitted, want 5 to %d (not 10: one bucket, not one per replica)", took, admitted, most)
	}
	if ok, retry := a.Allow(context.Background(), "unary:alice", limit); ok || retry <= 0 || retry > time.Second {
		t.Errorf("after the burst: got allowed=%v retryAfter=%v, want refused with 0 < retryAfter ≤ 1s", ok, retry)
	}
	if ok, _ := b.Allow(context.Background(), "unary:bob", limit); !ok {
		t.Errorf("bob while alice is limited: refused, want admitted")
	}
	if n := a.fallbacks.Load() + b.fallbacks.Load(); n != 0 {
		t.Errorf("fallbacks with Redis up: got %d, want 0", n)
	}
}

func TestFractionalRate(t *testing.T) {
	srv := redistest.Start(t)
	a := newReplica(t, srv, Options{})
	limit := coordination.Limit{PerSecond: 0.5, Burst: 1}
	if ok, _ := a.Allow(context.Background(), "k", limit); !ok {
		t.Fatal("first call: refused, want admitted")
	}
	ok, retry := a.Allow(context.Background(), "k", limit)
	if ok || retry < 1900*time.Millisecond || retry > 2*time.Second {
		t.Errorf("second call at 0.5/s: got allowed=%v retryAfter=%v, want refused with about 2s", ok, retry)
	}
}

func TestSlotsAreSharedBetweenReplicas(t *testing.T) {
	srv := redistest.Start(t)
	a, b := newReplica(t, srv, Options{}), newReplica(t, srv, Options{})
	ctx := context.Background()
	relA, ok := a.Acquire(ctx, "transfers:alice", 2)
	if !ok {
		t.Fatal("a: first slot refused")
	}
	relB, ok := b.Acquire(ctx, "transfers:alice", 2)
	if !ok {
		t.Fatal("b: second slot refused")
	}
	for _, r := range []*replica{a, b} {
		if _, ok := r.Acquire(ctx, "transfers:alice", 2); ok {
			t.Fatal("a third slot over two replicas was granted, want refused (max 2)")
		}
	}
	if rel, ok := b.Acquire(ctx, "transfers:bob", 2); !ok {
		t.Error("bob while alice is at her cap: refused")
	} else {
		rel()
	}
	relA()
	relA() // a second call frees nothing more
	relC, ok := b.Acquire(ctx, "transfers:alice", 2)
	if !ok {
		t.Fatal("after a released one: refused, want granted")
	}
	if _, ok := a.Acquire(ctx, "transfers:alice", 2); ok {
		t.Error("a double release freed two slots")
	}
	relB()
	relC()
}

func TestSlotsOfADeadReplicaExpireWithinTheTTL(t *testing.T) {
	const ttl = 600 * time.Millisecond
	srv := redistest.Start(t)
	dying, survivor := newReplica(t, srv, Options{LeaseTTL: ttl}), newReplica(t, srv, Options{LeaseTTL: ttl})
	ctx := context.Background()
	for range 2 {
		if _, ok := dying.Acquire(ctx, "transfers:alice", 2); !ok {
			t.Fatal("dying replica: slot refused")
		}
	}
	// While the holder lives it refreshes its leases: they outlast the TTL.
	time.Sleep(2 * ttl)
	if _, ok := survivor.Acquire(ctx, "transfers:alice", 2); ok {
		t.Fatal("slots of a live replica expired: the refresher did not keep them")
	}
	dying.Close() // the refresher stops, the slots are never released
	died := time.Now()
	var rel func()
	redistest.Eventually(t, 2*ttl, "the dead replica's slot freed", func() bool {
		var ok bool
		rel, ok = survivor.Acquire(ctx, "transfers:alice", 2)
		return ok
	})
	if took := time.Since(died); took > ttl+200*time.Millisecond {
		t.Errorf("the dead replica's slots freed after %v, want within the lease TTL %v", took, ttl)
	}
	rel()
}

func TestBandwidthLeasesBlocks(t *testing.T) {
	const (
		total = 64 << 20
		chunk = 256 << 10
		block = 1 << 20
	)
	srv := redistest.Start(t)
	a := newReplica(t, srv, Options{BlockSize: block})
	limit := coordination.Limit{PerSecond: 1 << 30, Burst: 4 << 20}
	before := a.rt.Load()
	for range total / chunk {
		if err := a.Wait(context.Background(), "bytes:alice", limit, chunk); err != nil {
			t.Fatal(err)
		}
	}
	// One round trip per block, plus loading the script once and
	// greeting the server (HELLO) on connecting.
	if got, most := a.rt.Load()-before, int64(total/block+3); got > most {
		t.Errorf("round trips for %d MiB in %d KiB messages: got %d, want at most %d (one per %d MiB block)", total>>20, chunk>>10, got, most, block>>20)
	}
}

func TestBandwidthIsSharedBetweenReplicas(t *testing.T) {
	const (
		rate  = 8 << 20
		burst = 1 << 20
		each  = 4 << 20
		chunk = 256 << 10
	)
	srv := redistest.Start(t)
	a, b := newReplica(t, srv, Options{}), newReplica(t, srv, Options{})
	limit := coordination.Limit{PerSecond: rate, Burst: burst}
	start := time.Now()
	var wg sync.WaitGroup
	for _, r := range []*replica{a, b} {
		wg.Go(func() {
			for range each / chunk {
				if err := r.Wait(context.Background(), "bytes:alice", limit, chunk); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	// Two replicas moved 8 MiB through one 8 MiB/s bucket that started
	// full: at least 7/8 s. Separate buckets would take half that.
	if took, least := time.Since(start), time.Duration(float64(2*each-burst)/rate*float64(time.Second)); took < least {
		t.Errorf("8 MiB over two replicas at a shared 8 MiB/s took %v, want at least %v", took, least)
	}
	// A deadline the reservation cannot meet is refused at once.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := a.Wait(ctx, "bytes:alice", limit, 4<<20); err != coordination.ErrWouldExceedDeadline {
		t.Errorf("wait past the deadline: got %v, want ErrWouldExceedDeadline", err)
	}
}

func TestGCRA(t *testing.T) {
	tests := []struct {
		perSecond float64
		burst     int
		wantRate  int
		wantBurst int
		period    time.Duration
	}{
		{5, 5, 5, 5, time.Second},
		{0.5, 2, 500, 2, 1000 * time.Second},
		{2.5, 0, 2500, 1, 1000 * time.Second},
		{1e9, 1 << 30, 1e9, 1 << 30, time.Second},
		{0.00001, 1, 1, 1, 1000 * time.Second},
	}
	for _, tc := range tests {
		got := gcra(coordination.Limit{PerSecond: tc.perSecond, Burst: tc.burst})
		if got.Rate != tc.wantRate || got.Burst != tc.wantBurst || got.Period != tc.period {
			t.Errorf("gcra(%v/s, burst %d) = %v, want %d per %v, burst %d", tc.perSecond, tc.burst, got, tc.wantRate, tc.period, tc.wantBurst)
		}
	}
}

func TestBlockSize(t *testing.T) {
	tests := []struct {
		perSecond float64
		burst     int
		want      int
	}{
		{50 << 20, 4 << 20, 4 << 20},   // capped by BlockSize and the burst
		{8 << 20, 4 << 20, 1 << 20},    // an eighth of a second
		{64 << 10, 60 << 10, 60 << 10}, // the burst, below the 64 KiB floor
		{100 << 10, 1 << 20, 64 << 10}, // the floor
	}
	for _, tc := range tests {
		if got := blockSize(coordination.Limit{PerSecond: tc.perSecond, Burst: tc.burst}, DefaultBlockSize); got != tc.want {
			t.Errorf("blockSize(%v B/s, burst %d) = %d, want %d", tc.perSecond, tc.burst, got, tc.want)
		}
	}
}
