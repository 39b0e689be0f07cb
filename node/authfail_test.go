package node

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/dynkv/dynkv/node/metrics"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// newTestGuard is a guard on a fake clock whose warnings are recorded.
func newTestGuard(t *testing.T) (*authGuard, *fakeClock, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zapcore.WarnLevel)
	m := metrics.New().Limits
	g := newAuthGuard(zap.New(core), &m)
	clock := newFakeClock()
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
		g.fail(ctx, "http", "10.0.0.1", 0, true)
	}
	e := g.sources["10.0.0.1"].Value.(*authSource)
	if e.fails != 20 || e.pending != 0 || g.pending.Load() != 0 {
		t.Fatalf("after 20 failures: fails %d, pending %d (node %d); want 20, 0, 0", e.fails, e.pending, g.pending.Load())
	}
	if v := metricValue(t, g.m.AuthDelayed.WithLabelValues("http")); v != 20 {
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
	g.fail(ctx, "http", "10.0.0.1", 0, true)
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
	g.fail(ctx, "resp", "10.0.0.1", 0, true)
	if e.fails != 3 {
		t.Fatalf("after 20s more of quiet and one failure: %d, want 3", e.fails)
	}
	// A missing token counts and logs, but guesses nothing: no delay, no
	// count towards it.
	g.fail(ctx, "http", "10.0.0.2", 0, false)
	if e2 := g.sources["10.0.0.2"].Value.(*authSource); e2.fails != 0 || e2.unlogged != 0 {
		t.Fatalf("a missing token: fails %d unlogged %d, want 0 and 0 (logged)", e2.fails, e2.unlogged)
	}
	if v := metricValue(t, g.m.AuthFailures.WithLabelValues("http")); v != 22 {
		t.Fatalf("dynkv_auth_failures_total{http} = %v, want 22", v)
	}
}

func TestAuthGuardBoundsItsTableAndItsLogs(t *testing.T) {
	g, _, logs := newTestGuard(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for i := range authMaxSources + 500 {
		g.fail(ctx, "http", fmt.Sprintf("10.%d.%d.%d", i>>16, i>>8&255, i&255), 0, true)
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
		g.fail(ctx, "http", "10.0.0.1", 0, true)
	}
	wait, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range authMaxPendingPerSource {
		wg.Go(func() { g.fail(wait, "http", "10.0.0.1", 0, true) })
	}
	deadline := time.Now().Add(10 * time.Second)
	for g.pending.Load() < authMaxPendingPerSource {
		if time.Now().After(deadline) {
			t.Fatalf("%d delays pending, want %d", g.pending.Load(), authMaxPendingPerSource)
		}
		time.Sleep(time.Millisecond)
	}
	if !g.throttled("http", "10.0.0.1") {
		t.Fatal("a source with every delay slot taken is not throttled")
	}
	if g.throttled("http", "10.0.0.2") {
		t.Fatal("another source is throttled")
	}
	// One that was checked anyway finds no slot: not afforded.
	if g.fail(context.Background(), "http", "10.0.0.1", 0, true) {
		t.Fatal("a failure beyond the source's delay slots was delayed")
	}
	stop()
	wg.Wait()
	if g.pending.Load() != 0 || g.throttled("http", "10.0.0.1") {
		t.Fatalf("after the delays: %d pending, throttled %v", g.pending.Load(), g.throttled("http", "10.0.0.1"))
	}
	if v := metricValue(t, g.m.AuthThrottled.WithLabelValues("http")); v != 2 {
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
		if got := authSourceOf(in); got != want {
			t.Errorf("authSourceOf(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHTTPWrongTokensAreDelayedMissingOnesAreNot(t *testing.T) {
	cfg := testConfig(t)
	cfg.AuthTokens = []string{"s3cret"}
	tn := startNode(t, &cfg, nil)
	for range 3 {
		if r := tn.get("/kv/k", map[string]string{"Authorization": "Bearer wrong"}); r.status != http.StatusUnauthorized {
			t.Fatalf("a wrong token = %d, want 401", r.status)
		}
		if r := tn.get("/kv/k", nil); r.status != http.StatusUnauthorized {
			t.Fatalf("no token = %d, want 401", r.status)
		}
	}
	m := tn.metrics.Limits
	if f, d := metricValue(t, m.AuthFailures.WithLabelValues("http")), metricValue(t, m.AuthDelayed.WithLabelValues("http")); f != 6 || d != 3 {
		t.Fatalf("failures %v, delayed %v; want 6 and 3", f, d)
	}
	// A throttled source gets 429 whatever its token.
	tn.auth.mu.Lock()
	tn.auth.entry("192.0.2.1").pending = authMaxPendingPerSource
	tn.auth.mu.Unlock()
	tn.auth.pending.Add(authMaxPendingPerSource)
	defer tn.auth.pending.Add(-authMaxPendingPerSource)
	req := httptest.NewRequest(http.MethodGet, "/kv/k", nil)
	req.RemoteAddr = "192.0.2.1:4000"
	req.Header.Set("Authorization", "Bearer s3cret")
	w := httptest.NewRecorder()
	tn.handler.ServeHTTP(w, req)
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "1" {
		t.Fatalf("a throttled source with the right token = %d (Retry-After %q), want 429 with Retry-After 1", w.Code, w.Header().Get("Retry-After"))
	}
}
