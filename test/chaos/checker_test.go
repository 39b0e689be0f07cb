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
	o := ScheduleOptions{Nodes: 5, Total: 10 * time.Minute, Kinds: []FaultKind{Kill, Pause, Partition},
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
