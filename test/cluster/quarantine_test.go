package cluster

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dynkv/dynkv/test/testnode"
)

// Issue 10 part 4 and issue 16: a stored record the node cannot decode is
// moved aside (quarantined), counted and logged once, and nothing stops at
// it: not the start, not anti-entropy, not a leave.

// undecodableSet turns a stored record into bytes no decoder accepts: the
// Set's format version byte becomes one that does not exist. In a hint the
// Set follows an 8-byte creation time.
func undecodableSet(at int) func([]byte) []byte {
	return func(old []byte) []byte {
		b := bytes.Clone(old)
		if len(b) > at {
			b[at] = 0xee
		}
		return b
	}
}

// metricValue reads one series of the node's GET /metrics: name with the
// given label string (`kind="hint"`, or empty for none).
func metricValue(t *testing.T, nd *testnode.Node, name, labels string) float64 {
	t.Helper()
	r, err := nd.Do(testnode.Request{Method: http.MethodGet, Path: "/metrics"})
	if err != nil || r.Status != http.StatusOK {
		t.Fatalf("GET /metrics on %s: %v %s", nd.ID(), err, r)
	}
	series := name
	if labels != "" {
		series += "{" + labels + "}"
	}
	for _, line := range strings.Split(string(r.Body), "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatalf("metric %s on %s: %q: %v", series, nd.ID(), line, err)
			}
			return v
		}
	}
	t.Fatalf("GET /metrics on %s has no series %s", nd.ID(), series)
	return 0
}

// logLine is one line of a node's --log-format json output.
type logLine struct {
	Level  string `json:"level"`
	Logger string `json:"logger"`
	Msg    string `json:"msg"`
	Kind   string `json:"kind"`
	raw    string
}

// logLinesSince returns the warnings and errors the node logged after the
// first from bytes of its log.
func logLinesSince(t *testing.T, nd *testnode.Node, from int64) []logLine {
	t.Helper()
	b, err := os.ReadFile(nd.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	var out []logLine
	sc := bufio.NewScanner(bytes.NewReader(b[from:]))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l logLine
		if json.Unmarshal(sc.Bytes(), &l) != nil {
			continue // the harness's own lines, a race report
		}
		if l.Level == "warn" || l.Level == "error" {
			l.raw = sc.Text()
			out = append(out, l)
		}
	}
	return out
}

func logSize(t *testing.T, nd *testnode.Node) int64 {
	t.Helper()
	fi, err := os.Stat(nd.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

const quarantineMsg = "damaged stored record quarantined"

// backgroundWork reports whether a warning comes from the work a damaged
// record used to stop: the store, anti-entropy, handoff, hint delivery,
// tombstone collection, or mentions a decoding failure.
func backgroundWork(l logLine) bool {
	switch l.Logger {
	case "store", "aae", "handoff", "hints", "tombstone-gc":
		return true
	}
	return strings.Contains(l.raw, "decod") || strings.Contains(l.raw, "malformed")
}

// TestDamagedHintIsQuarantinedAndItsOwnerConvergesByAntiEntropy: a hint
// damaged on disk while its holder was stopped does not keep the holder
// from starting: it is moved aside, counted in /metrics and in
// /cluster/status, logged once, and its owner still gets the key, from
// anti-entropy.
func TestDamagedHintIsQuarantinedAndItsOwnerConvergesByAntiEntropy(t *testing.T) {
	c := testnode.Start(t, 3, testnode.Options{Args: []string{
		"--replicas", "3", "--write-quorum", "2", "--read-quorum", "2",
		"--hint-interval", "200ms", "--aae-interval", "500ms", "--log-format", "json",
	}})
	n0, n2 := c.Nodes[0], c.Nodes[2]
	n2.MustKill()
	const keys = 20
	key := func(i int) string { return fmt.Sprintf("qhint-%02d", i) }
	for i := range keys {
		// Through n0: it coordinates, and with no free fallback in a
		// cluster of three it keeps the hint for n2 itself.
		mustPut(t, n0, key(i), []byte(fmt.Sprintf("value-%d", i)), testnode.KV{W: 2})
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		held, _ := hintsFor(t, n0, n2.ID())
		if held == keys {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %d hints for %s, want %d", n0.ID(), held, n2.ID(), keys)
		}
		time.Sleep(50 * time.Millisecond)
	}

	n0.Stop()
	found, err := n0.DamageStored(testnode.HintRecordKey(n2.ID(), 0, key(0)), undecodableSet(8))
	if err != nil || !found {
		t.Fatalf("damaging the hint of %s on %s: found %t, %v", key(0), n0.ID(), found, err)
	}
	from := logSize(t, n0)
	n0.Restart() // ready: the damaged hint did not stop it

	st, err := n0.Status()
	if err != nil {
		t.Fatal(err)
	}
	if q := st.Quarantine; q.Hints != 1 || q.Total != 1 || q.Held != 1 || q.Dir == "" {
		t.Fatalf("status of %s: quarantine %+v, want the one damaged hint", n0.ID(), q)
	}
	if v := metricValue(t, n0, "dynkv_store_quarantined_records_total", `kind="hint"`); v != 1 {
		t.Errorf(`dynkv_store_quarantined_records_total{kind="hint"} = %v, want 1`, v)
	}
	if v := metricValue(t, n0, "dynkv_store_quarantine_held_records", ""); v != 1 {
		t.Errorf("dynkv_store_quarantine_held_records = %v, want 1", v)
	}
	if held, _ := hintsFor(t, n0, n2.ID()); held != keys-1 {
		t.Errorf("%s holds %d hints for %s after the restart, want %d", n0.ID(), held, n2.ID(), keys-1)
	}
	files, err := os.ReadDir(st.Quarantine.Dir)
	if err != nil || len(files) != 2 {
		t.Errorf("quarantine folder %s: %d files (%v), want the record's bytes and their description", st.Quarantine.Dir, len(files), err)
	}

	n2.Restart()
	start := time.Now()
	deadline = start.Add(2 * time.Minute)
	for i := 0; i < keys; {
		l, err := n2.LocalGet(0, key(i))
		if err != nil {
			t.Fatal(err)
		}
		if vals := l.Values(); len(vals) == 1 && string(vals[0]) == fmt.Sprintf("value-%d", i) {
			i++
			continue
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s lacks %s %v after its restart; its anti-entropy: %+v", n2.ID(), key(i), time.Since(start).Round(time.Millisecond), fetchAAEStatus(t, n2))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("%s held all %d keys %.1fs after its restart, the one whose hint was quarantined through anti-entropy", n2.ID(), keys, time.Since(start).Seconds())
	if moved := fetchAAEStatus(t, n2).KeysPulled + fetchAAEStatus(t, n0).KeysPushed + fetchAAEStatus(t, c.Nodes[1]).KeysPushed; moved == 0 {
		t.Error("anti-entropy moved no key, yet the quarantined hint's key reached its owner")
	}
	var quarantined []string
	for _, l := range logLinesSince(t, n0, from) {
		if strings.Contains(l.Msg, quarantineMsg) {
			quarantined = append(quarantined, l.raw)
		}
	}
	if len(quarantined) != 1 || !strings.Contains(quarantined[0], `"owner":"`+n2.ID()+`"`) || !strings.Contains(quarantined[0], `"key_hash"`) {
		t.Errorf("quarantine log lines of %s: %q, want one naming the owner and the key's hash", n0.ID(), quarantined)
	}
}

// TestDamagedRecordStopsNeitherALeaveNorAntiEntropy: a key's stored record
// damaged on one node while it was stopped: the node starts and is ready,
// another node's leave completes (every member's handoff scan goes past
// the record), anti-entropy moves it aside once and repairs the key from
// the other replica without a stream of warnings, and the key reads its
// value at R=all.
func TestDamagedRecordStopsNeitherALeaveNorAntiEntropy(t *testing.T) {
	c := testnode.Start(t, 3, testnode.Options{Args: []string{
		"--replicas", "3", "--write-quorum", "3", "--read-quorum", "2",
		"--aae-interval", "500ms", "--log-format", "json",
	}})
	n0, n1, n2 := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	const keys = 30
	key := func(i int) string { return fmt.Sprintf("qdata-%02d", i) }
	for i := range keys {
		mustPut(t, n1, key(i), []byte(fmt.Sprintf("value-%d", i)), testnode.KV{W: 3})
	}
	const damaged = 7

	n0.Stop()
	found, err := n0.DamageStored(testnode.DataRecordKey(0, key(damaged)), undecodableSet(0))
	if err != nil || !found {
		t.Fatalf("damaging %s on %s: found %t, %v", key(damaged), n0.ID(), found, err)
	}
	from := logSize(t, n0)
	n0.Restart() // ready
	c.WaitConverged(testnode.ConvergeTimeout, c.IDs()...)

	r, err := n1.Leave()
	if err != nil || r.Status != http.StatusAccepted {
		t.Fatalf("POST /cluster/leave on %s: %v %v, want 202", n1.ID(), r, err)
	}
	remaining := []*testnode.Node{n0, n2}
	leaveStart := time.Now()
	c.WaitStatus(2*testnode.ConvergeTimeout, remaining, func(s map[string]testnode.Status) error {
		if err := testnode.Agreed(s, ids(remaining)); err != nil {
			return err
		}
		for id, st := range s {
			if m, ok := st.Member(n1.ID()); ok && m.State != testnode.StateLeft {
				return fmt.Errorf("node %s: %s is %q, want left: %s", id, n1.ID(), m.State, st.Summary())
			}
		}
		return nil
	})
	t.Logf("the leave of %s completed in %.1fs", n1.ID(), time.Since(leaveStart).Seconds())

	start := time.Now()
	for {
		l, err := n0.LocalGet(0, key(damaged))
		if err != nil {
			t.Fatal(err)
		}
		if vals := l.Values(); len(vals) == 1 && string(vals[0]) == fmt.Sprintf("value-%d", damaged) {
			break
		}
		if time.Since(start) > 2*time.Minute {
			t.Fatalf("%s still lacks %s %v after the leave; its anti-entropy: %+v", n0.ID(), key(damaged), time.Since(start).Round(time.Millisecond), fetchAAEStatus(t, n0))
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i := range keys {
		if err := checkExact(n0, key(i), []byte(fmt.Sprintf("value-%d", i)), testnode.KV{R: 3}); err != nil {
			t.Errorf("read at R=all: %v", err)
		}
	}

	// A few anti-entropy intervals later nothing about the record is still
	// failing: no growing warnings, no anti-entropy or handoff errors.
	errorsBefore := metricValue(t, n0, "dynkv_aae_errors_total", "")
	linesBefore := len(logLinesSince(t, n0, from))
	time.Sleep(3 * time.Second)
	if after := metricValue(t, n0, "dynkv_aae_errors_total", ""); after != errorsBefore {
		t.Errorf("dynkv_aae_errors_total on %s grew from %v to %v after the repair", n0.ID(), errorsBefore, after)
	}
	lines := logLinesSince(t, n0, from)
	for _, l := range lines[linesBefore:] {
		if backgroundWork(l) || strings.Contains(l.Msg, quarantineMsg) {
			t.Errorf("%s still warns after the repair: %s", n0.ID(), l.raw)
		}
	}
	var quarantined int
	for _, l := range lines {
		t.Logf("%s since its restart: %s", n0.ID(), l.raw)
		switch {
		case strings.Contains(l.Msg, quarantineMsg):
			quarantined++
			if l.Kind != "data" || !strings.Contains(l.raw, `"key_hash"`) || !strings.Contains(l.raw, `"reason"`) {
				t.Errorf("quarantine log line %s, want kind data, the key's hash and the reason", l.raw)
			}
		case backgroundWork(l):
			t.Errorf("%s warned about its background work: %s", n0.ID(), l.raw)
		}
	}
	if quarantined != 1 {
		t.Errorf("%s logged %d quarantine lines, want exactly one", n0.ID(), quarantined)
	}
	if v := metricValue(t, n0, "dynkv_handoff_failures_total", ""); v != 0 {
		t.Errorf("dynkv_handoff_failures_total on %s = %v, want 0", n0.ID(), v)
	}
	if v := metricValue(t, n0, "dynkv_store_quarantined_records_total", `kind="data"`); v != 1 {
		t.Errorf(`dynkv_store_quarantined_records_total{kind="data"} on %s = %v, want 1`, n0.ID(), v)
	}
	st, err := n0.Status()
	if err != nil {
		t.Fatal(err)
	}
	if q := st.Quarantine; q.Data != 1 || q.Total != 1 || q.Failures != 0 {
		t.Errorf("status of %s: quarantine %+v, want the one data record", n0.ID(), q)
	}
}
