package coordinator

import (
	"errors"
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

// The chaos suite's case: a write acknowledged by its coordinator b, then a
// delete with the write's context through a, while the write has reached
// no other replica and b cannot answer. The delete must still
// supersede the write: b's claim cannot be checked, so it is kept, not cut
// away (that would bring an acknowledged delete's value back).
func TestAnUnverifiableClaimIsKeptSoADeleteStillSupersedes(t *testing.T) {
	for _, tc := range []struct {
		name string
		down func(h *harness)
	}{
		{"minting replica reported dead", func(h *harness) {
			for _, fc := range h.clusters {
				fc.mu.Lock()
				fc.dead["b"] = true
				fc.mu.Unlock()
			}
			h.fail("b", errors.New("b is down"))
		}},
		{"minting replica alive but failing", func(h *harness) { h.fail("b", errors.New("b is unreachable")) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{}, abc, nil, "a", "b", "c")
			// Neither a nor c receives the write until the end: it was
			// acknowledged by b alone (W=1), so no replica but its minter
			// can vouch for it.
			g := make(chan struct{})
			h.setMergeGate("a", g)
			h.setMergeGate("c", g)
			res0, err := h.coord("b").Put(bg, WriteRequest{Key: key, Context: vclock.Context{}, Sibling: sib("value"), W: 1})
			if err != nil {
				t.Fatal(err)
			}
			wctx := res0.Context
			tc.down(h)
			res, err := h.coord("a").Put(bg, WriteRequest{Key: key, Context: wctx, Sibling: vclock.Sibling{Tombstone: true}, W: 1})
			if err != nil {
				t.Fatalf("delete with the write's context through a: %v", err)
			}
			if d := (vclock.Dot{Actor: wctx.VV[0].Actor, Counter: wctx.VV[0].Counter}); !res.Context.Covers(d) {
				t.Fatalf("the delete's context %s does not cover the write %s it was sent with", res.Context, wctx)
			}
			close(g)
			h.quiesce()
			for _, id := range []string{"a", "c"} {
				if got := h.net.node(id).set(0, key); len(got.Live(1<<62)) != 0 {
					t.Fatalf("replica %s holds %v after the acknowledged delete, want nothing live", id, values(got))
				}
			}
			// b missed the delete; anti-entropy's merge with a replica that
			// has it must not bring the value back.
			if got := vclock.Merge(h.net.node("b").set(0, key), h.net.node("a").set(0, key)); len(got.Live(1<<62)) != 0 {
				t.Fatalf("b's state merged with a's holds %v, want the write superseded", values(got))
			}
		})
	}
}

// A read at R=2 of N=3 asks this node and one peer, not every replica
// (lazyReads): one round trip per read. A peer that fails is replaced at
// once, and a quorum read still sees the last acknowledged write.
func TestAQuorumReadAsksOnlyTheReplicasItNeeds(t *testing.T) {
	h := newHarness(t, Config{}, abc, nil, "a", "b", "c")
	mustPut(t, h.coord("a"), "v", vclock.Context{})
	h.quiesce()
	served := make(chan string, 16)
	for _, id := range abc {
		h.net.node(id).mu.Lock()
		h.net.node(id).served = served
		h.net.node(id).mu.Unlock()
	}
	s, _ := mustGet(t, h.coord("a"), 2)
	if got := values(s); !slices.Equal(got, []string{"v"}) {
		t.Fatalf("read %v, want [v]", got)
	}
	h.quiesce()
	var asked []string
	for len(served) > 0 {
		asked = append(asked, <-served)
	}
	slices.Sort(asked)
	// The fake serves a's own read like the others'.
	if len(asked) != 2 || asked[0] != "a" {
		t.Fatalf("a quorum read through a asked %v, want a and exactly one peer", asked)
	}
	h.fail(asked[1], errors.New("down"))
	s, _ = mustGet(t, h.coord("a"), 2)
	if got := values(s); !slices.Equal(got, []string{"v"}) {
		t.Fatalf("read with %s failing: %v, want [v]", asked[1], got)
	}
}
