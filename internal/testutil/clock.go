package testutil

import (
	"context"
	"sync"
	"time"
)

// FakeClock is a clock that moves only when a test says so: Advance moves
// it, and Sleep (for code that takes a sleeping clock, such as a token
// bucket) moves it by the duration asked instead of waiting. It is safe for
// concurrent use; its zero value is not ready, use NewFakeClock.
type FakeClock struct {
	mu      sync.Mutex
	now     time.Time
	slept   time.Duration
	onSleep func(time.Duration)
}

// FakeEpoch is where every FakeClock starts: a fixed instant, so that logs
// and encoded timestamps of a test are the same from run to run.
var FakeEpoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// NewFakeClock is a clock standing at FakeEpoch.
func NewFakeClock() *FakeClock { return &FakeClock{now: FakeEpoch} }

// NewFakeClockAt is a clock standing at t: the real time, for code that
// also builds context deadlines from it, which run on real timers.
func NewFakeClockAt(t time.Time) *FakeClock { return &FakeClock{now: t} }

// Now is the clock's time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Sleep returns ctx's error if it is done, else runs the OnSleep hook (if
// any), moves the clock by d and returns nil at once.
func (c *FakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	hook := c.onSleep
	c.mu.Unlock()
	if hook != nil {
		hook(d)
	}
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.slept += d
	c.mu.Unlock()
	return nil
}

// Slept is the total of every Sleep so far.
func (c *FakeClock) Slept() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.slept
}

// OnSleep sets a hook that each Sleep runs before the clock moves (nil
// removes it): a test uses it to act at the moment code under test waits.
func (c *FakeClock) OnSleep(hook func(d time.Duration)) {
	c.mu.Lock()
	c.onSleep = hook
	c.mu.Unlock()
}
