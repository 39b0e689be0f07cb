package membership

import (
	"fmt"
	"slices"
	"testing"

	"github.com/cespare/xxhash/v2"
)

func memberNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("node-%d", i+1)
	}
	return out
}

func TestRingIsDeterministicAndOrderFree(t *testing.T) {
	a := NewRing([]string{"c", "a", "b"}, 256)
	b := NewRing([]string{"b", "c", "a", "a"}, 256)
	if !slices.Equal(a.Members(), []string{"a", "b", "c"}) {
		t.Fatalf("members %v, want sorted distinct [a b c]", a.Members())
	}
	for p := 0; p < 256; p++ {
		if a.Owner(p) != b.Owner(p) {
			t.Fatalf("partition %d: owner %q vs %q for the same member set", p, a.Owner(p), b.Owner(p))
		}
	}
}

func TestRingIsBalancedWithinOnePartition(t *testing.T) {
	for _, parts := range []int{64, 256, 1000, 1024} {
		for k := 1; k <= 12; k++ {
			r := NewRing(memberNames(k), parts)
			lo, hi, sum := parts, 0, 0
			var share float64
			for _, m := range r.Members() {
				n := r.Owned(m)
				lo, hi, sum = min(lo, n), max(hi, n), sum+n
				share += r.Share(m)
			}
			if sum != parts || hi-lo > 1 {
				t.Errorf("%d partitions, %d members: owned min %d max %d sum %d; want max-min <= 1 and sum %d", parts, k, lo, hi, sum, parts)
			}
			if share < 0.999999 || share > 1.000001 {
				t.Errorf("%d partitions, %d members: shares sum to %f", parts, k, share)
			}
			for p := 0; p < parts; p++ {
				if r.Owner(p) == "" {
					t.Fatalf("%d partitions, %d members: partition %d has no owner", parts, k, p)
				}
			}
		}
	}
}

func moved(a, b *Ring) int {
	n := 0
	for p := 0; p < a.Partitions(); p++ {
		if a.Owner(p) != b.Owner(p) {
			n++
		}
	}
	return n
}

// Adding or removing one member should move about partitions/(k+1) (resp.
// partitions/k) partitions, as consistent hashing promises; the cap adds a
// little cascade on top. The bound asserted is 2x ideal; the figure is logged.
func TestRingChangeMovesFewPartitions(t *testing.T) {
	const parts = 256
	for k := 1; k <= 9; k++ {
		before := NewRing(memberNames(k), parts)
		after := NewRing(memberNames(k+1), parts)
		n := moved(before, after)
		ideal := float64(parts) / float64(k+1)
		t.Logf("add member %d -> %d: moved %d partitions, ideal %.1f (%.2fx)", k, k+1, n, ideal, float64(n)/ideal)
		if float64(n) > 2*ideal {
			t.Errorf("adding a member to %d moved %d partitions, more than 2x the ideal %.1f", k, n, ideal)
		}
	}
	for k := 3; k <= 10; k++ {
		all := memberNames(k)
		before := NewRing(all, parts)
		for _, gone := range []int{0, k / 2, k - 1} {
			rest := slices.Delete(slices.Clone(all), gone, gone+1)
			after := NewRing(rest, parts)
			n := moved(before, after)
			ideal := float64(parts) / float64(k)
			t.Logf("remove %s of %d: moved %d partitions, ideal %.1f (%.2fx)", all[gone], k, n, ideal, float64(n)/ideal)
			if float64(n) > 2*ideal {
				t.Errorf("removing %s of %d moved %d partitions, more than 2x the ideal %.1f", all[gone], k, n, ideal)
			}
		}
	}
}

func TestPreferenceListIsDistinctOwnersClockwise(t *testing.T) {
	r := NewRing(memberNames(5), 256)
	for p := 0; p < 256; p++ {
		for n := 1; n <= 7; n++ {
			pl := r.PreferenceList(p, n)
			if want := min(n, 5); len(pl) != want {
				t.Fatalf("partition %d n %d: %d nodes %v, want %d", p, n, len(pl), pl, want)
			}
			if pl[0] != r.Owner(p) {
				t.Fatalf("partition %d: list starts with %q, owner is %q", p, pl[0], r.Owner(p))
			}
			seen := map[string]bool{}
			for _, id := range pl {
				if seen[id] {
					t.Fatalf("partition %d n %d: %v repeats %q", p, n, pl, id)
				}
				seen[id] = true
			}
			// Clockwise: each entry is the first new owner after the previous.
			q := p
			for i := 1; i < len(pl); i++ {
				for seenBefore := pl[:i]; slices.Contains(seenBefore, r.Owner(q)); q = (q + 1) % 256 {
				}
				if r.Owner(q) != pl[i] {
					t.Fatalf("partition %d: entry %d is %q, walking clockwise finds %q", p, i, pl[i], r.Owner(q))
				}
			}
		}
	}
	if pl := NewRing(nil, 256).PreferenceList(0, 3); pl != nil {
		t.Fatalf("empty ring gave %v", pl)
	}
	if pl := r.PreferenceList(256, 3); pl != nil {
		t.Fatalf("partition out of range gave %v", pl)
	}
}

// Golden values: if the partition function changes, every key of every
// existing cluster would move on upgrade. Change these only with a migration.
func TestPartitionIsStable(t *testing.T) {
	golden := []struct {
		db    int
		key   string
		parts int
		want  int
	}{
		{0, "", 256, 233},
		{0, "a", 256, 41},
		{0, "user:42", 256, 100},
		{1, "user:42", 256, 166},
		{15, "hello world", 256, 39},
		{0, "user:42", 1000, 393},
		{3, "k", 1, 0},
	}
	for _, g := range golden {
		if got := PartitionOf(g.db, []byte(g.key), g.parts); got != g.want {
			t.Errorf("PartitionOf(%d, %q, %d) = %d, want %d", g.db, g.key, g.parts, got, g.want)
		}
	}
	p := Placement{Committed: NewRing([]string{"a"}, 256)}
	if got := p.Partition(0, []byte("user:42")); got != 100 {
		t.Errorf("Placement.Partition = %d, want %d", got, 100)
	}
}

func TestPartitionRangesAreContiguous(t *testing.T) {
	// Partition is monotone in the hash: the ring is contiguous ranges.
	const parts = 256
	width := ^uint64(0)/parts + 1
	for _, key := range []string{"a", "b", "c", "d", "user:1", "user:2"} {
		var d = []byte{0}
		d = append(d, key...)
		h := xxhash.Sum64(d)
		if got, want := PartitionOf(0, []byte(key), parts), int(h/width); got != want {
			t.Errorf("key %q hash %x: partition %d, want hash/(2^64/%d) = %d", key, h, got, parts, want)
		}
	}
}

func BenchmarkNewRing(b *testing.B) {
	members := memberNames(5)
	b.ReportAllocs()
	for b.Loop() {
		NewRing(members, 256)
	}
}

func BenchmarkPreferenceList(b *testing.B) {
	r := NewRing(memberNames(5), 256)
	b.ReportAllocs()
	p := 0
	for b.Loop() {
		r.PreferenceList(p, 3)
		p = (p + 1) % 256
	}
}

func BenchmarkPartitionOf(b *testing.B) {
	key := []byte("user:0000000042")
	b.ReportAllocs()
	for b.Loop() {
		PartitionOf(0, key, 256)
	}
}
