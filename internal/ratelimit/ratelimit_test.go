package ratelimit

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/dynkv/dynkv/internal/testutil"
)

// checkPacing asserts the bucket's guarantee on a record of admissions
// (CheckPacing).
func checkPacing(t *testing.T, start time.Time, at []time.Time, sizes []int, rate, burst float64) {
	t.Helper()
	if err := CheckPacing(start, at, sizes, rate, burst); err != nil {
		t.Fatal(err)
	}
}

func TestTokenBucketNeverAdmitsMoreThanBurstPlusRate(t *testing.T) {
	seed := testutil.Seed(t, testutil.SeedEnv)
	rng := rand.New(rand.NewPCG(seed, 0))
	clk := testutil.NewFakeClock()
	const rate, burst = 10_000.0, 4_000.0
	b := NewBucket(rate, burst, clk)
	start := clk.Now()
	var at []time.Time
	var sizes []int
	total := 0
	for i := 0; i < 500; i++ {
		if rng.IntN(4) == 0 {
			clk.Advance(time.Duration(rng.IntN(300)) * time.Millisecond) // idle time refills, up to burst
		}
		n := 1 + rng.IntN(9_000) // batches larger than the burst go into debt
		if err := b.Wait(context.Background(), n); err != nil {
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
	clk := testutil.NewFakeClock()
	b := NewBucket(-1, 100, clk)
	for i := 0; i < 100; i++ {
		if err := b.Wait(context.Background(), 1<<20); err != nil {
			t.Fatal(err)
		}
	}
	if clk.Slept() != 0 {
		t.Fatalf("unlimited bucket slept %s", clk.Slept())
	}
}

func TestTokenBucketWaitEndsWithTheContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b := NewBucket(1, 1, RealClock{})
	if err := b.Wait(ctx, 1<<20); err == nil {
		t.Fatal("wait on a cancelled context for a day's worth of tokens returned nil")
	}
}
