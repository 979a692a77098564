package main

import (
	"log/slog"
	"time"

	"google.golang.org/grpc/health"
)

// stopper is the part of *grpc.Server a drain stops.
type stopper interface {
	// GracefulStop stops taking connections and calls and returns once
	// the calls in flight have finished.
	GracefulStop()
	// Stop closes every connection, cancelling the calls in flight.
	Stop()
}

// drain is how greeterd stops on SIGTERM without failing a client that can
// go elsewhere.
type drain struct {
	// health is the server's grpc.health.v1 service.
	health *health.Server
	// stopWatch stops the storage watch, which would otherwise keep
	// probing and logging changes health no longer shows.
	stopWatch func()
	// delay is how long the server keeps serving after it reports
	// NOT_SERVING, so that clients balancing over replicas (their health
	// Watch) and load balancers polling Check move new calls elsewhere.
	delay time.Duration
	// timeout bounds the wait for the calls in flight after the server
	// stopped taking new ones.
	timeout time.Duration
	log     *slog.Logger
}

// stop drains srv and returns once it has stopped, within delay + timeout:
//
//  1. Health reports NOT_SERVING for the server and every service at once,
//     and nothing can turn it back (health.Server.Shutdown ignores later
//     updates; the storage watch is stopped too).
//  2. For delay, the server still takes new connections and calls, from
//     clients that have not seen the change yet.
//  3. Then it stops taking them (GracefulStop: the listener closes, clients
//     get GOAWAY) and lets the calls in flight finish for up to timeout.
//  4. Then it cancels those still running (Stop).
func (d drain) stop(srv stopper) {
	d.health.Shutdown()
	d.stopWatch()
	d.log.Info("shutting down: health reports NOT_SERVING; still serving for the drain delay",
		slog.Duration("drain_delay", d.delay), slog.Duration("timeout", d.timeout))
	if d.delay > 0 {
		time.Sleep(d.delay)
	}
	d.log.Info("shutting down: no new calls; draining in-flight calls", slog.Duration("timeout", d.timeout))
	drained := make(chan struct{})
	go func() {
		srv.GracefulStop()
		close(drained)
	}()
	timer := time.NewTimer(d.timeout)
	defer timer.Stop()
	select {
	case <-drained:
		d.log.Info("drained; stopped")
	case <-timer.C:
		d.log.Warn("drain timed out; cancelling the remaining calls")
		srv.Stop()
		<-drained
	}
}
