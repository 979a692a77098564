// Package redistest runs a real redis-server for tests (e2etest.Redis, the
// launcher the e2e tests use): on a free loopback port, in a temporary
// directory, with persistence off, stopped when the test ends. A test can SIGKILL it and start it again on the same port to
// play an outage.
//
// It needs the redis-server binary (Debian's redis-server), which
// sysdeps.LookPath installs when it is missing and the test runs as root;
// otherwise the test fails and says so. Like httptest it starts the real
// thing in-process; unlike a fake it speaks every command and runs Lua.
package redistest

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/greeter/greeter/e2e/e2etest"
	"github.com/greeter/greeter/internal/sysdeps"
)

// Server is a redis-server process owned by one test.
type Server struct {
	tb testing.TB
	r  *e2etest.Redis
}

// Start starts a redis-server on a free 127.0.0.1 port and stops it when tb
// ends. It fails tb if redis-server is not installed or does not answer.
// args are added to redis-server's command line, such as "--requirepass",
// "secret"; a server with a password still answers PING (with an error
// that shows it is up).
func Start(tb testing.TB, args ...string) *Server {
	tb.Helper()
	sysdeps.LookPath(tb, "redis-server", "redis-server")
	r, err := e2etest.LaunchRedis(tb.TempDir(), args...)
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	tb.Cleanup(r.Kill)
	return &Server{tb: tb, r: r}
}

// Addr returns the server's host:port.
func (s *Server) Addr() string { return s.r.Addr }

// URL returns the server's redis:// URL, database 0.
func (s *Server) URL() string { return s.r.URL() }

// Client returns a client of the server with the options greeterd uses for
// limits (those redislimit.Tune sets: no retries, context deadlines
// honoured, no maintenance notifications), closed when the test ends.
func (s *Server) Client(tb testing.TB) *redis.Client {
	tb.Helper()
	rdb := redis.NewClient(&redis.Options{
		Addr: s.Addr(), MaxRetries: -1, ContextTimeoutEnabled: true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
	tb.Cleanup(func() { rdb.Close() })
	return rdb
}

// Kill SIGKILLs the server and waits for it to exit. Its data is lost.
func (s *Server) Kill() { s.r.Kill() }

// Restart starts a killed server again on the same port, empty, and waits
// until it answers PING.
func (s *Server) Restart() {
	s.tb.Helper()
	s.r.Kill()
	if err := s.r.Start(); err != nil {
		s.tb.Fatalf("redistest: restart: %v", err)
	}
}

// RoundTrips counts the round trips a client makes: each command, and each
// pipeline as one.
type RoundTrips struct{ n atomic.Int64 }

// CountRoundTrips adds a hook to rdb that counts its round trips.
func CountRoundTrips(rdb *redis.Client) *RoundTrips {
	rt := &RoundTrips{}
	rdb.AddHook(rt)
	return rt
}

// Load returns the round trips counted so far.
func (rt *RoundTrips) Load() int64 { return rt.n.Load() }

// DialHook implements redis.Hook.
func (rt *RoundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook implements redis.Hook.
func (rt *RoundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		rt.n.Add(1)
		return next(ctx, cmd)
	}
}

// ProcessPipelineHook implements redis.Hook.
func (rt *RoundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		rt.n.Add(1)
		return next(ctx, cmds)
	}
}
