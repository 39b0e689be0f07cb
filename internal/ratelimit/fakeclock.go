package ratelimit

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// FakeClock is a Clock for tests: it moves only when something sleeps on
// it or the test advances it.
type FakeClock struct {
	mu    sync.Mutex
	now   time.Time
	slept time.Duration
	// OnSleep, when set, runs in Sleep, before the clock moves.
	OnSleep func(time.Duration)
}

// NewFakeClock returns a fake clock at a fixed instant.
func NewFakeClock() *FakeClock {
	return &FakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

// Now is the fake time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Sleep advances the clock by d at once, unless ctx ended.
func (c *FakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if c.OnSleep != nil {
		c.OnSleep(d)
	}
	c.Advance(d)
	c.mu.Lock()
	c.slept += d
	c.mu.Unlock()
	return nil
}

// Advance moves the clock by d.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Slept is the total time slept on the clock.
func (c *FakeClock) Slept() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.slept
}

// CheckPacing checks a Bucket's guarantee on a record of admissions, for
// tests: the bytes admitted up to each admission (at[i], sizes[i] bytes,
// since start) never exceed burst + rate*elapsed.
func CheckPacing(start time.Time, at []time.Time, sizes []int, rate, burst float64) error {
	total := 0.0
	for i := range at {
		total += float64(sizes[i])
		allowed := burst + rate*at[i].Sub(start).Seconds()
		if total > allowed+1 { // +1: a nanosecond of rounding
			return fmt.Errorf("after admission %d (%d bytes) %.0f bytes admitted in %s, more than burst %.0f + rate %.0f/s allows (%.0f)",
				i, sizes[i], total, at[i].Sub(start), burst, rate, allowed)
		}
	}
	return nil
}
