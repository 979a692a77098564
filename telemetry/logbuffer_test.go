package telemetry_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/greeter/greeter/telemetry"
)

// countingWriter records what was written and in how many Write calls.
type countingWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes++
	return w.buf.Write(p)
}

func (w *countingWriter) state() (string, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String(), w.writes
}

func textHandler(w io.Writer) slog.Handler {
	return slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})
}

// TestLogBufferIntervalBoundsStaleness runs in a synctest bubble, whose clock
// moves only when every goroutine waits: a record is not written before the
// flush interval has passed, is written when it has, and the records logged
// meanwhile go out in one write.
func TestLogBufferIntervalBoundsStaleness(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = 100 * time.Millisecond
		w := &countingWriter{}
		b, h := telemetry.NewLogBuffer(w, interval, textHandler)
		defer b.Close()
		log := slog.New(h)
		for i := range 50 {
			log.Info("rpc", slog.Int("n", i))
			log.Warn("rejected", slog.Int("n", i))
		}
		synctest.Wait()
		if got, writes := w.state(); writes != 0 {
			t.Fatalf("before the interval: %d writes (%q), want none", writes, got)
		}
		time.Sleep(interval - time.Nanosecond)
		synctest.Wait()
		if _, writes := w.state(); writes != 0 {
			t.Fatalf("1ns before the interval: %d writes, want none", writes)
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		got, writes := w.state()
		if writes != 1 {
			t.Errorf("at the interval: %d writes, want 1 for all 100 records", writes)
		}
		if n := strings.Count(got, "\n"); n != 100 {
			t.Errorf("at the interval: %d records written, want 100", n)
		}
		// The next record waits a full interval again, not less.
		time.Sleep(10 * interval)
		log.Info("later")
		synctest.Wait()
		time.Sleep(interval - time.Nanosecond)
		synctest.Wait()
		if _, w2 := w.state(); w2 != 1 {
			t.Errorf("a later record was written %d times before its own interval", w2-1)
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if got, _ := w.state(); !strings.Contains(got, "msg=later") {
			t.Errorf("the later record was not written after its interval:\n%s", got)
		}
	})
}

// TestLogBufferErrorsAtOnce checks that an ERROR record, and everything
// logged before it, is written without waiting for the interval.
func TestLogBufferErrorsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &countingWriter{}
		b, h := telemetry.NewLogBuffer(w, time.Hour, textHandler)
		defer b.Close()
		log := slog.New(h)
		log.Info("first")
		log.Error("broken", slog.String("error", "disk gone"))
		synctest.Wait()
		got, _ := w.state()
		if !strings.Contains(got, "msg=first") || !strings.Contains(got, `error="disk gone"`) {
			t.Errorf("an ERROR record and the one before it were not written at once:\n%q", got)
		}
	})
}

// TestLogBufferCloseLosesNothing logs more records than the queue and the
// write buffer hold, from several goroutines, closes, and finds every
// record exactly once, each goroutine's in order; records logged after
// Close are written at once.
func TestLogBufferCloseLosesNothing(t *testing.T) {
	const goroutines, perG = 8, 2000
	w := &countingWriter{}
	b, h := telemetry.NewLogBuffer(w, time.Hour, textHandler)
	log := slog.New(h).With(slog.String("access", "yes"))
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range perG {
				log.InfoContext(context.Background(), "rpc", slog.Int("g", g), slog.Int("i", i))
			}
		})
	}
	wg.Wait()
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	got, writes := w.state()
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if len(lines) != goroutines*perG {
		t.Fatalf("%d records written, want %d", len(lines), goroutines*perG)
	}
	next := make([]int, goroutines)
	for _, l := range lines {
		var g, i int
		k := strings.Index(l, "access=yes g=")
		if k < 0 {
			t.Fatalf("record without its attributes: %q", l)
		}
		if _, err := fmt.Sscanf(l[k:], "access=yes g=%d i=%d", &g, &i); err != nil {
			t.Fatalf("record %q: %v", l, err)
		}
		if i != next[g] {
			t.Fatalf("goroutine %d: record %d written where %d was due", g, i, next[g])
		}
		next[g]++
	}
	if writes >= len(lines)/10 {
		t.Errorf("%d writes for %d records; want them batched", writes, len(lines))
	}

	log.Info("after close")
	if got, _ := w.state(); !strings.HasSuffix(got, "msg=\"after close\" access=yes\n") {
		t.Errorf("a record logged after Close was not written at once: %q", got[max(0, len(got)-100):])
	}
}

// TestLogBufferFlush checks that Flush returns with every record written.
func TestLogBufferFlush(t *testing.T) {
	w := &countingWriter{}
	b, h := telemetry.NewLogBuffer(w, time.Hour, func(w io.Writer) slog.Handler {
		return telemetry.NewLogHandler(textHandler(w))
	})
	defer b.Close()
	log := slog.New(h).WithGroup("g")
	for i := range 10 {
		log.Info("rpc", slog.Int("i", i))
	}
	b.Flush()
	if got, _ := w.state(); strings.Count(got, "\n") != 10 || !strings.Contains(got, "g.i=9") {
		t.Errorf("after Flush: %q, want the 10 records", got)
	}
}
