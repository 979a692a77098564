package main

import (
	"context"
	"log/slog"
	"time"
)

// uploadExpirer removes incomplete resumable uploads last written more than
// olderThan ago, and temporaries a crash left behind, returning how many it
// removed. *diskstore.Live and *s3store.Store implement it. Neither removes
// an upload a stream of this process holds; with --redis-url the S3 store
// also leaves those whose lease another replica holds, and holds the lease
// of each upload it removes (s3store.Store.CleanExpiredUploads), so no
// replica's janitor expires an upload another replica is writing.
type uploadExpirer interface {
	CleanExpiredUploads(olderThan time.Duration) (int, error)
	CleanTemporaries(olderThan time.Duration) (int, error)
}

// expireUploads deletes the incomplete resumable uploads that made no
// progress for ttl, the same --resumable-ttl the service is given: once at
// start-up, then every tenth of ttl (at least a second, at most an hour). A
// pass that removes something or fails is logged in one record. The
// returned func stops the expiry and waits for a pass in progress, so the
// store may be closed once it returns.
func expireUploads(ctx context.Context, store uploadExpirer, ttl time.Duration, log *slog.Logger) (stop func()) {
	every := min(max(ttl/10, time.Second), time.Hour)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		timer := time.NewTimer(0)
		defer timer.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
			expirePass(store, ttl, log)
			timer.Reset(every)
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// expirePass runs one pass of expireUploads and logs its outcome. It also
// removes temporaries left by a crash (the store keeps any younger than
// its MinTemporaryAge, an hour on both stores, so in-flight uploads are
// safe), since a crash
// followed by a quick restart leaves them too young for the start-up pass.
func expirePass(store uploadExpirer, ttl time.Duration, log *slog.Logger) {
	cleanTemporaries(store, log)
	n, err := store.CleanExpiredUploads(ttl)
	switch {
	case err != nil:
		log.Warn("expiring incomplete uploads failed",
			slog.Int("count", n), slog.Duration("older_than", ttl), slog.Any("error", err))
	case n > 0:
		log.Info("expired incomplete uploads", slog.Int("count", n), slog.Duration("older_than", ttl))
	}
}

// cleanTemporaries removes stale temporaries and logs the pass once.
func cleanTemporaries(store uploadExpirer, log *slog.Logger) {
	if n, err := store.CleanTemporaries(0); err != nil {
		log.Warn("janitor failed", slog.Any("error", err))
	} else if n > 0 {
		log.Info("janitor removed stale temporaries", slog.Int("count", n))
	}
}
