package replication

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// fakeClock moves only when something sleeps on it.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	slept   time.Duration
	onSleep func(time.Duration) // runs in Sleep, before the clock moves
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if c.onSleep != nil {
		c.onSleep(d)
	}
	c.Advance(d)
	c.mu.Lock()
	c.slept += d
	c.mu.Unlock()
	return nil
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// checkPacing asserts the bucket's guarantee on a record of admissions: the
// bytes admitted up to each admission never exceed burst + rate*elapsed.
func checkPacing(t *testing.T, start time.Time, at []time.Time, sizes []int, rate, burst float64) {
	t.Helper()
	total := 0.0
	for i := range at {
		total += float64(sizes[i])
		allowed := burst + rate*at[i].Sub(start).Seconds()
		if total > allowed+1 { // +1: a nanosecond of rounding
			t.Fatalf("after admission %d (%d bytes) %.0f bytes admitted in %s, more than burst %.0f + rate %.0f/s allows (%.0f)",
				i, sizes[i], total, at[i].Sub(start), burst, rate, allowed)
		}
	}
}

func TestTokenBucketNeverAdmitsMoreThanBurstPlusRate(t *testing.T) {
	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("seed %d", seed)
	clk := newFakeClock()
	const rate, burst = 10_000.0, 4_000.0
	b := newTokenBucket(rate, burst, clk)
	start := clk.Now()
	var at []time.Time
	var sizes []int
	total := 0
	for i := 0; i < 500; i++ {
		if rng.IntN(4) == 0 {
			clk.Advance(time.Duration(rng.IntN(300)) * time.Millisecond) // idle time refills, up to burst
		}
		n := 1 + rng.IntN(9_000) // batches larger than the burst go into debt
		if err := b.wait(context.Background(), n); err != nil {
			t.Fatal(err)
		}
		at, sizes = append(at, clk.Now()), append(sizes, n)
		total += n
	}
	checkPacing(t, start, at, sizes, rate, burst)
	// And it really paced: the clock moved at least as far as the rate needs.
	if need := time.Duration((float64(total) - burst) / rate * float64(time.Second)); clk.Now().Sub(start) < need {
		t.Fatalf("%d bytes admitted in %s, the rate needs at least %s", total, clk.Now().Sub(start), need)
	}
}

func TestTokenBucketWithoutARateNeverSleeps(t *testing.T) {
	clk := newFakeClock()
	b := newTokenBucket(-1, 100, clk)
	for i := 0; i < 100; i++ {
		if err := b.wait(context.Background(), 1<<20); err != nil {
			t.Fatal(err)
		}
	}
	if clk.slept != 0 {
		t.Fatalf("unlimited bucket slept %s", clk.slept)
	}
}

func TestTokenBucketWaitEndsWithTheContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b := newTokenBucket(1, 1, realClock{})
	if err := b.wait(ctx, 1<<20); err == nil {
		t.Fatal("wait on a cancelled context for a day's worth of tokens returned nil")
	}
}
