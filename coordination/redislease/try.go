package redislease

import (
	"context"
	"errors"
	"fmt"

	"github.com/greeter/greeter/coordination"
)

// TryAcquire implements coordination.LeaseTrier: it takes key for holder
// in one round trip if no holder has it, and otherwise fails with
// coordination.ErrLeaseHeld without asking the holder anything. While
// Redis does not answer it fails with ErrUnreachable, since it cannot
// tell; it never grants an unbacked lease. holder must not contain spaces.
func (l *Leases) TryAcquire(ctx context.Context, key, holder string) (coordination.Lease, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !l.br.Usable() {
		return nil, ErrUnreachable
	}
	ls := l.newLease(key, holder)
	cur, err := l.try(ctx, ls, "", false)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrUnreachable, err)
	case cur != "":
		return nil, coordination.ErrLeaseHeld
	}
	l.register(ls)
	return ls, nil
}

// ErrUnreachable is returned by TryAcquire when Redis did not answer.
var ErrUnreachable = errors.New("redislease: redis unreachable")
