package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

// scriptedExpirer answers each CleanExpiredUploads with the next result of
// a script (zero removed, no error once it runs out) and records the ttl it
// was given. With block set, a pass waits until release is closed.
type scriptedExpirer struct {
	mu      sync.Mutex
	results []expireResult
	ttls    []time.Duration
	block   bool
	release chan struct{}
	closed  bool // set by the test when the store is closed
	late    int  // passes that started after closed
}

type expireResult struct {
	n   int
	err error
}

func (s *scriptedExpirer) CleanExpiredUploads(olderThan time.Duration) (int, error) {
	s.mu.Lock()
	s.ttls = append(s.ttls, olderThan)
	if s.closed {
		s.late++
	}
	var r expireResult
	if len(s.results) > 0 {
		r, s.results = s.results[0], s.results[1:]
	}
	block, release := s.block, s.release
	s.mu.Unlock()
	if block {
		<-release
	}
	return r.n, r.err
}

func (s *scriptedExpirer) CleanTemporaries(time.Duration) (int, error) { return 0, nil }

func (s *scriptedExpirer) passes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ttls)
}

func TestExpireUploadsPasses(t *testing.T) {
	defer goleak.VerifyNone(t)
	synctest.Test(t, func(t *testing.T) {
		const ttl = 10 * time.Minute // a pass every minute
		store := &scriptedExpirer{results: []expireResult{
			{n: 0},
			{n: 3},
			{n: 0},
			{n: 1, err: errors.New("permission denied")},
			{n: 0},
		}}
		var logs bytes.Buffer
		log := slog.New(slog.NewTextHandler(&logs, nil))

		stop := expireUploads(t.Context(), store, ttl, log)
		synctest.Wait()
		if got := store.passes(); got != 1 {
			t.Fatalf("%d passes at start-up, want 1", got)
		}
		for i := 2; i <= 5; i++ {
			time.Sleep(time.Minute)
			synctest.Wait()
			if got := store.passes(); got != i {
				t.Fatalf("%d passes after %d minutes, want %d", got, i-1, i)
			}
		}
		stop()
		for i, got := range store.ttls {
			if got != ttl {
				t.Errorf("pass %d: olderThan = %v, want the ttl %v", i+1, got, ttl)
			}
		}
		lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
		if len(lines) != 2 {
			t.Fatalf("logged %d records, want one per pass that removed something or failed (2):\n%s", len(lines), logs.String())
		}
		if !strings.Contains(lines[0], "expired incomplete uploads") || !strings.Contains(lines[0], "count=3") {
			t.Errorf("first record = %q, want the 3 expired uploads", lines[0])
		}
		if !strings.Contains(lines[1], "level=WARN") || !strings.Contains(lines[1], "permission denied") || !strings.Contains(lines[1], "count=1") {
			t.Errorf("second record = %q, want a warning with the error and the count", lines[1])
		}
		if strings.Contains(logs.String(), "err=") {
			t.Errorf("records use the key err, want error:\n%s", logs.String())
		}
	})
}

// TestExpireUploadsInterval: a pass runs every tenth of the ttl, at least
// every hour and at most every second.
func TestExpireUploadsInterval(t *testing.T) {
	for _, tc := range []struct {
		ttl, every time.Duration
	}{
		{ttl: 24 * time.Hour, every: time.Hour},
		{ttl: time.Hour, every: 6 * time.Minute},
		{ttl: time.Millisecond, every: time.Second},
	} {
		t.Run(tc.ttl.String(), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			synctest.Test(t, func(t *testing.T) {
				store := &scriptedExpirer{}
				stop := expireUploads(t.Context(), store, tc.ttl, slog.New(slog.DiscardHandler))
				defer stop()
				synctest.Wait()
				time.Sleep(tc.every - time.Nanosecond)
				synctest.Wait()
				if got := store.passes(); got != 1 {
					t.Fatalf("%d passes just before %v, want 1", got, tc.every)
				}
				time.Sleep(time.Nanosecond)
				synctest.Wait()
				if got := store.passes(); got != 2 {
					t.Fatalf("%d passes after %v, want 2", got, tc.every)
				}
			})
		})
	}
}

// TestExpireUploadsStopWaits: stop waits for a pass in progress, so no pass
// touches the store after it is closed; cancelling the parent context also
// ends the passes.
func TestExpireUploadsStopWaits(t *testing.T) {
	defer goleak.VerifyNone(t)
	synctest.Test(t, func(t *testing.T) {
		store := &scriptedExpirer{block: true, release: make(chan struct{})}
		stop := expireUploads(t.Context(), store, time.Hour, slog.New(slog.DiscardHandler))
		synctest.Wait() // the first pass is blocked in the store

		stopped := make(chan struct{})
		go func() { stop(); close(stopped) }()
		synctest.Wait()
		select {
		case <-stopped:
			t.Fatal("stop returned while a pass was in progress")
		default:
		}
		close(store.release)
		<-stopped
		store.mu.Lock()
		store.closed = true
		store.mu.Unlock()
		time.Sleep(time.Hour)
		synctest.Wait()
		if store.late != 0 {
			t.Errorf("%d passes ran after stop returned", store.late)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		store := &scriptedExpirer{}
		ctx, cancel := context.WithCancel(t.Context())
		stop := expireUploads(ctx, store, time.Hour, slog.New(slog.DiscardHandler))
		synctest.Wait()
		cancel()
		synctest.Wait()
		time.Sleep(time.Hour)
		synctest.Wait()
		if got := store.passes(); got != 1 {
			t.Errorf("%d passes, want only the one before the context ended", got)
		}
		stop()
	})
}

// TestResumableTTLMustBePositive: greeterd and the service read
// --resumable-ttl the same way, so greeterd refuses a value the service
// would replace with its default.
func TestResumableTTLMustBePositive(t *testing.T) {
	for _, v := range []string{"0s", "-1h"} {
		var stderr bytes.Buffer
		args := []string{"--resumable-ttl=" + v, "--state-dir", t.TempDir(), "--plaintext"}
		code := run(t.Context(), args, new(bytes.Buffer), &stderr, func(string) string { return "" })
		if code != 2 || !strings.Contains(stderr.String(), "--resumable-ttl must be positive") {
			t.Errorf("--resumable-ttl=%s: exit %d, stderr %q; want 2 and a usage error", v, code, stderr.String())
		}
	}
}
