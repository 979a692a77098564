package redislimit

import (
	"context"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/greeter/greeter/coordination"
	"github.com/greeter/greeter/internal/redistest"
)

// TestConcurrentCallsOfOneKeyShareARoundTrip holds the first decision of a
// key in Redis (CLIENT PAUSE WRITE holds every script) while 100 more
// calls of the key arrive: they must leave as one decision, not 100, and
// still be admitted exactly as one by one (a burst of 50, no refill to
// speak of at one event per 1000 s).
func TestConcurrentCallsOfOneKeyShareARoundTrip(t *testing.T) {
	srv := redistest.Start(t)
	a := newReplica(t, srv, Options{Timeout: 5 * time.Second})
	limit := coordination.Limit{PerSecond: 0.001, Burst: 50}
	if err := srv.Client(t).Do(t.Context(), "CLIENT", "PAUSE", 300, "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	before := scriptsRun(t, srv)
	var admitted, refused atomic.Int64
	var wg sync.WaitGroup
	first := make(chan struct{})
	call := func() {
		ok, retry := a.Allow(context.Background(), "unary:alice", limit)
		switch {
		case ok:
			admitted.Add(1)
		case retry > 0:
			refused.Add(1)
		default:
			t.Errorf("refused with retryAfter %v, want > 0", retry)
		}
	}
	wg.Go(func() { close(first); call() })
	<-first
	for range 100 {
		wg.Go(call)
	}
	wg.Wait()
	if got, want := admitted.Load(), int64(50); got != want {
		t.Errorf("101 calls under burst 50: %d admitted, want %d", got, want)
	}
	if got := refused.Load(); got != 51 {
		t.Errorf("101 calls under burst 50: %d refused with a retry delay, want 51", got)
	}
	// The paused first call and one merged decision; a few more if the
	// machine let some calls arrive only after the pause.
	if n := scriptsRun(t, srv) - before; n > 10 {
		t.Errorf("101 concurrent calls of one key ran %d scripts in Redis, want at most 10 (merged)", n)
	}
	if n := a.fallbacks.Load(); n != 0 {
		t.Errorf("fallbacks with Redis up: got %d, want 0", n)
	}
}

// TestMergedCallsFallBackTogether checks that the calls that share a
// decision Redis did not answer all fall back to the local limiter, each
// counted, and are admitted by it as one by one.
func TestMergedCallsFallBackTogether(t *testing.T) {
	srv := redistest.Start(t)
	a := newReplica(t, srv, Options{Timeout: 50 * time.Millisecond, ProbeInterval: time.Hour})
	limit := coordination.Limit{PerSecond: 0.001, Burst: 7}
	if err := srv.Client(t).Do(t.Context(), "CLIENT", "PAUSE", 1000, "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	admitted, _ := burstOfCalls([]*replica{a}, "unary:alice", limit, 40)
	if admitted != 7 {
		t.Errorf("40 calls under burst 7 while Redis does not answer: %d admitted, want 7 (the local bucket)", admitted)
	}
	if n := a.fallbacks.Load(); n != 40 {
		t.Errorf("fallbacks: got %d, want 40 (each call counted)", n)
	}
	if n := a.log.Count("redis unreachable"); n != 1 {
		t.Errorf("outage logged %d times, want once", n)
	}
}

var scriptCalls = regexp.MustCompile(`(?m)^cmdstat_(?:eval|evalsha):calls=(\d+)`)

// scriptsRun returns how many scripts Redis has run (EVAL and EVALSHA
// calls, from INFO commandstats), whether pipelined or not.
func scriptsRun(t *testing.T, srv *redistest.Server) int {
	t.Helper()
	info, err := srv.Client(t).Info(t.Context(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range scriptCalls.FindAllStringSubmatch(info, -1) {
		c, _ := strconv.Atoi(m[1])
		n += c
	}
	return n
}
