// Package fakeclock is the settable clock tests pass where the code under
// test takes a Now function: it moves only when the test advances it. It is
// safe for concurrent use. (service/servicetest.Clock is this clock; the
// stores' own tests cannot import servicetest without an import cycle.)
package fakeclock

import (
	"sync"
	"time"
)

// Clock is a fake clock.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// New returns a Clock at start.
func New(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
