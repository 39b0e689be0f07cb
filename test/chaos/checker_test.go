package chaos

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/dynkv/dynkv/test/testnode"
)

func TestExpectationsHoldOnlyAcknowledgedOutcomes(t *testing.T) {
	h := NewHistory()
	h.PutAttempt("acked", "v1")
	h.PutAcked("acked", "c1")
	h.PutAttempt("failed", "v2") // never acknowledged: no obligation
	h.PutAttempt("deleted", "v3")
	h.PutAcked("deleted", "c3")
	h.DeleteAttempt("deleted")
	h.DeleteAcked("deleted")
	h.PutAttempt("delete-unknown", "v4")
	h.PutAcked("delete-unknown", "c4")
	h.DeleteAttempt("delete-unknown") // failed delete: either outcome is fine
	got := h.Expectations()
	want := []Expectation{{Key: "acked", Value: "v1", Context: "c1"}, {Key: "deleted", Absent: true}}
	if !slices.Equal(got, want) {
		t.Fatalf("Expectations: got %+v, want %+v", got, want)
	}
	if n := h.Acked.Load(); n != 4 {
		t.Fatalf("Acked: got %d, want 4 (3 puts, 1 delete)", n)
	}
}

func TestCheckReadCatchesLossAndResurrection(t *testing.T) {
	value := Expectation{Key: "k", Value: "v"}
	absent := Expectation{Key: "k", Absent: true}
	cases := []struct {
		name      string
		e         Expectation
		r         testnode.Response
		ok, retry bool
	}{
		{"value read", value, testnode.Response{Status: http.StatusOK, Body: []byte("v")}, true, false},
		{"value lost", value, testnode.Response{Status: http.StatusNotFound}, false, false},
		{"other value", value, testnode.Response{Status: http.StatusOK, Body: []byte("w")}, false, false},
		{"siblings", value, testnode.Response{Status: http.StatusMultipleChoices}, false, false},
		{"quorum", value, testnode.Response{Status: http.StatusServiceUnavailable}, false, true},
		{"delete held", absent, testnode.Response{Status: http.StatusNotFound}, true, false},
		{"delete undone", absent, testnode.Response{Status: http.StatusOK, Body: []byte("v")}, false, false},
	}
	for _, tc := range cases {
		err, retry := tc.e.CheckRead(tc.r)
		if (err == nil) != tc.ok || retry != tc.retry {
			t.Errorf("%s: CheckRead(%v) = %v, retry %t; want ok=%t retry=%t", tc.name, tc.r, err, retry, tc.ok, tc.retry)
		}
	}
}

func TestElementsUnionSiblingsAndMissingFindsGaps(t *testing.T) {
	got := Elements([][]byte{[]byte("init,a1-1"), []byte("init,a2-7,a1-1"), nil})
	want := map[string]bool{"init": true, "a1-1": true, "a2-7": true}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Elements: got %v, want %v", got, want)
	}
	if enc := string(EncodeElements(got)); enc != "a1-1,a2-7,init" {
		t.Fatalf("EncodeElements: got %q, want sorted %q", enc, "a1-1,a2-7,init")
	}
	acked := map[string]bool{"a1-1": true, "a2-7": true, "a3-2": true, "a0-9": true}
	if m := Missing(acked, got); !slices.Equal(m, []string{"a0-9", "a3-2"}) {
		t.Fatalf("Missing: got %v, want [a0-9 a3-2]", m)
	}
}

func TestSameReplicaComparesDotsValuesAndContext(t *testing.T) {
	mk := func(ctx string, sibs ...string) testnode.LocalSet {
		l := testnode.LocalSet{Found: true, Context: ctx}
		for i, v := range sibs {
			l.Siblings = append(l.Siblings, struct {
				Value     []byte `json:"value"`
				Actor     string `json:"actor"`
				Counter   uint64 `json:"counter"`
				Tombstone bool   `json:"tombstone"`
			}{Value: []byte(v), Actor: "n0", Counter: uint64(i + 1), Tombstone: v == ""})
		}
		return l
	}
	a := mk("c1", "x", "y")
	cases := []struct {
		name string
		b    testnode.LocalSet
		same bool
	}{
		{"identical", mk("c1", "x", "y"), true},
		{"other context", mk("c2", "x", "y"), false},
		{"missing sibling", mk("c1", "x"), false},
		{"other value", mk("c1", "x", "z"), false},
		{"tombstone", mk("c1", "x", ""), false},
		{"absent", testnode.LocalSet{}, false},
	}
	for _, tc := range cases {
		if got := SameReplica(a, tc.b); got != tc.same {
			t.Errorf("%s: SameReplica = %t, want %t", tc.name, got, tc.same)
		}
	}
	if !SameReplica(testnode.LocalSet{}, testnode.LocalSet{}) {
		t.Error("two absent copies: SameReplica = false, want true")
	}
}

func TestScheduleReplaysAndFaultsAtMostTwoNodes(t *testing.T) {
	o := ScheduleOptions{Nodes: 5, Total: 10 * time.Minute, Kinds: []FaultKind{Kill, Pause, Partition, Bridge},
		MinHold: 2 * time.Second, MaxHold: 6 * time.Second, MaxGap: 3 * time.Second}
	a := Schedule(rand.New(rand.NewPCG(7, 8)), o)
	b := Schedule(rand.New(rand.NewPCG(7, 8)), o)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatal("the same seed gave two schedules")
	}
	if len(a) < 50 {
		t.Fatalf("%d faults in 10 minutes of 2-9s steps, want at least 50", len(a))
	}
	var total time.Duration
	kinds := map[FaultKind]int{}
	for _, f := range a {
		total += f.Duration + f.Gap
		kinds[f.Kind]++
		if len(f.Targets) < 1 || len(f.Targets) > 2 {
			t.Fatalf("%s: %d targets, want 1 or 2", f, len(f.Targets))
		}
		if f.Duration < o.MinHold || f.Duration > o.MaxHold || f.Gap > o.MaxGap {
			t.Fatalf("%s (gap %v): outside the bounds %+v", f, f.Gap, o)
		}
		if f.Kind == Bridge {
			if len(f.Sides) != 2 || len(f.Sides[0]) != 2 || len(f.Sides[1]) != 2 || len(f.Targets) != 1 ||
				slices.Contains(f.Sides[0], f.Targets[0]) || slices.Contains(f.Sides[1], f.Targets[0]) ||
				slices.ContainsFunc(f.Sides[0], func(i int) bool { return slices.Contains(f.Sides[1], i) }) {
				t.Fatalf("%s: want two sides of two and one bridge on neither", f)
			}
			continue
		}
		if f.Kind == Partition {
			if len(f.Sides) != 2 || !slices.Equal(f.Sides[0], f.Targets) || len(f.Sides[0])+len(f.Sides[1]) != 5 {
				t.Fatalf("%s: sides %v do not split the 5 nodes around the targets %v", f, f.Sides, f.Targets)
			}
		}
	}
	if total > o.Total {
		t.Fatalf("schedule lasts %v, want at most %v", total, o.Total)
	}
	for _, k := range o.Kinds {
		if kinds[k] == 0 {
			t.Errorf("no %s fault in %d draws", k, len(a))
		}
	}
}

func TestAvailabilitySortsRequestsIntoTheFaultTheyStartedIn(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	windows := []Window{
		{Fault: Fault{Kind: Partition, Targets: []int{0, 1}, Sides: [][]int{{0, 1}, {2, 3, 4}}}, Start: at(10), End: at(20)},
		{Fault: Fault{Kind: Kill, Targets: []int{4}}, Start: at(30), End: at(40)},
	}
	obs := []Observation{
		{Node: 0, Write: true, OK: true, Start: at(1), Took: 10 * time.Millisecond},    // none
		{Node: 0, Write: true, OK: false, Start: at(11), Took: 5 * time.Second},        // partition, minority
		{Node: 2, Write: true, OK: true, Start: at(12), Took: 20 * time.Millisecond},   // partition, majority
		{Node: 3, Write: true, OK: false, Start: at(19), Took: 300 * time.Millisecond}, // partition, majority
		{Node: 3, Write: false, OK: true, Start: at(15), Took: 30 * time.Millisecond},  // partition read
		{Node: 4, Write: true, OK: false, Start: at(30), Took: 1 * time.Millisecond},   // kill, the victim
		{Node: 1, Write: true, OK: true, Start: at(39), Took: 40 * time.Millisecond},   // kill, unaffected
		{Node: 1, Write: true, OK: true, Start: at(40), Took: 40 * time.Millisecond},   // none (the window ended)
	}
	got := Availability(obs, windows, []FaultKind{Kill, Pause, Partition})
	want := []AvailabilityRow{
		{Kind: "none", Writes: 2, WritesOK: 2, Clear: 2, ClearOK: 2, P99: 40 * time.Millisecond, Max: 40 * time.Millisecond,
			ClearP99: 40 * time.Millisecond, ClearMax: 40 * time.Millisecond},
		{Kind: Kill, Writes: 2, WritesOK: 1, Clear: 1, ClearOK: 1, P99: 40 * time.Millisecond, Max: 40 * time.Millisecond,
			ClearP99: 40 * time.Millisecond, ClearMax: 40 * time.Millisecond},
		{Kind: Partition, Writes: 3, WritesOK: 1, Clear: 2, ClearOK: 1, Reads: 1, ReadsOK: 1, P99: 5 * time.Second, Max: 5 * time.Second,
			ClearP99: 300 * time.Millisecond, ClearMax: 300 * time.Millisecond},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Availability:\n got %v\nwant %v", got, want)
	}
	bridge := Window{Fault: Fault{Kind: Bridge, Targets: []int{2}, Sides: [][]int{{0, 1}, {3, 4}}}}
	for i := range 5 {
		if !bridge.unaffected(i) {
			t.Errorf("bridge: node %d affected, want every node reachable by clients", i)
		}
	}
}
