package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/greeter/greeter/coordination"
	"github.com/greeter/greeter/coordination/redislimit"
	"github.com/greeter/greeter/telemetry"
)

// redisPasswordEnv names the Redis password when --redis-url has none. It
// is read from the environment only, never from a flag or the config file,
// so that it shows in neither ps nor a file of settings.
const redisPasswordEnv = "GREETER_REDIS_PASSWORD"

// redisConfig is how greeterd shares its per-identity limits with the other
// replicas of one service.
type redisConfig struct {
	url string
}

func (c *redisConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.url, "redis-url", "", "share the per-identity limits (and with --storage s3 the upload leases and usage) with other replicas through Redis: redis://HOST:PORT/DB, or rediss:// for TLS; "+
		"password in the URL or $"+redisPasswordEnv+" (default: limits kept in this process)")
}

// options parses --redis-url: nil without it. The password is the URL's,
// else $GREETER_REDIS_PASSWORD. No error repeats the URL, which may hold
// the password.
func (c *redisConfig) options(getenv func(string) string) (*redis.Options, error) {
	if c.url == "" {
		return nil, nil
	}
	u, err := url.Parse(c.url)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL
		}
		return nil, usageError{fmt.Errorf("--redis-url is not a URL: %v", err)}
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, usageError{fmt.Errorf("--redis-url must start with redis:// or rediss://, got %q", u.Scheme+":")}
	}
	o, err := redis.ParseURL(c.url)
	if err != nil {
		return nil, usageError{fmt.Errorf("--redis-url: %v", err)}
	}
	if o.Password == "" {
		o.Password = getenv(redisPasswordEnv)
	}
	return redislimit.Tune(o), nil
}

// open returns the state of the per-identity limits for
// ratelimit.Options.Limits: nil for o == nil (ratelimit keeps them in this
// process), else limits shared through Redis that fall back to limits of
// this process (bounded by maxKeys and idle) while Redis does not answer.
// greeterd serves whether or not Redis answers at start. close stops the
// lease refresher and closes the client; call it after the server stopped.
func (c *redisConfig) open(o *redis.Options, maxKeys int, idle time.Duration, log *slog.Logger, metrics *telemetry.Metrics) (limits coordination.Limits, close func()) {
	if o == nil {
		return nil, func() {}
	}
	// go-redis logs every failed dial itself; the breaker logs an outage
	// once, so go-redis's lines go to debug, through the one logger.
	redis.SetLogger(redisLogger{log})
	rdb := redis.NewClient(o)
	shared := redislimit.New(rdb, coordination.NewLocal(coordination.LocalOptions{MaxKeys: maxKeys, IdleTTL: idle}), redislimit.Options{
		MaxKeys:    maxKeys,
		IdleTTL:    idle,
		Logger:     log,
		OnFallback: metrics.CoordinationFallback,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if shared.Ping(ctx) == nil { // a failure is logged by the breaker, once
		log.Info("per-identity limits shared through redis",
			slog.String("addr", o.Addr), slog.Int("db", o.DB), slog.Bool("tls", o.TLSConfig != nil))
	}
	return shared, func() {
		shared.Close()
		rdb.Close()
	}
}

// redisLogger is go-redis's logger on slog, at debug level.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, "redis client", slog.String("detail", fmt.Sprintf(format, v...)))
}
