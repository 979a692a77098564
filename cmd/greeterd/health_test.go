package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// scriptedStorage answers each Check with the next result of a script;
// with hang set, Check blocks until release is closed or ctx ends.
type scriptedStorage struct {
	mu      sync.Mutex
	results []error
	calls   int
	hang    bool
	release chan struct{}
}

func (s *scriptedStorage) Check(ctx context.Context) error {
	s.mu.Lock()
	s.calls++
	hang, release := s.hang, s.release
	var err error
	if len(s.results) > 0 {
		err, s.results = s.results[0], s.results[1:]
	}
	s.mu.Unlock()
	if hang {
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return err
}

func (s *scriptedStorage) set(hang bool, results ...error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hang, s.results = hang, results
	if hang {
		s.release = make(chan struct{})
	}
}

func statusOf(t *testing.T, hs *health.Server) (whole, greeter healthpb.HealthCheckResponse_ServingStatus) {
	t.Helper()
	get := func(name string) healthpb.HealthCheckResponse_ServingStatus {
		resp, err := hs.Check(t.Context(), &healthpb.HealthCheckRequest{Service: name})
		if err != nil {
			t.Fatalf("health Check(%q) = %v", name, err)
		}
		return resp.GetStatus()
	}
	return get(""), get("Greeter")
}

func wantStatus(t *testing.T, hs *health.Server, want healthpb.HealthCheckResponse_ServingStatus) {
	t.Helper()
	if whole, greeter := statusOf(t, hs); whole != want || greeter != want {
		t.Fatalf("health: \"\" is %v, \"Greeter\" is %v; want both %v", whole, greeter, want)
	}
}

func TestWatchStorageFollowsChecks(t *testing.T) {
	defer goleak.VerifyNone(t)
	synctest.Test(t, func(t *testing.T) {
		const every = 5 * time.Second
		broken := errors.New("read-only file system")
		store := &scriptedStorage{}
		store.set(false, nil, broken, broken, broken, nil, nil)
		hs := health.NewServer()
		var logs bytes.Buffer
		log := slog.New(slog.NewTextHandler(&logs, nil))

		var reported []bool // what the greeter_storage_serving metric was told
		stop := watchStorage(t.Context(), store, hs, every, log, func(serving bool) { reported = append(reported, serving) })
		// The first check is done when watchStorage returns.
		wantStatus(t, hs, healthpb.HealthCheckResponse_SERVING)

		for i, want := range []healthpb.HealthCheckResponse_ServingStatus{
			healthpb.HealthCheckResponse_NOT_SERVING,
			healthpb.HealthCheckResponse_NOT_SERVING,
			healthpb.HealthCheckResponse_NOT_SERVING,
			healthpb.HealthCheckResponse_SERVING,
			healthpb.HealthCheckResponse_SERVING,
		} {
			time.Sleep(every)
			synctest.Wait()
			if whole, greeter := statusOf(t, hs); whole != want || greeter != want {
				t.Fatalf("after check %d: \"\" is %v, \"Greeter\" is %v; want %v", i+2, whole, greeter, want)
			}
		}
		stop()
		if store.calls != 6 {
			t.Errorf("%d checks in 5 intervals, want 6", store.calls)
		}
		if want := []bool{true, false, false, false, true, true}; !slices.Equal(reported, want) {
			t.Errorf("reported %v to the metric, want %v", reported, want)
		}
		got := logs.String()
		if n := strings.Count(got, "storage unhealthy"); n != 1 || !strings.Contains(got, "read-only file system") {
			t.Errorf("logged %d unhealthy records (want 1, with the error):\n%s", n, got)
		}
		if n := strings.Count(got, "storage healthy again"); n != 1 {
			t.Errorf("logged %d recovery records, want 1:\n%s", n, got)
		}
	})
}

// TestWatchStorageSlowCheck: a check stuck in the filesystem makes the
// server NOT_SERVING after one interval, no second check starts meanwhile,
// and the status recovers when the check returns.
func TestWatchStorageSlowCheck(t *testing.T) {
	defer goleak.VerifyNone(t)
	synctest.Test(t, func(t *testing.T) {
		const every = time.Second
		store := &scriptedStorage{}
		hs := health.NewServer()
		stop := watchStorage(t.Context(), store, hs, every, slog.New(slog.DiscardHandler), nil)
		wantStatus(t, hs, healthpb.HealthCheckResponse_SERVING)

		store.set(true)
		time.Sleep(every) // the next check starts and hangs
		synctest.Wait()
		time.Sleep(every) // and takes longer than the interval
		synctest.Wait()
		wantStatus(t, hs, healthpb.HealthCheckResponse_NOT_SERVING)
		time.Sleep(10 * every)
		synctest.Wait()
		if store.calls != 2 {
			t.Fatalf("%d checks started while one hung, want 2 in all", store.calls)
		}
		close(store.release)
		synctest.Wait()
		wantStatus(t, hs, healthpb.HealthCheckResponse_SERVING)
		stop()
	})
}

// TestWatchStorageFirstCheckFails: a server whose storage is broken at
// start-up never reports SERVING, and stopping it during a hung check
// does not wait for that check.
func TestWatchStorageFirstCheckFails(t *testing.T) {
	defer goleak.VerifyNone(t)
	synctest.Test(t, func(t *testing.T) {
		store := &scriptedStorage{}
		store.set(false, errors.New("no such file or directory"))
		hs := health.NewServer()
		stop := watchStorage(t.Context(), store, hs, time.Second, slog.New(slog.DiscardHandler), nil)
		wantStatus(t, hs, healthpb.HealthCheckResponse_NOT_SERVING)
		store.set(true)
		time.Sleep(time.Second)
		synctest.Wait()
		stop()
	})
}

// TestWatchStorageAfterShutdown: once the server drains (health.Server
// Shutdown), a healthy check must not turn it back to SERVING.
func TestWatchStorageAfterShutdown(t *testing.T) {
	defer goleak.VerifyNone(t)
	synctest.Test(t, func(t *testing.T) {
		store := &scriptedStorage{}
		hs := health.NewServer()
		stop := watchStorage(t.Context(), store, hs, time.Second, slog.New(slog.DiscardHandler), nil)
		hs.Shutdown()
		time.Sleep(3 * time.Second)
		synctest.Wait()
		wantStatus(t, hs, healthpb.HealthCheckResponse_NOT_SERVING)
		stop()
	})
}
