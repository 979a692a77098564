package coordination_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/greeter/greeter/coordination"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestLocalAllow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := coordination.NewLocal(coordination.LocalOptions{})
		limit := coordination.Limit{PerSecond: 2, Burst: 3}
		ctx := context.Background()
		for i := range 3 {
			if ok, _ := l.Allow(ctx, "k", limit); !ok {
				t.Fatalf("call %d within the burst: refused", i+1)
			}
		}
		if ok, retry := l.Allow(ctx, "k", limit); ok || retry != 500*time.Millisecond {
			t.Errorf("past the burst: got allowed=%v retryAfter=%v, want refused, 500ms", ok, retry)
		}
		time.Sleep(500 * time.Millisecond)
		if ok, _ := l.Allow(ctx, "k", limit); !ok {
			t.Error("after the refill: refused")
		}
		if ok, _ := l.Allow(ctx, "k", coordination.Limit{PerSecond: -1, Burst: 1}); !ok {
			t.Error("a negative rate refused a call, want never")
		}
	})
}

func TestLocalAcquireHoldsItsKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := coordination.NewLocal(coordination.LocalOptions{MaxKeys: 2, IdleTTL: time.Minute})
		ctx := context.Background()
		release, ok := l.Acquire(ctx, "held", 1)
		if !ok {
			t.Fatal("first slot refused")
		}
		// Neither crowding nor idleness may forget a key with a slot held.
		for i := range 10 {
			l.Allow(ctx, fmt.Sprintf("crowd-%d", i), coordination.Limit{PerSecond: 1, Burst: 1})
		}
		time.Sleep(2 * time.Minute)
		if _, ok := l.Acquire(ctx, "held", 1); ok {
			t.Fatal("a second slot over max 1 was granted: the held key was forgotten")
		}
		release()
		release() // frees nothing more
		r1, ok1 := l.Acquire(ctx, "held", 1)
		_, ok2 := l.Acquire(ctx, "held", 1)
		if !ok1 || ok2 {
			t.Fatalf("after release: got %v, %v, want one slot granted and the next refused", ok1, ok2)
		}
		r1()
	})
}

func TestLocalWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := coordination.NewLocal(coordination.LocalOptions{})
		limit := coordination.Limit{PerSecond: 1000, Burst: 600}
		start := time.Now()
		// More than the burst at once is waited for in burst-sized parts.
		if err := l.Wait(context.Background(), "k", limit, 1600); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took != time.Second {
			t.Errorf("1600 bytes at 1000 B/s from a full 600-byte bucket took %v, want 1s", took)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if err := l.Wait(ctx, "k", limit, 500); !errors.Is(err, coordination.ErrWouldExceedDeadline) {
			t.Errorf("a wait past the deadline: got %v, want ErrWouldExceedDeadline", err)
		}
		cctx, ccancel := context.WithCancel(context.Background())
		ccancel()
		if err := l.Wait(cctx, "k", limit, 500); !errors.Is(err, context.Canceled) {
			t.Errorf("a wait on a cancelled context: got %v, want context.Canceled", err)
		}
	})
}
