package coordination

import (
	"context"
	"errors"
	"sync"
)

// Leases grants exclusive holds on keys, such as the one writer of a
// resumable upload. A shared implementation (redislease) holds them with a
// TTL that its holder keeps alive, so that the lease of a process that dies
// is free again within a bound; LocalLeases holds them in one process.
//
// A lease is a hint that makes contention cheap and prompt, never the only
// guard: what it protects must still be fenced where it is stored (the S3
// store's state object is written with If-Match), because a holder may
// miss that it lost its lease.
type Leases interface {
	// Acquire takes key for holder, a name of the acquirer that no other
	// acquirer uses. If another holder has key, LocalLeases fails with
	// ErrLeaseHeld; a shared implementation asks the holder to let go and
	// takes the key once it does, or after a short bound if it neither
	// lets go nor is alive to answer (see redislease). Acquire returns
	// ctx.Err() if ctx ends first.
	Acquire(ctx context.Context, key, holder string) (Lease, error)
}

// LeaseTrier is implemented by Leases that can take a key only if no
// holder has it, without asking anyone to let go: what a janitor needs, so
// that it never removes what a writer on any replica holds, and no writer
// takes what it is removing.
type LeaseTrier interface {
	// TryAcquire takes key for holder if no holder has it, and fails with
	// ErrLeaseHeld if another holder has it. Any other error means that it
	// cannot tell (a shared implementation whose backend did not answer),
	// and that the key was not taken.
	TryAcquire(ctx context.Context, key, holder string) (Lease, error)
}

// Lease is a held key.
type Lease interface {
	// Lost returns a channel that is closed when the holder must stop
	// using what the lease guards: another acquirer asked for the key, or
	// the key was found taken. The holder then stops, and calls Release
	// promptly. A nil channel means the lease is never lost.
	Lost() <-chan struct{}
	// Release gives the key up. It is safe to call more than once.
	Release()
}

// ErrLeaseHeld is returned by LocalLeases.Acquire when another holder has
// the key.
var ErrLeaseHeld = errors.New("coordination: lease held by another holder")

// LocalLeases holds leases in this process: a second acquirer of a key is
// refused until the first releases it. Nothing expires, since the leases of
// a process that dies die with it; none is ever lost.
type LocalLeases struct {
	mu   sync.Mutex
	held map[string]string // key → holder
}

var (
	_ Leases     = (*LocalLeases)(nil)
	_ LeaseTrier = (*LocalLeases)(nil)
)

// NewLocalLeases returns LocalLeases with no key held.
func NewLocalLeases() *LocalLeases {
	return &LocalLeases{held: make(map[string]string)}
}

// Acquire implements Leases. A holder that has key already gets it again.
func (l *LocalLeases) Acquire(ctx context.Context, key, holder string) (Lease, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if cur, ok := l.held[key]; ok && cur != holder {
		return nil, ErrLeaseHeld
	}
	l.held[key] = holder
	return &localLease{l: l, key: key, holder: holder}, nil
}

// TryAcquire implements LeaseTrier; in one process it is Acquire.
func (l *LocalLeases) TryAcquire(ctx context.Context, key, holder string) (Lease, error) {
	return l.Acquire(ctx, key, holder)
}

type localLease struct {
	l           *LocalLeases
	key, holder string
	once        sync.Once
}

func (*localLease) Lost() <-chan struct{} { return nil }

func (ll *localLease) Release() {
	ll.once.Do(func() {
		ll.l.mu.Lock()
		defer ll.l.mu.Unlock()
		if ll.l.held[ll.key] == ll.holder {
			delete(ll.l.held, ll.key)
		}
	})
}
