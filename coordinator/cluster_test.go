package coordinator

import (
	"slices"
	"testing"

	"github.com/dynkv/dynkv/membership"
)

func TestRingClusterTakesBothListsFromOneSnapshot(t *testing.T) {
	committed := membership.NewRing([]string{"a", "b", "c"}, 64)
	target := membership.NewRing([]string{"a", "b", "c", "d"}, 64)
	p := membership.Placement{Committed: committed, Target: target}
	rc := RingCluster("a", func() membership.Placement { return p }, func(id string) bool { return id != "b" })

	part := p.Partition(3, key)
	c, tl := rc.PreferenceLists(3, key, 3)
	if want := committed.PreferenceList(part, 3); !slices.Equal(c, want) {
		t.Fatalf("committed list %v, want %v", c, want)
	}
	if want := target.PreferenceList(part, 3); !slices.Equal(tl, want) {
		t.Fatalf("target list %v, want %v", tl, want)
	}
	if rc.Self() != "a" || rc.Alive("b") || !rc.Alive("c") {
		t.Fatal("Self or Alive not passed through")
	}

	p.Target = nil
	c, tl = rc.PreferenceLists(3, key, 5)
	if tl != nil || len(c) != 3 {
		t.Fatalf("no transition: committed %v (want 3 members, N capped), target %v (want nil)", c, tl)
	}

	// No committed ring: no lists at all, even with a target.
	p = membership.Placement{Target: target}
	if c, tl = rc.PreferenceLists(3, key, 3); c != nil || tl != nil {
		t.Fatalf("no committed ring: committed %v, target %v; want both nil", c, tl)
	}
}
