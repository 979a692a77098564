package coordination

import (
	"context"
	"fmt"
)

// Amount is a quantity of storage.
type Amount struct {
	Bytes, Objects int64
}

// Plus returns a + b.
func (a Amount) Plus(b Amount) Amount { return Amount{a.Bytes + b.Bytes, a.Objects + b.Objects} }

// Minus returns a - b.
func (a Amount) Minus(b Amount) Amount { return Amount{a.Bytes - b.Bytes, a.Objects - b.Objects} }

// Usage keeps what each owner stores: its committed storage plus the holds
// of its incomplete uploads, each named, and enforces quotas when storage
// is set aside. An implementation that replicas share (redisusage) lets
// them enforce one quota between them. Implementations must be safe for
// concurrent use.
type Usage interface {
	// Get returns what owner's committed storage and holds take.
	Get(ctx context.Context, owner string) (Amount, error)
	// Reserve makes a the hold named hold, replacing the one it had, if
	// owner stays within quota (zero fields: no limit) with it, or if a
	// grows nothing; otherwise it fails with a *QuotaError and changes
	// nothing.
	Reserve(ctx context.Context, owner, hold string, a, quota Amount) error
	// Settle drops the hold named hold, if any (hold may be ""), and
	// counts d more committed storage: an upload's share when it is
	// published, a deleted file's size taken off.
	Settle(ctx context.Context, owner, hold string, d Amount)
	// Release drops the hold named hold, if any.
	Release(ctx context.Context, owner, hold string)
}

// Tally counts an owner from the storage itself: its committed storage,
// and the holds of the incomplete uploads the storage records, by name. A
// Usage uses it the first time it sees an owner and to correct drift.
type Tally func(ctx context.Context, owner string) (used Amount, holds map[string]Amount, err error)

// QuotaError is a Reserve refused by a quota.
type QuotaError struct {
	// Objects is true when the objects quota refused, false for bytes.
	Objects bool
	// Limit is that quota; Used is what the owner has without the hold
	// being set; Need is the hold asked for.
	Limit, Used, Need int64
}

func (e *QuotaError) Error() string {
	subject := "bytes"
	if e.Objects {
		subject = "objects"
	}
	return fmt.Sprintf("coordination: %s quota %d exceeded: %d in use, %d more needed", subject, e.Limit, e.Used, e.Need)
}

// Fits checks that replacing the hold cur by next keeps an owner whose
// usage is total within quota, and returns the *QuotaError if not. What
// does not grow always fits, so an owner above a lowered quota can still
// shrink.
func Fits(total, cur, next, quota Amount) error {
	if quota.Bytes > 0 && next.Bytes > cur.Bytes && total.Bytes-cur.Bytes+next.Bytes > quota.Bytes {
		return &QuotaError{Limit: quota.Bytes, Used: total.Bytes - cur.Bytes, Need: next.Bytes}
	}
	if quota.Objects > 0 && next.Objects > cur.Objects && total.Objects-cur.Objects+next.Objects > quota.Objects {
		return &QuotaError{Objects: true, Limit: quota.Objects, Used: total.Objects - cur.Objects, Need: next.Objects}
	}
	return nil
}
