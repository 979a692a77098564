package redisusage

import (
	"context"
	"errors"
	"log/slog"
	"maps"
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
	redis.SetLogger(quiet{}) // the tests read what the breaker logs instead
	goleak.VerifyTestMain(m)
}

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

const alice = "alice"

// storage stands for the bucket: what a listing would find.
type storage struct {
	mu      sync.Mutex
	used    coordination.Amount
	holds   map[string]coordination.Amount
	tallies atomic.Int64
	// gate, if set, is waited on by the next tally, which then clears it.
	gate chan struct{}
}

func (s *storage) tally(ctx context.Context, owner string) (coordination.Amount, map[string]coordination.Amount, error) {
	s.tallies.Add(1)
	s.mu.Lock()
	used, holds, gate := s.used, maps.Clone(s.holds), s.gate
	s.gate = nil
	s.mu.Unlock()
	if gate != nil {
		<-gate
	}
	if holds == nil {
		holds = map[string]coordination.Amount{}
	}
	return used, holds, nil
}

// localCounter is a fallback that records what it was asked.
type localCounter struct{ calls atomic.Int64 }

func (l *localCounter) Get(context.Context, string) (coordination.Amount, error) {
	l.calls.Add(1)
	return coordination.Amount{}, nil
}

func (l *localCounter) Reserve(context.Context, string, string, coordination.Amount, coordination.Amount) error {
	l.calls.Add(1)
	return nil
}
func (l *localCounter) Settle(context.Context, string, string, coordination.Amount) { l.calls.Add(1) }
func (l *localCounter) Release(context.Context, string, string)                     { l.calls.Add(1) }

// replica is one Usage standing for one greeterd replica.
type replica struct {
	*Usage
	local *localCounter
	log   *redistest.LogBuffer
}

func newReplica(t *testing.T, srv *redistest.Server, st *storage, o Options) *replica {
	t.Helper()
	r := &replica{local: &localCounter{}, log: &redistest.LogBuffer{}}
	if o.Timeout == 0 {
		o.Timeout = time.Second // a loaded machine under -race must not fail open
	}
	if o.ProbeInterval == 0 {
		o.ProbeInterval = 100 * time.Millisecond
	}
	o.Logger = slog.New(slog.NewTextHandler(r.log, nil))
	r.Usage = New(srv.Client(t), st.tally, r.local, o)
	t.Cleanup(r.Close)
	if err := r.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	return r
}

func wantUsage(t *testing.T, u coordination.Usage, want coordination.Amount) {
	t.Helper()
	got, err := u.Get(t.Context(), alice)
	if err != nil || got != want {
		t.Fatalf("Get = %+v, %v; want %+v", got, err, want)
	}
}

func amt(b, o int64) coordination.Amount { return coordination.Amount{Bytes: b, Objects: o} }

// TestQuotaHoldsAcrossReplicas: two replicas reserving for one owner share
// one quota, and what one settles the other sees at once.
func TestQuotaHoldsAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	st := &storage{used: amt(10, 1)}
	a, b := newReplica(t, srv, st, Options{}), newReplica(t, srv, st, Options{})
	ctx := t.Context()
	q := amt(100, 0)
	if err := a.Reserve(ctx, alice, "up1", amt(60, 1), q); err != nil {
		t.Fatalf("first reservation: %v", err)
	}
	var qe *coordination.QuotaError
	if err := b.Reserve(ctx, alice, "up2", amt(60, 1), q); !errors.As(err, &qe) || qe.Objects || qe.Used != 70 || qe.Need != 60 {
		t.Fatalf("second reservation on the other replica: %v, want a bytes QuotaError with 70 used", err)
	}
	if err := b.Reserve(ctx, alice, "up2", amt(30, 1), q); err != nil {
		t.Fatalf("a reservation that fits: %v", err)
	}
	a.Settle(ctx, alice, "up1", amt(60, 1))
	a.Settle(ctx, alice, "up1", amt(0, 0)) // the hold is gone: nothing more
	wantUsage(t, b, amt(100, 3))
	b.Release(ctx, alice, "up2")
	b.Release(ctx, alice, "up2")
	wantUsage(t, a, amt(70, 2))
	if n := st.tallies.Load(); n != 1 {
		t.Errorf("tallies: %d, want 1 (the first use)", n)
	}
}

// TestConcurrentReservationsNeverOvershoot races reservations from two
// replicas for the last room.
func TestConcurrentReservationsNeverOvershoot(t *testing.T) {
	srv := redistest.Start(t)
	st := &storage{}
	reps := []*replica{newReplica(t, srv, st, Options{}), newReplica(t, srv, st, Options{})}
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			hold := string(rune('A' + i))
			if reps[i%2].Reserve(t.Context(), alice, hold, amt(10, 1), amt(0, 7)) == nil {
				admitted.Add(1)
			}
		})
	}
	wg.Wait()
	if admitted.Load() != 7 {
		t.Errorf("admitted %d reservations under an objects quota of 7", admitted.Load())
	}
}

// TestReconciledWhenMissingOrStale: a Redis restarted empty, and an entry
// older than MaxAge, are counted again from the storage at their next use.
func TestReconciledWhenMissingOrStale(t *testing.T) {
	srv := redistest.Start(t)
	st := &storage{used: amt(10, 1)}
	a := newReplica(t, srv, st, Options{MaxAge: 300 * time.Millisecond})
	wantUsage(t, a, amt(10, 1))
	st.mu.Lock()
	st.used = amt(30, 2) // another replica's commit that Redis missed
	st.mu.Unlock()
	wantUsage(t, a, amt(10, 1)) // fresh: drift stands for now
	redistest.Eventually(t, 5*time.Second, "a stale entry reconciled", func() bool {
		u, err := a.Get(t.Context(), alice)
		return err == nil && u == amt(30, 2)
	})

	srv.Restart() // empty
	st.mu.Lock()
	st.holds = map[string]coordination.Amount{"up1": amt(5, 1)}
	st.mu.Unlock()
	redistest.Eventually(t, 10*time.Second, "usage counted again after the restart", func() bool {
		u, err := a.Get(t.Context(), alice)
		return err == nil && u == amt(35, 3) && a.br.Usable()
	})
	a.Release(t.Context(), alice, "up1") // the hold came back from the tally
	wantUsage(t, a, amt(30, 2))
}

// TestHoldsSetDuringATallyAreKept: a reservation made while a listing runs
// is not lost when the listing's result is written.
func TestHoldsSetDuringATallyAreKept(t *testing.T) {
	srv := redistest.Start(t)
	st := &storage{used: amt(10, 1)}
	a, b := newReplica(t, srv, st, Options{}), newReplica(t, srv, st, Options{MaxAge: 50 * time.Millisecond})
	wantUsage(t, a, amt(10, 1))
	gate := make(chan struct{})
	st.mu.Lock()
	st.gate = gate
	st.mu.Unlock()
	redistest.Eventually(t, 5*time.Second, "the entry stale for b", func() bool {
		v, _ := b.rdb.HGet(t.Context(), b.key(alice), "reconciled_at").Int64()
		tm, _ := b.rdb.Time(t.Context()).Result()
		return tm.UnixMilli()-v > 50
	})
	done := make(chan error)
	go func() { _, err := b.Get(t.Context(), alice); done <- err }()
	redistest.Eventually(t, 5*time.Second, "b's tally started", func() bool { return st.tallies.Load() == 2 })
	if err := a.Reserve(t.Context(), alice, "up1", amt(7, 1), amt(100, 0)); err != nil {
		t.Fatal(err)
	}
	close(gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	wantUsage(t, a, amt(17, 2))
}

// TestRedisDownFallsBackToTheLocalCounter: with Redis gone, every call is
// answered by the local counter, logged once; an owner changed meanwhile
// is reconciled when Redis answers again.
func TestRedisDownFallsBackToTheLocalCounter(t *testing.T) {
	srv := redistest.Start(t)
	st := &storage{used: amt(10, 1)}
	a := newReplica(t, srv, st, Options{ProbeInterval: time.Second})
	wantUsage(t, a, amt(10, 1))
	a.br.Fail(errors.New("test: an outage that keeps Redis' data"))
	ctx := t.Context()
	if err := a.Reserve(ctx, alice, "up1", amt(5, 1), amt(1, 0)); err != nil {
		t.Fatalf("Reserve on the fallback: %v", err)
	}
	a.Settle(ctx, alice, "up1", amt(5, 1))
	if _, err := a.Get(ctx, alice); err != nil {
		t.Fatal(err)
	}
	if got := a.local.calls.Load(); got != 3 {
		t.Errorf("local counter answered %d calls, want 3", got)
	}
	st.mu.Lock()
	st.used = amt(15, 2) // what the fallback's commit did to the bucket
	st.mu.Unlock()
	redistest.Eventually(t, 5*time.Second, "recovery", func() bool { return a.br.Usable() })
	wantUsage(t, a, amt(15, 2)) // reconciled though fresh: changed on the fallback
	srv.Kill()
	wantUsage(t, a, amt(0, 0)) // the local counter's answer
	if got := a.log.Count(`msg="redis unreachable`); got != 2 {
		t.Errorf("outages logged: %d, want one per outage (2)", got)
	}
}
