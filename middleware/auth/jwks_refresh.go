package auth

// The refresher of a keyStore: when and how sources are re-read, the
// unknown-kid budget, and the lifecycle. It is named for the JWKS URL, the
// source whose fetches it exists to take off the RPC path, but it re-reads
// key files on the same schedule machinery.

import (
	"context"
	"log/slog"
	"time"
)

// refreshUnknownKID is called when a token names a kid the active set
// lacks. Unless an unknown kid got the JWKS URL an answer less than
// unknownEvery ago, it asks the refresher for a fetch and waits for it
// until ctx ends or unknownWait passes. It returns the active set then.
func (s *keyStore) refreshUnknownKID(ctx context.Context) *keySet {
	if s.jwksURL == "" {
		return s.cur.Load()
	}
	if done := s.requestFetch(time.Now()); done != nil {
		wait := time.NewTimer(s.unknownWait)
		defer wait.Stop()
		select {
		case <-done:
		case <-ctx.Done():
		case <-wait.C:
		}
	}
	return s.cur.Load()
}

// requestFetch asks for a fetch of the JWKS URL on behalf of an unknown
// kid. It returns nil if the budget is spent or the store is closed, else
// a channel closed when the fetch that serves the request has ended. While
// a failed fetch waits for its retry, the retry serves the request.
func (s *keyStore) requestFetch(now time.Time) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || !s.unknownAllowed(now) {
		return nil
	}
	if s.waiters == nil {
		s.waiters = make(chan struct{})
	}
	if s.failures == 0 || !now.Before(s.nextURL) {
		s.startLocked()
	}
	return s.waiters
}

// unknownAllowed reports whether an unknown kid may cause a fetch at now.
// Only fetches that got an answer spend the budget.
func (s *keyStore) unknownAllowed(now time.Time) bool {
	return s.unknownSpent.IsZero() || now.Sub(s.unknownSpent) >= s.unknownEvery
}

// tick is the timer's function: a source is due.
func (s *keyStore) tick() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.startLocked()
}

// startLocked starts the refresh goroutine, or asks the running one for
// one more run.
func (s *keyStore) startLocked() {
	switch {
	case s.closed:
	case s.running:
		s.again = true
	default:
		s.running = true
		s.wg.Add(1)
		go s.run()
	}
}

// scheduleLocked arms the timer for the next source that falls due.
func (s *keyStore) scheduleLocked() {
	var next time.Time
	if len(s.fileStamps) > 0 {
		next = s.nextFiles
	}
	if s.jwksURL != "" && (next.IsZero() || s.nextURL.Before(next)) {
		next = s.nextURL
	}
	if s.closed || next.IsZero() {
		return
	}
	d := max(time.Until(next), 0)
	if s.timer == nil {
		s.timer = time.AfterFunc(d, s.tick)
	} else {
		s.timer.Reset(d)
	}
}

// refreshPlan is what one run of the refresh goroutine does.
type refreshPlan struct {
	files   bool          // check the key files
	fetch   bool          // fetch the JWKS URL
	unknown bool          // the fetch serves unknown kids: an answer spends their budget
	done    chan struct{} // closed when the run ends; nil if nobody waits
}

// run refreshes until no more runs are asked for.
func (s *keyStore) run() {
	defer s.wg.Done()
	for {
		p := s.plan(time.Now())
		changed := p.files && s.reloadFiles()
		var answered bool
		if p.fetch {
			var urlChanged bool
			urlChanged, answered = s.fetchURL(s.ctx)
			changed = changed || urlChanged
		}
		if !s.finish(p, changed, answered) {
			return
		}
	}
}

// plan decides what a run does and takes the callers it will release.
func (s *keyStore) plan(now time.Time) refreshPlan {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.again = false
	p := refreshPlan{files: len(s.fileStamps) > 0 && !now.Before(s.nextFiles)}
	if s.jwksURL == "" {
		return p
	}
	due := !now.Before(s.nextURL)
	p.fetch = due
	if s.waiters != nil {
		switch {
		case !s.unknownAllowed(now):
			// A fetch answered since they asked: they have its keys.
			p.done, s.waiters = s.waiters, nil
		case s.failures > 0 && !due:
			// They wait for the retry.
		default:
			p.fetch, p.unknown = true, true
			p.done, s.waiters = s.waiters, nil
		}
	}
	return p
}

// finish records the end of a run, publishes changed keys, releases the
// run's callers and either claims one more run (true) or arms the timer.
func (s *keyStore) finish(p refreshPlan, changed, answered bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if p.files {
		s.nextFiles = now.Add(s.fileEvery)
	}
	if p.unknown && answered {
		s.unknownSpent = now
	}
	if changed {
		s.publish()
	}
	if p.done != nil {
		close(p.done)
	}
	if s.again && !s.closed {
		return true
	}
	s.running = false
	s.scheduleLocked()
	return false
}

// fetchURL fetches the JWKS URL within fetchTimeout and schedules the next
// fetch: after urlEvery on success, after a backoff on failure (1 s,
// doubling up to retryMax). It reports whether the URL keys changed and
// whether the server answered. A failure keeps the last good keys and logs
// one warning, unless the store is closing.
func (s *keyStore) fetchURL(ctx context.Context) (changed, answered bool) {
	ctx, cancel := context.WithTimeout(ctx, s.fetchTimeout)
	defer cancel()
	keys, answered, err := fetchJWKS(ctx, s.client, s.jwksURL)
	s.mu.Lock()
	if err != nil {
		s.failures++
		s.nextURL = time.Now().Add(retryDelay(s.failures, s.retryMax))
	} else {
		s.failures = 0
		s.nextURL = time.Now().Add(s.urlEvery)
	}
	closing := s.closed
	s.mu.Unlock()
	switch {
	case err != nil && !closing:
		s.logger.LogAttrs(ctx, slog.LevelWarn, "jwks_refresh_failed", slog.String("error", err.Error()))
	case err == nil && !sameKeys(keys, s.urlKeys):
		s.urlKeys = keys
		s.logger.LogAttrs(ctx, slog.LevelInfo, "jwks_refreshed", slog.Int("keys", len(keys)))
		return true, answered
	}
	return false, answered
}

// retryDelay is the wait before the retry that follows the given number of
// consecutive failures: 1 s, doubling up to limit.
func retryDelay(failures int, limit time.Duration) time.Duration {
	d := time.Second
	for i := 1; i < failures && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// close stops the refresher: no run starts any more, a fetch in progress is
// cancelled, and close returns once the refresh goroutine has. Callers
// waiting for a fetch are released.
func (s *keyStore) close() {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		if s.timer != nil {
			s.timer.Stop()
		}
		if s.waiters != nil {
			close(s.waiters)
			s.waiters = nil
		}
	}
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
}

// Close stops refreshing keys: it cancels a key fetch in progress and waits
// for the refresher to return. The Authenticator goes on verifying tokens
// with the keys it has. Close may be called more than once.
func (a *Authenticator) Close() {
	a.keys.close()
}
