package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	pb "github.com/greeter/greeter/proto/greeterpb"
)

// healthConfig is how greeterd checks its storage for the health service.
type healthConfig struct {
	interval time.Duration
}

func (c *healthConfig) flags(fs *flag.FlagSet) {
	fs.DurationVar(&c.interval, "health-interval", 5*time.Second, "how often the storage is probed (the data directory written, or the bucket listed); health reports NOT_SERVING while it fails (a probe slower than this counts as failed; at least 100ms)")
}

// storageChecker probes the storage; nil means it can take uploads.
// *diskstore.Live implements it, and reopens a data directory that was
// removed and created again; *s3store.Store implements it by listing one
// key of the bucket.
type storageChecker interface {
	Check(ctx context.Context) error
}

// watchStorage makes the grpc.health.v1 status of the server ("") and of
// the Greeter service follow the storage: it checks once before returning,
// then every interval, logs each change of status once, and passes each
// result to report (when not nil) for the greeter_storage_serving metric. A check that
// takes longer than interval counts as failed until it returns. The
// returned func stops the watch; it does not wait for a check stuck in the
// filesystem.
func watchStorage(ctx context.Context, store storageChecker, hs *health.Server, interval time.Duration, log *slog.Logger, report func(serving bool)) (stop func()) {
	if interval <= 0 {
		interval = 5 * time.Second
	}
	interval = max(interval, minHealthInterval) // --health-interval has this floor too
	ctx, cancel := context.WithCancel(ctx)
	w := &storageWatch{store: store, hs: hs, interval: interval, log: log, report: report}
	first := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.run(ctx, first)
	}()
	select {
	case <-first:
	case <-done:
	}
	return func() {
		cancel()
		<-done
	}
}

type storageWatch struct {
	store    storageChecker
	hs       *health.Server
	interval time.Duration
	log      *slog.Logger
	report   func(serving bool)

	state healthpb.HealthCheckResponse_ServingStatus // last status set; UNKNOWN before the first
}

// run checks until ctx ends, closing first after the first result.
func (w *storageWatch) run(ctx context.Context, first chan<- struct{}) {
	results := make(chan error, 1) // a check outliving ctx still finishes
	timer := time.NewTimer(w.interval)
	defer timer.Stop()
	for {
		go func() { results <- w.store.Check(ctx) }()
		timer.Reset(w.interval)
		select {
		case err := <-results:
			w.set(err)
		case <-timer.C:
			w.set(fmt.Errorf("storage check did not finish within %v", w.interval))
			if first != nil {
				close(first)
				first = nil
			}
			select { // never two checks at once
			case err := <-results:
				w.set(err)
				continue
			case <-ctx.Done():
				return
			}
		case <-ctx.Done():
			return
		}
		if first != nil {
			close(first)
			first = nil
		}
		select {
		case <-timer.C:
		case <-ctx.Done():
			return
		}
	}
}

// set publishes the status err implies and logs it if it changed.
func (w *storageWatch) set(err error) {
	st := healthpb.HealthCheckResponse_SERVING
	if err != nil {
		st = healthpb.HealthCheckResponse_NOT_SERVING
	}
	for _, name := range []string{"", pb.Greeter_ServiceDesc.ServiceName} {
		w.hs.SetServingStatus(name, st)
	}
	if w.report != nil {
		w.report(err == nil)
	}
	prev := w.state
	w.state = st
	switch {
	case st == prev:
	case err != nil:
		w.log.Error("storage unhealthy: health reports NOT_SERVING", slog.Any("error", err))
	case prev == healthpb.HealthCheckResponse_NOT_SERVING:
		w.log.Info("storage healthy again: health reports SERVING")
	}
}
