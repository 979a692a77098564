package redisusage

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// maxAttempts bounds the script calls of one Get or Reserve: a first try,
// one after reconciling, one after reconciling again because the quota
// refused.
const maxAttempts = 3

// flight is a reconciliation in progress in this process; callers that
// need the same owner reconciled wait for it.
type flight struct {
	done chan struct{}
	err  error
}

// redisError marks a failure of Redis, as opposed to one of the tally.
type redisError struct{ err error }

func (e redisError) Error() string { return fmt.Sprintf("redisusage: %v", e.err) }
func (e redisError) Unwrap() error { return e.err }

func errRedis(err error) bool {
	var re redisError
	return errors.As(err, &re)
}

// Ages of the entry that spare a reconciliation (see reconcile).
const (
	anyAge = -1 // the entry was missing: any entry will do
	noAge  = 0  // always reconcile
)

// reconcile sets owner's entry from a tally of the storage, unless it is
// at most fresh old by then (another replica reconciled it while this one
// decided to), or waits for the reconciliation of owner this process has
// in progress. It returns a redisError if Redis failed, and the tally's
// error as it is.
func (u *Usage) reconcile(ctx context.Context, owner string, fresh time.Duration) error {
	u.mu.Lock()
	if f := u.flights[owner]; f != nil {
		u.mu.Unlock()
		select {
		case <-f.done:
			return f.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f := &flight{done: make(chan struct{})}
	u.flights[owner] = f
	u.mu.Unlock()

	f.err = u.reconcileOnce(ctx, owner, fresh)
	u.mu.Lock()
	delete(u.flights, owner)
	if f.err == nil {
		delete(u.dirty, owner)
	}
	u.mu.Unlock()
	close(f.done)
	return f.err
}

// reconcileOnce notes when the tally begins and what reconciled_at was,
// tallies, and writes the result unless another replica reconciled owner
// meanwhile (then its figure, as fresh, stands).
func (u *Usage) reconcileOnce(ctx context.Context, owner string, fresh time.Duration) error {
	key := u.key(owner)
	age := int64(anyAge)
	if fresh >= 0 {
		age = fresh.Milliseconds()
	}
	v, err := u.run(ctx, beginScript, []string{key}, age).Slice()
	if err != nil {
		return redisError{err}
	}
	if len(v) == 0 {
		return nil // fresh enough
	}
	if len(v) != 2 {
		return redisError{fmt.Errorf("begin reconciliation: %d values, want 2", len(v))}
	}
	used, holds, err := u.tally(ctx, owner)
	if err != nil {
		return err
	}
	args := make([]any, 0, 5+3*len(holds))
	args = append(args, v[0], v[1], used.Bytes, used.Objects, u.o.IdleTTL.Milliseconds())
	for name, h := range holds {
		args = append(args, u.field(name), h.Bytes, h.Objects)
	}
	if err := u.run(ctx, reconcileScript, []string{key}, args...).Err(); err != nil {
		return redisError{err}
	}
	return nil
}
