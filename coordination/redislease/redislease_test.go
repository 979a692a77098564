package redislease

import (
	"context"
	"log/slog"
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

// Short times keep the tests quick; a call timeout of 1 s keeps a loaded
// machine under -race from failing open.
var testOptions = Options{TTL: 900 * time.Millisecond, Takeover: 600 * time.Millisecond, ProbeInterval: 100 * time.Millisecond, Timeout: time.Second}

// replica is one Leases standing for one greeterd replica.
type replica struct {
	*Leases
	log       *redistest.LogBuffer
	fallbacks atomic.Int64
}

func newReplica(t *testing.T, srv *redistest.Server) *replica {
	t.Helper()
	r := &replica{log: &redistest.LogBuffer{}}
	o := testOptions
	o.Logger = slog.New(slog.NewTextHandler(r.log, nil))
	o.OnFallback = func(context.Context) { r.fallbacks.Add(1) }
	r.Leases = New(srv.Client(t), o)
	t.Cleanup(r.Close)
	if err := r.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	return r
}

func acquire(t *testing.T, l coordination.Leases, key, holder string) coordination.Lease {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ls, err := l.Acquire(ctx, key, holder)
	if err != nil {
		t.Fatalf("Acquire(%s, %s): %v", key, holder, err)
	}
	return ls
}

// acquireTimed acquires key and returns the lease and how long it took.
func acquireTimed(t *testing.T, l coordination.Leases, key, holder string) (coordination.Lease, time.Duration) {
	t.Helper()
	start := time.Now()
	ls := acquire(t, l, key, holder)
	return ls, time.Since(start)
}

func isLost(ls coordination.Lease) bool {
	select {
	case <-ls.Lost():
		return true
	default:
		return false
	}
}

// releaseWhenLost releases ls as soon as it is lost, as a holder must.
func releaseWhenLost(ls coordination.Lease) (lostAt <-chan time.Time) {
	c := make(chan time.Time, 1)
	go func() {
		<-ls.Lost()
		c <- time.Now()
		ls.Release()
	}()
	return c
}

func TestReleasedLeaseIsTakenAtOnce(t *testing.T) {
	srv := redistest.Start(t)
	a, b := newReplica(t, srv), newReplica(t, srv)
	la := acquire(t, a, "up", "h1")
	la.Release()
	la.Release() // does nothing more
	lb, took := acquireTimed(t, b, "up", "h2")
	defer lb.Release()
	if took > testOptions.Takeover/2 {
		t.Errorf("acquiring a released key took %v, want no wait", took)
	}
}

// TestLiveHolderIsAskedAndLetsGo: the holder's Lost closes as soon as
// another replica asks, and the acquirer gets the key when it releases,
// well within the takeover bound.
func TestLiveHolderIsAskedAndLetsGo(t *testing.T) {
	srv := redistest.Start(t)
	a, b := newReplica(t, srv), newReplica(t, srv)
	la := acquire(t, a, "up", "h1")
	lostAt := releaseWhenLost(la)
	asked := time.Now()
	lb, took := acquireTimed(t, b, "up", "h2")
	defer lb.Release()
	if took >= testOptions.Takeover {
		t.Errorf("takeover from a live holder took %v, want less than the bound %v", took, testOptions.Takeover)
	}
	if d := (<-lostAt).Sub(asked); d > testOptions.Takeover/2 {
		t.Errorf("the holder learnt it was asked after %v, want at once", d)
	}
	if isLost(lb) {
		t.Error("the new holder's lease is lost")
	}
}

// TestCrashedHolderIsTakenOverWithinTheBound stops a replica's keep-alive
// and listener without releasing: another takes its key after the bound.
func TestCrashedHolderIsTakenOverWithinTheBound(t *testing.T) {
	srv := redistest.Start(t)
	a, b := newReplica(t, srv), newReplica(t, srv)
	acquire(t, a, "up", "h1")
	a.Close() // crashed: no keep-alive, no answer, no release
	lb, took := acquireTimed(t, b, "up", "h2")
	defer lb.Release()
	if took < testOptions.Takeover*9/10 || took > testOptions.Takeover+time.Second {
		t.Errorf("takeover from a crashed holder took %v, want about the bound %v", took, testOptions.Takeover)
	}
}

// TestDeafHolderLosesItsLease: a holder that does not release when asked
// is taken over after the bound and learns it at its next keep-alive.
func TestDeafHolderLosesItsLease(t *testing.T) {
	srv := redistest.Start(t)
	a, b := newReplica(t, srv), newReplica(t, srv)
	la := acquire(t, a, "up", "h1")
	defer la.Release()
	lb, took := acquireTimed(t, b, "up", "h2")
	defer lb.Release()
	if took < testOptions.Takeover*9/10 {
		t.Errorf("took %v from a holder that did not release, want the bound %v", took, testOptions.Takeover)
	}
	if !isLost(la) {
		t.Fatal("the old holder was not told")
	}
	// Its keep-alive must not take the key back.
	n0 := a.refreshes.Load()
	redistest.Eventually(t, 5*time.Second, "two keep-alives of the old holder", func() bool { return a.refreshes.Load() >= n0+2 })
	if isLost(lb) {
		t.Error("the new holder lost the key to the old one's keep-alive")
	}
	a.mu.Lock()
	n := len(a.held)
	a.mu.Unlock()
	if n != 0 {
		t.Errorf("the old holder still keeps %d leases alive", n)
	}
}

// TestSameReplicaTakesOver: two holders on one replica follow the same
// protocol.
func TestSameReplicaTakesOver(t *testing.T) {
	srv := redistest.Start(t)
	a := newReplica(t, srv)
	la := acquire(t, a, "up", "h1")
	releaseWhenLost(la)
	lb, took := acquireTimed(t, a, "up", "h2")
	defer lb.Release()
	if took >= testOptions.Takeover || isLost(lb) {
		t.Errorf("took %v (lost: %v), want less than %v and held", took, isLost(lb), testOptions.Takeover)
	}
}

// TestRedisOutageGrantsUnbackedLeases: with Redis down, Acquire answers at
// once (the fence decides); when Redis is back, the leases held are
// written back and takeover works again.
func TestRedisOutageGrantsUnbackedLeases(t *testing.T) {
	srv := redistest.Start(t)
	a, b := newReplica(t, srv), newReplica(t, srv)
	srv.Kill()
	la, took := acquireTimed(t, a, "up", "h1")
	defer la.Release()
	if took > time.Second || isLost(la) {
		t.Fatalf("Acquire with Redis down took %v (lost: %v), want at once and held", took, isLost(la))
	}
	acquire(t, a, "other", "h3").Release()
	if got := a.log.Count(`msg="redis unreachable`); got != 1 {
		t.Errorf("outage logged %d times, want once", got)
	}
	if a.fallbacks.Load() != 2 {
		t.Errorf("fallbacks counted: %d, want 2", a.fallbacks.Load())
	}

	srv.Restart()
	redistest.Eventually(t, 10*time.Second, "recovery logged", func() bool { return a.log.Count(`msg="redis answers again`) == 1 })
	rdb := srv.Client(t)
	redistest.Eventually(t, 5*time.Second, "the held lease written back", func() bool {
		n, _ := rdb.Exists(t.Context(), la.(*lease).key).Result()
		return n == 1
	})
	lostAt := releaseWhenLost(la)
	// b may not have noticed the outage: it never called Redis during it.
	lb, took := acquireTimed(t, b, "up", "h2")
	defer lb.Release()
	<-lostAt
	if took >= testOptions.Takeover {
		t.Errorf("takeover after the outage took %v, want less than %v", took, testOptions.Takeover)
	}
}

func TestAcquireEndsWithItsContext(t *testing.T) {
	srv := redistest.Start(t)
	a := newReplica(t, srv)
	la := acquire(t, a, "up", "h1")
	defer la.Release()
	ctx, cancel := context.WithTimeout(t.Context(), testOptions.Takeover/3)
	defer cancel()
	if _, err := a.Acquire(ctx, "up", "h2"); err != context.DeadlineExceeded {
		t.Errorf("Acquire past its deadline: %v, want context.DeadlineExceeded", err)
	}
}
