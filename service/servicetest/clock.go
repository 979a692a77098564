package servicetest

import (
	"time"

	"github.com/greeter/greeter/internal/fakeclock"
)

// Clock is a fake clock. It starts at 2030-01-01 00:00 UTC and moves only
// when Advance is called. It is safe for concurrent use.
type Clock = fakeclock.Clock

// NewClock returns a Clock at its starting time.
func NewClock() *Clock {
	return fakeclock.New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
}
