package authguard

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dynkv/dynkv/internal/testutil"
	"github.com/dynkv/dynkv/node/metrics"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// newTestGuard is a guard on a fake clock whose warnings are recorded.
func newTestGuard(t *testing.T) (*Guard, *testutil.FakeClock, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zapcore.WarnLevel)
	m := metrics.New().Limits
	g := New(zap.New(core), &m)
	clock := testutil.NewFakeClock()
	g.now = clock.Now
	return g, clock, logs
}

func TestAuthDelayGrowsExponentiallyToItsCap(t *testing.T) {
	for n, want := range map[int]time.Duration{
		0: 0, 1: 5 * time.Millisecond, 2: 5 * time.Millisecond, 3: 10 * time.Millisecond, 4: 10 * time.Millisecond,
		5: 20 * time.Millisecond, 15: 640 * time.Millisecond, 16: 640 * time.Millisecond,
		17: time.Second, 100: time.Second, 1 << 30: time.Second,
	} {
		if got := delayFor(n); got != want {
			t.Errorf("delayFor(%d) = %s, want %s", n, got, want)
		}
	}
}

func TestAuthGuardCountsDecaysAndLogsOncePerInterval(t *testing.T) {
	g, clock, logs := newTestGuard(t)
	// A cancelled context: the delays are computed and counted, not
	// waited for.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range 20 {
		g.Fail(ctx, "http", "10.0.0.1", 0, true)
	}
	e := g.sources["10.0.0.1"].Value.(*authSource)
	if e.fails != 20 || e.pending != 0 || g.pending.Load() != 0 {
		t.Fatalf("after 20 failures: fails %d, pending %d (node %d); want 20, 0, 0", e.fails, e.pending, g.pending.Load())
	}
	if v := testutil.MetricValue(t, g.m.AuthDelayed.WithLabelValues("http")); v != 20 {
		t.Fatalf("dynkv_auth_delayed_total = %v, want 20", v)
	}
	// One warning for the burst, with its count; the next after the
	// interval, counting what came between.
	if n := logs.Len(); n != 1 {
		t.Fatalf("%d warnings for a burst of 20 failures, want 1", n)
	}
	if f := logs.All()[0].ContextMap(); f["failures"] != int64(1) || f["source"] != "10.0.0.1" {
		t.Fatalf("first warning fields %v", f)
	}
	clock.Advance(authLogEvery)
	g.Fail(ctx, "http", "10.0.0.1", 0, true)
	if n := logs.Len(); n != 2 {
		t.Fatalf("%d warnings after the interval, want 2", n)
	}
	if f := logs.All()[1].ContextMap(); f["failures"] != int64(20) {
		t.Fatalf("second warning counts %v failures, want 20 (19 unlogged and this one)", f["failures"])
	}
	// Quiet time halves the count per authDecay: the 10s before that
	// failure made 20 into 10 (then 11), 20s more make 2 (then 3).
	if e.fails != 11 {
		t.Fatalf("after 10s of quiet and one failure: %d, want 11", e.fails)
	}
	clock.Advance(2 * authDecay)
	g.Fail(ctx, "resp", "10.0.0.1", 0, true)
	if e.fails != 3 {
		t.Fatalf("after 20s more of quiet and one failure: %d, want 3", e.fails)
	}
	// A missing token counts and logs, but guesses nothing: no delay, no
	// count towards it.
	g.Fail(ctx, "http", "10.0.0.2", 0, false)
	if e2 := g.sources["10.0.0.2"].Value.(*authSource); e2.fails != 0 || e2.unlogged != 0 {
		t.Fatalf("a missing token: fails %d unlogged %d, want 0 and 0 (logged)", e2.fails, e2.unlogged)
	}
	if v := testutil.MetricValue(t, g.m.AuthFailures.WithLabelValues("http")); v != 22 {
		t.Fatalf("dynkv_auth_failures_total{http} = %v, want 22", v)
	}
}

func TestAuthGuardBoundsItsTableAndItsLogs(t *testing.T) {
	g, _, logs := newTestGuard(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for i := range authMaxSources + 500 {
		g.Fail(ctx, "http", fmt.Sprintf("10.%d.%d.%d", i>>16, i>>8&255, i&255), 0, true)
	}
	if len(g.sources) != authMaxSources || g.lru.Len() != authMaxSources {
		t.Fatalf("table of %d sources (list %d), want %d", len(g.sources), g.lru.Len(), authMaxSources)
	}
	if _, ok := g.sources["10.0.0.0"]; ok {
		t.Fatal("the least recent source was kept")
	}
	if n := logs.Len(); n != authLogMaxPerInterval {
		t.Fatalf("%d warnings in one interval for %d sources, want %d", n, authMaxSources+500, authLogMaxPerInterval)
	}
}

func TestAuthGuardThrottlesASourceWithTooManyPendingDelays(t *testing.T) {
	g, _, _ := newTestGuard(t)
	g.now = time.Now
	// Enough failures for a long delay, then authMaxPendingPerSource
	// attempts waiting at once.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range 20 {
		g.Fail(ctx, "http", "10.0.0.1", 0, true)
	}
	wait, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range authMaxPendingPerSource {
		wg.Go(func() { g.Fail(wait, "http", "10.0.0.1", 0, true) })
	}
	deadline := time.Now().Add(10 * time.Second)
	for g.pending.Load() < authMaxPendingPerSource {
		if time.Now().After(deadline) {
			t.Fatalf("%d delays pending, want %d", g.pending.Load(), authMaxPendingPerSource)
		}
		time.Sleep(time.Millisecond)
	}
	if !g.Throttled("http", "10.0.0.1") {
		t.Fatal("a source with every delay slot taken is not throttled")
	}
	if g.Throttled("http", "10.0.0.2") {
		t.Fatal("another source is throttled")
	}
	// One that was checked anyway finds no slot: not afforded.
	if g.Fail(context.Background(), "http", "10.0.0.1", 0, true) {
		t.Fatal("a failure beyond the source's delay slots was delayed")
	}
	stop()
	wg.Wait()
	if g.pending.Load() != 0 || g.Throttled("http", "10.0.0.1") {
		t.Fatalf("after the delays: %d pending, throttled %v", g.pending.Load(), g.Throttled("http", "10.0.0.1"))
	}
	if v := testutil.MetricValue(t, g.m.AuthThrottled.WithLabelValues("http")); v != 2 {
		t.Fatalf("dynkv_auth_throttled_total = %v, want 2", v)
	}
}

func TestAuthSourceOfGroupsIPv6By64(t *testing.T) {
	for in, want := range map[string]string{
		"10.1.2.3:5555":              "10.1.2.3",
		"[::ffff:10.1.2.3]:1":        "10.1.2.3",
		"[2001:db8:1:2:3:4:5:6]:80":  "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::1]:81":  "2001:db8:1:2::/64",
		"[fe80::1%eth0]:7":           "fe80::/64",
		"not an address":             "not an address",
		"@":                          "@",
		"[2001:db8:1:3::1]:80":       "2001:db8:1:3::/64",
		"127.0.0.1:0":                "127.0.0.1",
		"[::1]:6380":                 "::/64",
		"192.168.0.1":                "192.168.0.1",
		"[2001:db8::1]":              "[2001:db8::1]",
		"2001:db8:aaaa:bbbb:cccc::1": "2001:db8:aaaa:bbbb::/64",
	} {
		if got := SourceOf(in); got != want {
			t.Errorf("SourceOf(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzBearerToken: the Authorization header admits a client exactly when
// it is "Bearer <token>" (scheme in any case) with one of the configured
// tokens; everything else, including a prefix or extension of a token,
// is refused.
func FuzzBearerToken(f *testing.F) {
	for _, h := range []string{"Bearer s3cret", "bearer s3cret", "BEARER other-token", "Bearer s3cre", "Bearer s3cret ",
		"Bearer  s3cret", "Basic s3cret", "Bearer", "Bearer ", "", "s3cret"} {
		f.Add(h)
	}
	tokens := []string{"s3cret", "other-token"}
	ts := HashTokens(tokens)
	f.Fuzz(func(t *testing.T, header string) {
		scheme, token, _ := strings.Cut(header, " ")
		want := strings.EqualFold(scheme, "Bearer") && (token == tokens[0] || token == tokens[1])
		if got := ts.ValidBearer(header); got != want {
			t.Fatalf("ValidBearer(%q) = %v, want %v", header, got, want)
		}
	})
}
