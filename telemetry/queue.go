package telemetry

import (
	"context"
	"errors"
	"sync"

	"go.opentelemetry.io/otel/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// droppingProcessor puts finished spans on a bounded queue without ever
// blocking the goroutine that ends them, and counts the spans it drops when
// the queue is full. One goroutine moves queued spans to next, a batch span
// processor configured to block when its own queue is full, so back-pressure
// from a slow exporter stops at this queue.
//
// The SDK's batch span processor drops spans too, but counts them only in an
// unexported field, or in its self-observability metric, which is opt-in
// through OTEL_GO_X_OBSERVABILITY and goes to the global MeterProvider.
type droppingProcessor struct {
	next    sdktrace.SpanProcessor
	queue   chan queuedSpan
	dropped metric.Int64Counter

	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
}

// queuedSpan is a finished span, or a flush marker when flushed is set.
type queuedSpan struct {
	span    sdktrace.ReadOnlySpan
	flushed chan struct{}
}

var _ sdktrace.SpanProcessor = (*droppingProcessor)(nil)

// newDroppingProcessor starts a droppingProcessor holding at most size spans
// in front of next. Shutdown stops it.
func newDroppingProcessor(next sdktrace.SpanProcessor, size int, dropped metric.Int64Counter) *droppingProcessor {
	p := &droppingProcessor{
		next:    next,
		queue:   make(chan queuedSpan, size),
		dropped: dropped,
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	go p.run()
	return p
}

// OnStart passes the started span to next.
func (p *droppingProcessor) OnStart(ctx context.Context, s sdktrace.ReadWriteSpan) {
	p.next.OnStart(ctx, s)
}

// OnEnd queues a sampled span, or drops and counts it when the queue is
// full. It never blocks.
func (p *droppingProcessor) OnEnd(s sdktrace.ReadOnlySpan) {
	if !s.SpanContext().IsSampled() {
		return
	}
	select {
	case <-p.stop:
		return
	default:
	}
	select {
	case p.queue <- queuedSpan{span: s}:
	default:
		p.dropped.Add(context.Background(), 1)
	}
}

// ForceFlush waits until the spans queued before the call have reached next,
// then flushes next.
func (p *droppingProcessor) ForceFlush(ctx context.Context) error {
	marker := make(chan struct{})
	select {
	case p.queue <- queuedSpan{flushed: marker}:
	case <-p.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-marker:
	case <-p.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	return p.next.ForceFlush(ctx)
}

// Shutdown moves the spans still queued to next and shuts next down,
// waiting no longer than ctx allows. Spans ended after Shutdown are ignored.
func (p *droppingProcessor) Shutdown(ctx context.Context) error {
	p.stopOnce.Do(func() { close(p.stop) })
	var err error
	select {
	case <-p.done:
	case <-ctx.Done():
		// next.Shutdown below stops next from accepting spans, which
		// releases run if it is blocked handing one over.
		err = ctx.Err()
	}
	return errors.Join(err, p.next.Shutdown(ctx))
}

func (p *droppingProcessor) run() {
	defer close(p.done)
	for {
		select {
		case q := <-p.queue:
			p.forward(q)
		case <-p.stop:
			for {
				select {
				case q := <-p.queue:
					p.forward(q)
				default:
					return
				}
			}
		}
	}
}

func (p *droppingProcessor) forward(q queuedSpan) {
	if q.flushed != nil {
		close(q.flushed)
		return
	}
	p.next.OnEnd(q.span)
}
