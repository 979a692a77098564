package ratelimit_test

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/greeter/greeter/middleware/ratelimit"
)

// watch opens a health Watch stream and returns it with the error of its
// first Recv: nil when the stream was let through and is now held.
func watch(ctx context.Context, e *env) (grpc.ServerStreamingClient[healthpb.HealthCheckResponse], error) {
	w, err := healthpb.NewHealthClient(e.cc).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return nil, err
	}
	_, err = w.Recv()
	return w, err
}

// R3: unauthenticated health Watch streams are capped per peer (default 16),
// the excess is refused with ResourceExhausted and counted, unary health
// checks are not held back, and a place is freed when a stream ends.
func TestPublicStreamsCappedPerPeer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := start(t, ratelimit.Options{})
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		cancels := make([]context.CancelFunc, ratelimit.DefaultPublicStreamsPerPeer)
		for i := range cancels {
			sctx, scancel := context.WithCancel(ctx)
			cancels[i] = scancel
			if _, err := watch(sctx, e); err != nil {
				t.Fatalf("watch %d: %v", i+1, err)
			}
		}
		_, err := watch(ctx, e)
		wantExhausted(t, err, "too many open health or reflection streams from this address (at most 16)", time.Second)
		if got := e.rejects.get(ratelimit.ReasonPublicStream); got != 1 {
			t.Errorf("public stream rejections: got %d, want 1", got)
		}
		if got := e.limiter.OpenPublicStreams(); got != 16 {
			t.Errorf("open public streams: got %d, want 16", got)
		}
		if _, err := healthpb.NewHealthClient(e.cc).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
			t.Errorf("unary health check while the streams are capped: %v", err)
		}

		cancels[0]()
		synctest.Wait()
		if got := e.limiter.OpenPublicStreams(); got != 15 {
			t.Errorf("open public streams after one ended: got %d, want 15", got)
		}
		if _, err := watch(ctx, e); err != nil {
			t.Errorf("watch after a place was freed: %v", err)
		}
		for _, c := range cancels[1:] {
			c()
		}
	})
}

// fakeStream is a server stream with only a context.
type fakeStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s fakeStream) Context() context.Context { return s.ctx }

// R3: the total cap holds across peers, each peer's own cap holds below it,
// and the per-peer table empties as streams end.
func TestPublicStreamsCappedInTotal(t *testing.T) {
	rejects := &rejections{}
	l := ratelimit.New(ratelimit.Options{
		MaxPublicStreamsPerPeer: 2,
		MaxPublicStreams:        3,
		OnReject:                func(_ context.Context, reason string) { rejects.add(reason) },
	})
	intercept := l.PublicStreams().Stream
	if l.PublicStreams().Unary != nil {
		t.Fatal("the public stream cap holds unary calls")
	}
	info := &grpc.StreamServerInfo{FullMethod: "/grpc.health.v1.Health/Watch", IsServerStream: true}
	release := make(chan struct{})
	type held struct {
		entered chan struct{}
		done    chan error
	}
	open := func(ip string) held {
		h := held{entered: make(chan struct{}), done: make(chan error, 1)}
		go func() {
			h.done <- intercept(nil, fakeStream{ctx: fromPeer(t, ip, "")}, info, func(any, grpc.ServerStream) error {
				close(h.entered)
				<-release
				return nil
			})
		}()
		return h
	}
	wait := func(h held, what string) {
		t.Helper()
		select {
		case <-h.entered:
		case err := <-h.done:
			// With release closed, an admitted handler may return before
			// this select sees entered: it must have entered all the same.
			select {
			case <-h.entered:
				h.done <- err // for the caller's own <-done
			default:
				t.Fatalf("%s: refused: %v", what, err)
			}
		}
	}
	refused := func(ip, msg string) {
		t.Helper()
		err := intercept(nil, fakeStream{ctx: fromPeer(t, ip, "")}, info, func(any, grpc.ServerStream) error {
			return fmt.Errorf("handler ran for %s", ip)
		})
		wantExhausted(t, err, msg, time.Second)
	}

	a1, a2, b1 := open("192.0.2.1"), open("192.0.2.1"), open("2001:db8::1")
	wait(a1, "a1")
	wait(a2, "a2")
	wait(b1, "b1")
	refused("192.0.2.1", "too many open health or reflection streams from this address (at most 2)")
	refused("2001:db8::2", "too many open health or reflection streams on this server (at most 3)")
	refused("198.51.100.1", "too many open health or reflection streams on this server (at most 3)")
	if got, want := rejects.get(ratelimit.ReasonPublicStream), 1; got != want {
		t.Errorf("per-peer rejections: got %d, want %d", got, want)
	}
	if got, want := rejects.get(ratelimit.ReasonPublicStreamGlobal), 2; got != want {
		t.Errorf("total rejections: got %d, want %d", got, want)
	}
	close(release)
	for _, h := range []held{a1, a2, b1} {
		if err := <-h.done; err != nil {
			t.Errorf("held stream ended with %v", err)
		}
	}
	if got := l.OpenPublicStreams(); got != 0 {
		t.Errorf("open public streams after all ended: got %d, want 0", got)
	}
	c := open("198.51.100.1")
	wait(c, "a new peer once places are free")
	<-c.done
}
