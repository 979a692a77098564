package ratelimit_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/greeter/greeter/coordination"
	"github.com/greeter/greeter/coordination/redislimit"
	"github.com/greeter/greeter/internal/redistest"
	"github.com/greeter/greeter/middleware/internal/authtest"
	"github.com/greeter/greeter/middleware/ratelimit"
)

// replicas starts n servers whose per-identity limits are shared through
// one real Redis, each with its own redislimit.Limits, as n greeterd
// replicas with the same --redis-url are.
func replicas(t *testing.T, n int, o ratelimit.Options) []*env {
	t.Helper()
	srv := redistest.Start(t)
	key := authtest.NewKey(t, t.TempDir(), "ed25519", "k1")
	out := make([]*env, n)
	for i := range out {
		// A loaded machine under -race can take longer than the default
		// 100 ms; a timeout would fail open and hide what is tested here.
		shared := redislimit.New(srv.Client(t), coordination.NewLocal(coordination.LocalOptions{}), redislimit.Options{Timeout: time.Second})
		t.Cleanup(shared.Close)
		if err := shared.Ping(t.Context()); err != nil { // as greeterd does at start
			t.Fatal(err)
		}
		o.Limits = shared
		out[i] = startWithKey(t, o, key)
	}
	return out
}

func TestUnaryLimitIsSharedBetweenReplicas(t *testing.T) {
	rs := replicas(t, 2, ratelimit.Options{PerPeer: off, Unary: ratelimit.Rate{PerSecond: 5, Burst: 5}})
	var admitted, exhausted atomic.Int32
	var wg sync.WaitGroup
	start := time.Now()
	for i := range 60 {
		wg.Go(func() {
			switch err := rs[i%2].hello(t, "alice"); status.Code(err) {
			case codes.OK:
				admitted.Add(1)
			case codes.ResourceExhausted:
				exhausted.Add(1)
			default:
				t.Errorf("hello: %v", err)
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	most := 5 + int(took.Seconds()*5+0.999)
	if got := int(admitted.Load()); got < 5 || got > most || got >= 10 {
		t.Errorf("60 hellos from one identity over two replicas in %v: %d admitted, want 5 to %d (one shared bucket, not one per replica)", took, got, most)
	}
	if got := rs[0].rejects.get(ratelimit.ReasonUnary) + rs[1].rejects.get(ratelimit.ReasonUnary); got != int(exhausted.Load()) {
		t.Errorf("unary rejections counted: got %d, want %d", got, exhausted.Load())
	}
}

func TestConcurrentTransferCapIsSharedBetweenReplicas(t *testing.T) {
	rs := replicas(t, 2, ratelimit.Options{PerPeer: off, Transfer: off, MaxConcurrentTransfers: 2})
	ctx, cancel := rs[0].ctx(t, "alice")
	defer cancel()
	// One upload in flight on each replica: alice's two slots.
	first, second := openUpload(t, rs[0], ctx), openUpload(t, rs[1], ctx)
	deadline := time.Now().Add(10 * time.Second)
	for rs[0].svc.uploads.Load() != 1 || rs[1].svc.uploads.Load() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the two uploads did not reach their handlers")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for i, r := range rs {
		_, err := openUpload(t, r, ctx).CloseAndRecv()
		wantExhausted(t, err, "too many concurrent transfers", time.Second)
		if got := r.svc.uploads.Load(); got != 1 {
			t.Errorf("replica %d: upload handlers after the rejection: got %d, want 1", i, got)
		}
	}
	if _, err := first.CloseAndRecv(); err != nil {
		t.Fatalf("finish the first upload: %v", err)
	}
	if _, err := openUpload(t, rs[1], ctx).CloseAndRecv(); err != nil {
		t.Errorf("an upload on the other replica after one finished: got %v, want OK", err)
	}
	if _, err := second.CloseAndRecv(); err != nil {
		t.Fatalf("finish the second upload: %v", err)
	}
}
