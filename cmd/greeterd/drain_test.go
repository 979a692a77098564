package main

import (
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// drainingServer stands in for the grpc.Server a drain stops. Its calls in
// flight finish callsFor after GracefulStop (never when negative), or
// when Stop cancels them. It records when each method was called.
type drainingServer struct {
	start    time.Time
	callsFor time.Duration

	mu         sync.Mutex
	gracefulAt time.Duration // -1 until called
	stopAt     time.Duration // -1 until called
	cancel     chan struct{}
}

func newDrainingServer(callsFor time.Duration) *drainingServer {
	return &drainingServer{start: time.Now(), callsFor: callsFor, gracefulAt: -1, stopAt: -1, cancel: make(chan struct{})}
}

func (s *drainingServer) GracefulStop() {
	s.mu.Lock()
	s.gracefulAt = time.Since(s.start)
	s.mu.Unlock()
	var finished <-chan time.Time
	if s.callsFor >= 0 {
		finished = time.After(s.callsFor)
	}
	select {
	case <-finished:
	case <-s.cancel:
	}
}

func (s *drainingServer) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopAt = time.Since(s.start)
	close(s.cancel)
}

func (s *drainingServer) calls() (gracefulAt, stopAt time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gracefulAt, s.stopAt
}

// TestDrain: health turns NOT_SERVING at once, the server keeps taking
// calls for the delay, then stops taking them and waits for those in
// flight up to the timeout, then cancels them.
func TestDrain(t *testing.T) {
	defer goleak.VerifyNone(t)
	const never = -1
	for _, tc := range []struct {
		name                   string
		delay, timeout         time.Duration
		callsFor               time.Duration // after GracefulStop; never: until cancelled
		wantGraceful, wantStop time.Duration // when called; never: not called
		wantDone               time.Duration
	}{
		{name: "calls finish", delay: 2 * time.Second, timeout: 30 * time.Second, callsFor: 5 * time.Second,
			wantGraceful: 2 * time.Second, wantStop: never, wantDone: 7 * time.Second},
		{name: "timeout", delay: 2 * time.Second, timeout: 30 * time.Second, callsFor: never,
			wantGraceful: 2 * time.Second, wantStop: 32 * time.Second, wantDone: 32 * time.Second},
		{name: "no delay", delay: 0, timeout: 10 * time.Second, callsFor: 0,
			wantGraceful: 0, wantStop: never, wantDone: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				hs := health.NewServer()
				hs.SetServingStatus("Greeter", healthpb.HealthCheckResponse_SERVING)
				wantStatus(t, hs, healthpb.HealthCheckResponse_SERVING)
				var watchStopped bool
				srv := newDrainingServer(tc.callsFor)
				done := make(chan time.Duration, 1)
				go func() {
					drain{
						health:    hs,
						stopWatch: func() { watchStopped = true },
						delay:     tc.delay,
						timeout:   tc.timeout,
						log:       slog.New(slog.DiscardHandler),
					}.stop(srv)
					done <- time.Since(srv.start)
				}()

				synctest.Wait()
				wantStatus(t, hs, healthpb.HealthCheckResponse_NOT_SERVING)
				if !watchStopped {
					t.Error("the storage watch still runs after the drain began")
				}
				if graceful, _ := srv.calls(); tc.delay > 0 && graceful != -1 {
					t.Errorf("GracefulStop at %v, before the %v drain delay", graceful, tc.delay)
				}
				// A healthy storage check during the drain changes nothing.
				hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
				wantStatus(t, hs, healthpb.HealthCheckResponse_NOT_SERVING)

				got := <-done
				graceful, stop := srv.calls()
				if graceful != tc.wantGraceful || stop != tc.wantStop || got != tc.wantDone {
					t.Errorf("GracefulStop at %v, Stop at %v, returned at %v; want %v, %v, %v (-1: not called)",
						graceful, stop, got, tc.wantGraceful, tc.wantStop, tc.wantDone)
				}
			})
		})
	}
}
