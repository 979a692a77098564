package redislimit

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"

	"github.com/greeter/greeter/coordination"
	"github.com/greeter/greeter/internal/fakeclock"
	"github.com/greeter/greeter/internal/redistest"
)

// withClock gives r's coalescer a fake clock, before any call.
func withClock(r *replica) *fakeclock.Clock {
	clk := fakeclock.New(time.Unix(1_000_000, 0))
	r.merge.now = clk.Now
	return clk
}

// remaining reads how many tokens key has left in Redis, taking none.
func remaining(t *testing.T, srv *redistest.Server, r *replica, key string, limit coordination.Limit) int {
	t.Helper()
	res, err := redis_rate.NewLimiter(srv.Client(t)).AllowAtMost(t.Context(), r.key("", key), gcra(limit), 0)
	if err != nil {
		t.Fatal(err)
	}
	return res.Remaining
}

// TestLeasedTokensNeverOverAdmit runs 48 callers of one identity in a loop
// over three replicas, fast enough that they lease tokens, and checks that
// they were admitted no more than GCRA admits: the burst plus the rate
// over the time they ran. A lease that spent a token twice, or more than
// Redis granted, fails it.
func TestLeasedTokensNeverOverAdmit(t *testing.T) {
	srv := redistest.Start(t)
	reps := []*replica{newReplica(t, srv, Options{}), newReplica(t, srv, Options{}), newReplica(t, srv, Options{})}
	limit := coordination.Limit{PerSecond: 1000, Burst: 80}
	var admitted, calls atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	stop := start.Add(400 * time.Millisecond)
	for i := range 48 {
		wg.Go(func() {
			for time.Now().Before(stop) {
				calls.Add(1)
				if ok, _ := reps[i%3].Allow(context.Background(), "unary:alice", limit); ok {
					admitted.Add(1)
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	most := float64(limit.Burst) + limit.PerSecond*took.Seconds()
	if got := float64(admitted.Load()); got > most || got < float64(limit.Burst) {
		t.Errorf("48 callers over three replicas for %v: %v admitted, want %d to %.0f (burst + rate × time)", took, got, limit.Burst, most)
	}
	scripts := 0
	for _, r := range reps {
		scripts += int(r.rt.Load())
		if n := r.fallbacks.Load(); n != 0 {
			t.Errorf("fallbacks with Redis up: got %d, want 0", n)
		}
	}
	t.Logf("%d calls, %d admitted, %d Redis round trips", calls.Load(), admitted.Load(), scripts)
}

// TestSlowCallerTakesOneTokenPerCall checks that callers who are not fast
// lease nothing: one caller calling in sequence, however often, and pairs
// of calls more than leaseWindow apart each take exactly their own tokens
// from Redis, one decision per call or per pair, as without leasing.
func TestSlowCallerTakesOneTokenPerCall(t *testing.T) {
	srv := redistest.Start(t)
	a := newReplica(t, srv, Options{})
	clk := withClock(a)
	limit := coordination.Limit{PerSecond: 0.001, Burst: 80}
	const key = "unary:alice"
	for i := range 10 { // in sequence, the clock standing still
		if ok, _ := a.Allow(context.Background(), key, limit); !ok {
			t.Fatalf("call %d in sequence: refused, want admitted", i)
		}
		if got, want := remaining(t, srv, a, key, limit), 80-(i+1); got != want {
			t.Fatalf("after %d calls in sequence: %d tokens left in Redis, want %d (one per call)", i+1, got, want)
		}
	}
	for i := range 10 { // pairs, 2 × leaseWindow apart
		clk.Advance(2 * leaseWindow)
		if admitted, _ := burstOfCalls([]*replica{a}, key, limit, 2); admitted != 2 {
			t.Fatalf("pair %d: %d admitted, want 2", i, admitted)
		}
		if got, want := remaining(t, srv, a, key, limit), 70-2*(i+1); got != want {
			t.Fatalf("after %d pairs: %d tokens left in Redis, want %d (one per call)", i+1, got, want)
		}
	}
}

// TestFastCallsLeaseTokens holds a first decision in Redis while 40 more
// calls arrive (fast: the clock stands still), so that their decision
// leases a block, at most an eighth of the burst: the next calls are
// admitted from it without a round trip, and a block not spent within
// leaseValidity is lost, never returned or spent later.
func TestFastCallsLeaseTokens(t *testing.T) {
	srv := redistest.Start(t)
	a := newReplica(t, srv, Options{Timeout: 5 * time.Second})
	clk := withClock(a)
	limit := coordination.Limit{PerSecond: 0.001, Burst: 80}
	const key = "unary:alice"
	if ok, _ := a.Allow(context.Background(), key, limit); !ok { // the bucket's first decision, not fast
		t.Fatal("first call refused")
	}
	if err := srv.Client(t).Do(t.Context(), "CLIENT", "PAUSE", 300, "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	if admitted, _ := burstOfCalls([]*replica{a}, key, limit, 41); admitted != 41 {
		t.Fatalf("41 calls under a burst of 80: %d admitted, want 41", admitted)
	}
	left := remaining(t, srv, a, key, limit)
	leased := 80 - 42 - left
	if leased < 1 || leased > 80/leaseBurstShare {
		t.Fatalf("after 42 calls: %d tokens left in Redis, so %d leased, want 1 to %d", left, leased, 80/leaseBurstShare)
	}
	before := scriptsRun(t, srv)
	for i := range leased {
		if ok, _ := a.Allow(context.Background(), key, limit); !ok {
			t.Fatalf("call %d on the lease: refused, want admitted", i)
		}
	}
	if n := scriptsRun(t, srv) - before; n != 0 {
		t.Errorf("%d calls on a lease of %d ran %d scripts in Redis, want 0", leased, leased, n)
	}
	if got := remaining(t, srv, a, key, limit); got != left {
		t.Errorf("calls on the lease took from Redis: %d tokens left, want %d", got, left)
	}
	// A lease spent, calls still this fast lease a new block; one not
	// spent within leaseValidity is lost, and a call after it (slow now)
	// asks Redis for its own token alone.
	before = scriptsRun(t, srv)
	if ok, _ := a.Allow(context.Background(), key, limit); !ok {
		t.Fatal("call after the lease: refused, want admitted")
	}
	if n := scriptsRun(t, srv) - before; n != 1 {
		t.Errorf("call after the lease was spent ran %d scripts in Redis, want 1", n)
	}
	left2 := remaining(t, srv, a, key, limit)
	if leased2 := left - 1 - left2; leased2 < 1 || leased2 > 80/leaseBurstShare {
		t.Errorf("fast call after the lease: %d tokens leased, want 1 to %d", leased2, 80/leaseBurstShare)
	}
	clk.Advance(leaseValidity)
	before = scriptsRun(t, srv)
	if ok, _ := a.Allow(context.Background(), key, limit); !ok {
		t.Fatal("call after the lease expired: refused, want admitted")
	}
	if n := scriptsRun(t, srv) - before; n != 1 {
		t.Errorf("call after the lease expired ran %d scripts in Redis, want 1", n)
	}
	if got, want := remaining(t, srv, a, key, limit), left2-1; got != want {
		t.Errorf("call after the lease expired: %d tokens left in Redis, want %d (its own, the expired block lost)", got, want)
	}
}
