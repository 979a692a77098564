package redislease

import (
	"errors"
	"testing"
	"time"

	"github.com/greeter/greeter/coordination"
	"github.com/greeter/greeter/internal/redistest"
)

// TestTryAcquireNeverAsks checks TryAcquire between two replicas on one
// Redis: a key another replica holds is refused with ErrLeaseHeld and its
// holder is not asked to let go (its lease outlives several keep-alives);
// a free key is taken, and then an Acquire elsewhere takes it over from
// the TryAcquire holder as from any holder; with Redis down it cannot
// tell, and grants nothing.
func TestTryAcquireNeverAsks(t *testing.T) {
	srv := redistest.Start(t)
	a, b := newReplica(t, srv), newReplica(t, srv)
	la := acquire(t, a, "up", "writer")
	defer la.Release()
	if _, err := b.TryAcquire(t.Context(), "up", "janitor"); !errors.Is(err, coordination.ErrLeaseHeld) {
		t.Fatalf("TryAcquire of a key held on another replica: %v, want ErrLeaseHeld", err)
	}
	time.Sleep(2 * testOptions.TTL) // several keep-alives, which would see a request
	if isLost(la) {
		t.Fatal("the holder lost its lease to a TryAcquire, want it kept and never asked")
	}
	la.Release()

	lb, err := b.TryAcquire(t.Context(), "up", "janitor")
	if err != nil {
		t.Fatalf("TryAcquire of a released key: %v", err)
	}
	lostAt := releaseWhenLost(lb)
	la2, took := acquireTimed(t, a, "up", "writer2")
	defer la2.Release()
	<-lostAt
	if took >= testOptions.Takeover {
		t.Errorf("Acquire of a key a TryAcquire holds took %v, want it asked and released before the %v bound", took, testOptions.Takeover)
	}
	if n := a.fallbacks.Load() + b.fallbacks.Load(); n != 0 {
		t.Errorf("fallbacks with Redis up: %d, want 0", n)
	}

	srv.Kill()
	for range 2 { // the first finds Redis gone, the second the breaker open
		if _, err := b.TryAcquire(t.Context(), "other", "janitor"); !errors.Is(err, ErrUnreachable) {
			t.Errorf("TryAcquire with Redis down: %v, want ErrUnreachable", err)
		}
	}
	if n := b.fallbacks.Load(); n != 0 {
		t.Errorf("TryAcquire with Redis down counted %d fallbacks, want 0 (it grants nothing)", n)
	}
}
