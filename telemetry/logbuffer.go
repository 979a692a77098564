package telemetry

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"sync"
	"time"
)

// DefaultLogFlushInterval bounds how long a record waits in a LogBuffer
// before it is written: short enough that `tail -f` and anything polling
// the log see a record at once, long enough that a busy server writes many
// records per write(2).
const DefaultLogFlushInterval = 100 * time.Millisecond

// logBufferQueue is how many records may wait for the writer goroutine
// before Handle blocks. Blocking, not dropping: an access log with holes is
// worse than a stalled call while the disk is stuck.
const logBufferQueue = 4096

// logBufferSize is the write buffer; a full buffer is written at once.
const logBufferSize = 64 << 10

// LogBuffer formats and writes log records on one goroutine of its own, so
// that logging a record costs the caller a queue send instead of a write(2)
// and the formatting's deep stack (slog resolves and appends each attribute
// through several frames) stays off the caller's goroutine: on a gRPC
// server every RPC runs on a fresh goroutine, whose stack would otherwise
// grow and be copied to hold the access log's formatting.
//
// A record is written no later than the flush interval after it was logged;
// ERROR records, when the buffer is full, and at Close, at once. Records
// keep their order. After Close, records are written synchronously.
//
// It is written here because slog has no asynchronous handler and the
// buffered writers we know of (bufio) have no bound on staleness.
type LogBuffer struct {
	queue    chan logEntry
	done     chan struct{}
	out      *bufio.Writer
	interval time.Duration

	// mu guards closed; Handle holds it shared while it queues, Close
	// exclusively while it closes, so nothing is queued after the stop
	// entry.
	mu     sync.RWMutex
	closed bool
	// syncMu serializes writes after Close.
	syncMu sync.Mutex
	once   sync.Once
	err    error
}

// logEntry is a record for handler h; or, when flushed is set, a request
// to flush and close it; or, when stop is set, the end.
type logEntry struct {
	ctx     context.Context
	h       slog.Handler
	r       slog.Record
	flushed chan struct{}
	stop    bool
}

// NewLogBuffer starts a LogBuffer writing to w. newHandler builds the
// formatting handler on the buffer's writer, for example
//
//	func(w io.Writer) slog.Handler { return NewLogHandler(slog.NewJSONHandler(w, opts)) }
//
// interval bounds how long a record waits; zero means
// DefaultLogFlushInterval. Close flushes and stops it.
func NewLogBuffer(w io.Writer, interval time.Duration, newHandler func(io.Writer) slog.Handler) (*LogBuffer, slog.Handler) {
	if interval <= 0 {
		interval = DefaultLogFlushInterval
	}
	b := &LogBuffer{
		queue:    make(chan logEntry, logBufferQueue),
		done:     make(chan struct{}),
		out:      bufio.NewWriterSize(w, logBufferSize),
		interval: interval,
	}
	go b.run()
	return b, &bufferedHandler{b: b, next: newHandler(b.out)}
}

// run writes queued records, flushing at most interval after the first
// unflushed one and at once after an ERROR record.
func (b *LogBuffer) run() {
	defer close(b.done)
	timer := time.NewTimer(b.interval)
	timer.Stop()
	armed := false
	for {
		select {
		case e := <-b.queue:
			if e.stop {
				b.err = b.out.Flush()
				return
			}
			if e.flushed != nil {
				_ = b.out.Flush()
				close(e.flushed)
				continue
			}
			_ = e.h.Handle(e.ctx, e.r)
			switch {
			case e.r.Level >= slog.LevelError:
				_ = b.out.Flush()
			case !armed && b.out.Buffered() > 0:
				timer.Reset(b.interval)
				armed = true
			}
		case <-timer.C:
			armed = false
			_ = b.out.Flush()
		}
	}
}

// Flush writes every record logged so far and returns once they are
// written.
func (b *LogBuffer) Flush() {
	b.mu.RLock()
	if !b.closed {
		ack := make(chan struct{})
		b.queue <- logEntry{flushed: ack}
		b.mu.RUnlock()
		<-ack
		return
	}
	b.mu.RUnlock()
	b.syncMu.Lock()
	defer b.syncMu.Unlock()
	_ = b.out.Flush()
}

// Close writes every record logged so far and stops the goroutine. Records
// logged later are written synchronously. It returns the final flush's
// error and may be called more than once.
func (b *LogBuffer) Close() error {
	b.once.Do(func() {
		b.mu.Lock()
		b.closed = true
		b.mu.Unlock()
		b.queue <- logEntry{stop: true}
		<-b.done
	})
	return b.err
}

// bufferedHandler queues records for its LogBuffer, to be formatted by
// next.
type bufferedHandler struct {
	b    *LogBuffer
	next slog.Handler
}

// Enabled asks the formatting handler, on the caller's goroutine.
func (h *bufferedHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

// Handle queues r, blocking while the queue is full.
func (h *bufferedHandler) Handle(ctx context.Context, r slog.Record) error {
	h.b.mu.RLock()
	if !h.b.closed {
		// Clone: the caller may reuse r's attribute storage.
		h.b.queue <- logEntry{ctx: ctx, h: h.next, r: r.Clone()}
		h.b.mu.RUnlock()
		return nil
	}
	h.b.mu.RUnlock()
	h.b.syncMu.Lock()
	defer h.b.syncMu.Unlock()
	err := h.next.Handle(ctx, r)
	if ferr := h.b.out.Flush(); err == nil {
		err = ferr
	}
	return err
}

// WithAttrs returns a handler queueing to the same buffer.
func (h *bufferedHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &bufferedHandler{b: h.b, next: h.next.WithAttrs(attrs)}
}

// WithGroup returns a handler queueing to the same buffer.
func (h *bufferedHandler) WithGroup(name string) slog.Handler {
	return &bufferedHandler{b: h.b, next: h.next.WithGroup(name)}
}
