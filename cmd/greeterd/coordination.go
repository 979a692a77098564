package main

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/greeter/greeter/coordination"
	"github.com/greeter/greeter/coordination/redislease"
	"github.com/greeter/greeter/coordination/redisusage"
	"github.com/greeter/greeter/service/s3store"
	"github.com/greeter/greeter/telemetry"
)

// storageCoordination is what the S3 store shares with the other replicas
// through Redis when both --redis-url and --storage s3 are given: the
// leases of resumable uploads (a resume on any replica takes over from the
// stream holding the upload within seconds) and every owner's usage (one
// quota for all replicas). Both fall back on their own while Redis does
// not answer (logged once per outage, its end too, and each decision made
// so counted in greeter_coordination_fallbacks_total with
// coordination="leases" or "usage"): leases to the state object's
// conditional writes alone, usage to the store's count in this process.
type storageCoordination struct {
	rdb    *redis.Client
	leases *redislease.Leases
	log    *slog.Logger
	// metrics counts the fallbacks once countFallbacks has set it: the
	// store opens before greeterd's metrics exist.
	metrics atomic.Pointer[telemetry.Metrics]

	mu     sync.Mutex
	usages []*redisusage.Usage // made by the store, through share's factory
}

// coordination returns the coordination of the S3 store through Redis, or
// nil unless --storage is s3 and o is not nil (no --redis-url: the store
// keeps its leases and usage in this process). o comes from
// redisConfig.options. greeterd serves whether or not Redis answers at
// start.
func (sc *storageConfig) coordination(o *redis.Options, log *slog.Logger) *storageCoordination {
	if o == nil || sc.kind != storageS3 {
		return nil
	}
	c := &storageCoordination{rdb: redis.NewClient(o), log: log}
	c.leases = redislease.New(c.rdb, redislease.Options{
		Logger:     log,
		OnFallback: func(ctx context.Context) { c.metrics.Load().LeaseFallback(ctx) },
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if c.leases.Ping(ctx) == nil { // a failure is logged by the breaker, once
		log.Info("upload leases and usage shared through redis", slog.String("addr", o.Addr), slog.Int("db", o.DB))
	}
	return c
}

// share makes the S3 store that opts open share upload leases and usage
// through Redis. It does nothing on a nil c. The S3 storage wiring calls
// it on its options before s3store.Open.
func (c *storageCoordination) share(opts *s3store.Options) {
	if c == nil {
		return
	}
	opts.Leases = c.leases
	opts.Usage = func(tally coordination.Tally, local coordination.Usage) coordination.Usage {
		u := redisusage.New(c.rdb, tally, local, redisusage.Options{
			Logger:     c.log,
			OnFallback: func(ctx context.Context) { c.metrics.Load().UsageFallback(ctx) },
		})
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		u.Ping(ctx) // loads the scripts; a failure is logged by the breaker, once
		c.mu.Lock()
		c.usages = append(c.usages, u)
		c.mu.Unlock()
		return u
	}
}

// countFallbacks makes m count the decisions the leases and usage make
// without Redis from now on (both methods are nil-safe, as is a nil m). It
// does nothing on a nil c.
func (c *storageCoordination) countFallbacks(m *telemetry.Metrics) {
	if c != nil {
		c.metrics.Store(m)
	}
}

// close stops the keep-alive, listener and probers and closes the client;
// call it after the server and the store stopped. Leases still held
// expire within their TTL. It does nothing on a nil c.
func (c *storageCoordination) close() {
	if c == nil {
		return
	}
	c.mu.Lock()
	for _, u := range c.usages {
		u.Close()
	}
	c.mu.Unlock()
	c.leases.Close()
	c.rdb.Close()
}
