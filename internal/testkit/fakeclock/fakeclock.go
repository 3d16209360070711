// Package fakeclock is a settable clock for unit tests of handlers that
// read the time through a Now func() time.Time field.
//
// A test gives the handler Clock.Now and moves the time on with Advance, for
// instance from a fake's hook while the handler runs.
package fakeclock

import (
	"sync"
	"time"
)

// Clock is a clock that stands still until it is advanced. It is safe for
// concurrent use. The zero Clock reads the zero time.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// New returns a Clock that reads t.
func New(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock's time on by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
