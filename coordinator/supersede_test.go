package coordinator

import (
	"slices"
	"testing"

	"github.com/dynkv/dynkv/vclock"
)

// empty is the context of a 404: present, covering nothing.
func putWithContext(t *testing.T, c *Coordinator, v string, ctx vclock.Context) vclock.Context {
	t.Helper()
	res, err := c.Put(bg, WriteRequest{Key: key, Context: ctx, Sibling: sib(v)})
	if err != nil {
		t.Fatalf("put %q with context %s: %v", v, ctx, err)
	}
	return res.Context
}

// SPEC section 5: an empty context (from a 404) supersedes nothing, so two
// clients that both read "absent" and both write leave two siblings, on
// one coordinator and across coordinators, whatever order the replicas
// learn of the writes in.
func TestTwoCreatesWithTheEmptyContextBecomeSiblings(t *testing.T) {
	for _, tc := range []struct {
		name   string
		first  string
		second string
	}{
		{"same coordinator", "a", "a"},
		{"different coordinators", "a", "c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{}, abc, nil, "a", "b", "c")
			putWithContext(t, h.coord(tc.first), "first", vclock.Context{})
			h.quiesce()
			// The second client read 404 before the first write and
			// writes with that read's empty context.
			putWithContext(t, h.coord(tc.second), "second", vclock.Context{})
			h.quiesce()
			for _, id := range abc {
				s, _ := mustGet(t, h.coord(id), 3)
				if got, want := values(s), []string{"first", "second"}; !slices.Equal(got, want) {
					t.Fatalf("read through %s: %v, want both creates as siblings %v", id, got, want)
				}
			}
		})
	}
}

// A blind write (no context at all) still supersedes what the replicas
// hold: the same two writes without a context leave the last one.
func TestTwoBlindCreatesLeaveTheLast(t *testing.T) {
	h := newHarness(t, Config{}, abc, nil, "a", "b", "c")
	mustPut(t, h.coord("a"), "first", vclock.Context{})
	h.quiesce()
	mustPut(t, h.coord("c"), "second", vclock.Context{})
	h.quiesce()
	s, _ := mustGet(t, h.coord("b"), 3)
	if got, want := values(s), []string{"second"}; !slices.Equal(got, want) {
		t.Fatalf("read %v, want %v", got, want)
	}
}

// A context that covers a write its coordinator has not received yet (the
// replica missed it) still supersedes that write: the coordinator learns
// the other replicas' contexts instead of clamping the client's away.
func TestAContextAheadOfItsCoordinatorStillSupersedesWhatItCovers(t *testing.T) {
	h := newHarness(t, Config{}, abc, nil, "a", "b", "c")
	g := make(chan struct{})
	h.setMergeGate("a", g) // a misses v1 until the end
	read := putWithContext(t, h.coord("b"), "v1", vclock.Context{})
	putWithContext(t, h.coord("a"), "v2", read)
	close(g)
	h.quiesce()
	s, _ := mustGet(t, h.coord("c"), 3)
	if got, want := values(s), []string{"v2"}; !slices.Equal(got, want) {
		t.Fatalf("read %v, want v1 superseded by v2: %v", got, want)
	}
	if n := h.coord("a").Stats().ContextsAhead; n != 1 {
		t.Fatalf("ContextsAhead on a = %d, want 1", n)
	}
}

// Issue 16: a forged context with the top counter for every node made two
// honest writers overwrite each other, and on a cluster made every later
// acknowledged write vanish. The coordinator clamps a context to what the
// replicas hold, so the forged write supersedes only real writes and later
// writes stay.
func TestAForgedContextCannotSwallowLaterWrites(t *testing.T) {
	top := ^uint64(0)
	forged := vclock.Context{VV: []vclock.Entry{{Actor: "a", Counter: top}, {Actor: "b", Counter: top}, {Actor: "c", Counter: top}}}
	h := newHarness(t, Config{}, abc, nil, "a", "b", "c")
	mustPut(t, h.coord("a"), "v0", vclock.Context{})
	h.quiesce()
	s, _ := mustGet(t, h.coord("a"), 2)
	honest := s.Context

	got := putWithContext(t, h.coord("a"), "forged", forged)
	for _, e := range got.VV {
		if e.Counter > 10 {
			t.Fatalf("the forged write returned context %s: its counters were not clamped", got)
		}
	}
	h.quiesce()
	// Two honest clients that read v0 write concurrently through
	// different coordinators: they must become siblings of each other,
	// and of the forged write, which neither saw.
	putWithContext(t, h.coord("b"), "honest-1", honest)
	putWithContext(t, h.coord("c"), "honest-2", honest)
	h.quiesce()
	s, _ = mustGet(t, h.coord("b"), 3)
	if got, want := values(s), []string{"forged", "honest-1", "honest-2"}; !slices.Equal(got, want) {
		t.Fatalf("after two honest writes from one read: %v, want %v", got, want)
	}
	mustPut(t, h.coord("a"), "blind", vclock.Context{})
	putWithContext(t, h.coord("b"), "after-blind", vclock.Context{})
	h.quiesce()
	for _, id := range abc {
		s, _ := mustGet(t, h.coord(id), 3)
		if got, want := values(s), []string{"after-blind", "blind"}; !slices.Equal(got, want) {
			t.Fatalf("read through %s: %v, want %v", id, got, want)
		}
	}
}
