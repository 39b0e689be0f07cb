package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

type benchSummary struct {
	Ops      uint64
	Reads    uint64
	Writes   uint64
	Errors   uint64
	Statuses map[string]uint64
	Latency  struct {
		Count uint64
		Ms    map[string]float64
	}
}

func runBenchJSON(t *testing.T, args ...string) (int, benchSummary, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := runBench(context.Background(), append(args, "--output", "json", "--progress=false"), envOf(nil), &stdout, &stderr)
	var s benchSummary
	if code == exitOK || stdout.Len() > 0 {
		if err := json.Unmarshal(stdout.Bytes(), &s); err != nil {
			t.Fatalf("bench summary is not JSON: %v\n%s", err, stdout.String())
		}
	}
	return code, s, stderr.String()
}

func TestBenchSendsExactlyTheRequestedMix(t *testing.T) {
	f, addr := newFakeServer(t)
	code, s, stderr := runBenchJSON(t, "--addr", addr, "--requests", "300", "--connections", "4", "--keys", "20", "--read-ratio", "0.5", "--seed", "7")
	if code != exitOK {
		t.Fatalf("exit %d stderr %q", code, stderr)
	}
	if s.Ops != 300 || s.Reads+s.Writes != 300 || s.Reads == 0 || s.Writes == 0 || s.Errors != 0 {
		t.Fatalf("summary %+v: want 300 ops of both kinds and no errors", s)
	}
	if got := s.Statuses["200"] + s.Statuses["404"] + s.Statuses["204"]; got != 300 {
		t.Fatalf("statuses %v add up to %d, want 300", s.Statuses, got)
	}
	if s.Latency.Count != 300 || s.Latency.Ms["p50"] <= 0 || s.Latency.Ms["p999"] < s.Latency.Ms["p50"] || s.Latency.Ms["max"] < s.Latency.Ms["p999"] {
		t.Fatalf("latency %+v: want ordered positive quantiles over 300 samples", s.Latency)
	}
	f.mu.Lock()
	calls := f.calls
	f.mu.Unlock()
	if calls != 300 {
		t.Fatalf("server saw %d requests, want 300", calls)
	}
}

func TestBenchPrefillMakesEveryReadHit(t *testing.T) {
	f, addr := newFakeServer(t)
	code, s, stderr := runBenchJSON(t, "--addr", addr, "--requests", "200", "--connections", "3", "--keys", "50", "--read-ratio", "1", "--prefill")
	if code != exitOK {
		t.Fatalf("exit %d stderr %q", code, stderr)
	}
	f.mu.Lock()
	stored := len(f.data)
	f.mu.Unlock()
	if stored != 50 {
		t.Fatalf("prefill stored %d keys, want all 50", stored)
	}
	if s.Statuses["200"] != 200 || s.Writes != 0 {
		t.Fatalf("statuses %v writes %d: every read should hit after prefill", s.Statuses, s.Writes)
	}
}

func TestBenchCountsFailuresByStatusAndFailsWhenNothingWorks(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		jsonErr(w, 503, `{"error":"quorum not reached","needed":2,"acked":0}`)
	}))
	defer srv.Close()
	code, s, stderr := runBenchJSON(t, "--addr", srv.URL, "--requests", "40", "--connections", "2")
	if code != exitFailure || !strings.Contains(stderr, "all 40 requests failed") {
		t.Fatalf("exit %d stderr %q, want 3 and a line saying every request failed", code, stderr)
	}
	if s.Errors != 40 || s.Statuses["503"] != 40 || n.Load() != 40 {
		t.Fatalf("summary %+v, server saw %d: want 40 errors, all 503, and no retries", s, n.Load())
	}
}

func TestBenchSpreadsConnectionsOverNodes(t *testing.T) {
	a, addrA := newFakeServer(t)
	b, addrB := newFakeServer(t)
	code, _, stderr := runBenchJSON(t, "--addr", addrA+","+addrB, "--requests", "100", "--connections", "4")
	if code != exitOK {
		t.Fatalf("exit %d stderr %q", code, stderr)
	}
	a.mu.Lock()
	b.mu.Lock()
	ca, cb := a.calls, b.calls
	b.mu.Unlock()
	a.mu.Unlock()
	if ca == 0 || cb == 0 || ca+cb != 100 {
		t.Fatalf("node A saw %d, node B %d: want both used, 100 in all", ca, cb)
	}
}

func TestBenchTextSummary(t *testing.T) {
	_, addr := newFakeServer(t)
	var stdout, stderr bytes.Buffer
	code := runBench(context.Background(), []string{"--addr", addr, "--requests", "50", "--connections", "2"}, envOf(nil), &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit %d stderr %q", code, stderr.String())
	}
	for _, want := range []string{"ops         50 ", "throughput", "errors      0", "statuses", "p50", "p999", "max"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, stdout.String())
		}
	}
}

func TestBenchInterruptedStopsWithASummary(t *testing.T) {
	_, addr := newFakeServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stdout, stderr bytes.Buffer
	code := runBench(ctx, []string{"--addr", addr, "--duration", "1h", "--progress=false"}, envOf(nil), &stdout, &stderr)
	if code != exitOK || !strings.Contains(stdout.String(), "ops ") {
		t.Fatalf("exit %d stdout %q stderr %q: an interrupted run still reports", code, stdout.String(), stderr.String())
	}
}
