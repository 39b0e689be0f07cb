package testutil

import (
	"context"
	"testing"
	"time"
)

func TestSeedReplaysTheEnvironmentVariable(t *testing.T) {
	t.Setenv("DYNKV_TESTUTIL_SEED", "12345")
	if got := Seed(t, "DYNKV_TESTUTIL_SEED"); got != 12345 {
		t.Fatalf("Seed with the variable set to 12345: %d", got)
	}
	t.Setenv("DYNKV_TESTUTIL_SEED", "")
	if a, b := Seed(t, "DYNKV_TESTUTIL_SEED"), Seed(t, "DYNKV_TESTUTIL_SEED"); a == 0 || b == 0 {
		t.Fatalf("clock seeds %d, %d: want non-zero", a, b)
	}
}

// fakeTB records a Fatalf instead of stopping the test.
type fakeTB struct {
	testing.TB
	failed string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = format
}

func TestEventuallyWaitsForTheConditionAndGivesUpAtItsDeadline(t *testing.T) {
	n := 0
	Eventually(t, 10*time.Second, time.Millisecond, "three polls", func() bool { n++; return n >= 3 })
	if n != 3 {
		t.Fatalf("polled %d times, want 3", n)
	}
	f := &fakeTB{TB: t}
	Eventually(f, 20*time.Millisecond, time.Millisecond, "never", func() bool { return f.failed != "" })
	if f.failed == "" {
		t.Fatal("a condition that never holds did not fail the test")
	}
}

func TestFakeClockMovesOnlyByHandOrBySleep(t *testing.T) {
	c := NewFakeClock()
	if !c.Now().Equal(FakeEpoch) {
		t.Fatalf("new clock at %s, want %s", c.Now(), FakeEpoch)
	}
	c.Advance(time.Second)
	var hooked time.Time
	c.OnSleep(func(time.Duration) { hooked = c.Now() })
	if err := c.Sleep(context.Background(), time.Minute); err != nil {
		t.Fatalf("Sleep: %v", err)
	}
	if want := FakeEpoch.Add(time.Second); !hooked.Equal(want) {
		t.Fatalf("the hook saw %s, want the time before the sleep %s", hooked, want)
	}
	if want := FakeEpoch.Add(time.Second + time.Minute); !c.Now().Equal(want) {
		t.Fatalf("after Advance(1s) and Sleep(1m): %s, want %s", c.Now(), want)
	}
	if c.Slept() != time.Minute {
		t.Fatalf("Slept = %s, want 1m (Advance is not a sleep)", c.Slept())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Sleep(ctx, time.Hour); err != context.Canceled {
		t.Fatalf("Sleep on a cancelled context: %v, want context.Canceled", err)
	}
	if c.Slept() != time.Minute {
		t.Fatalf("a cancelled Sleep moved the clock: slept %s", c.Slept())
	}
}
