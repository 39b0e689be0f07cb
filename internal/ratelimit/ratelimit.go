package ratelimit

import (
	"context"
	"time"
)

// Bucket paces background traffic (ownership handoff, anti-entropy) so
// that it does not starve client requests of bandwidth and disk. It is a
// deficit bucket: Wait(n) takes n tokens at once, going into debt for a
// batch larger than what is left, and sleeps until the debt is repaid. So
// the bytes admitted by time t never exceed burst + rate*t, whatever the
// batch sizes. Used by one goroutine.
type Bucket struct {
	rate   float64 // tokens (bytes) per second; <= 0: unlimited
	burst  float64
	tokens float64
	last   time.Time
	clock  Clock
}

// Clock is the seam for time: tests advance a fake clock in Sleep
// (FakeClock).
type Clock interface {
	Now() time.Time
	// Sleep returns early with ctx's error when ctx ends.
	Sleep(ctx context.Context, d time.Duration) error
}

// RealClock is the wall clock.
type RealClock struct{}

// Now is time.Now.
func (RealClock) Now() time.Time { return time.Now() }

// Sleep waits d, or until ctx ends.
func (RealClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// NewBucket returns a full bucket admitting rate bytes per second (<= 0:
// unlimited) with the given burst, on clock.
func NewBucket(rate, burst float64, clock Clock) *Bucket {
	return &Bucket{rate: rate, burst: burst, tokens: burst, last: clock.Now(), clock: clock}
}

// Wait admits n bytes, sleeping first if the bucket is in debt.
func (b *Bucket) Wait(ctx context.Context, n int) error {
	if b.rate <= 0 {
		return ctx.Err()
	}
	now := b.clock.Now()
	if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens = min(b.burst, b.tokens+b.rate*elapsed.Seconds())
	}
	b.last = now
	b.tokens -= float64(n)
	if b.tokens >= 0 {
		return ctx.Err()
	}
	// Round up so the debt is fully repaid when the sleep ends.
	d := time.Duration(-b.tokens/b.rate*float64(time.Second)) + 1
	return b.clock.Sleep(ctx, d)
}
