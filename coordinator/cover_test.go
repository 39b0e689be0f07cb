package coordinator

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/dynkv/dynkv/replication/rpc"
	"github.com/dynkv/dynkv/vclock"
)

// The blind write without a context read (cover.go).

func TestACoveredBlindWriteReadsNoContextAndMakesOneCallPerPeer(t *testing.T) {
	h := newHarness(t, Config{}, abc, nil, "a", "b", "c")
	mustPut(t, h.coord("a"), "v0", vclock.Context{})
	h.quiesce()
	served := servedGets(h, "a", "b", "c")
	mustPut(t, h.coord("b"), "v1", vclock.Context{})
	h.quiesce()
	if got := drain(served); len(got) != 0 {
		t.Fatalf("replicas that served a context read: %v, want none", got)
	}
	// v0 through a asked b and c; v1 through b asked a and c.
	for id, want := range map[string]int{"a": 1, "b": 1, "c": 2} {
		n := h.net.node(id)
		n.mu.Lock()
		covering := n.covering
		n.mu.Unlock()
		if covering != want {
			t.Errorf("covering merges asked of %s: %d, want %d", id, covering, want)
		}
	}
	if st := h.coord("b").Stats(); st.CoveredBlindWrites != 1 || st.CoverFallbacks != 0 {
		t.Fatalf("b's stats: %d covered, %d fallbacks; want 1 and 0", st.CoveredBlindWrites, st.CoverFallbacks)
	}
	for _, id := range abc {
		if got := values(h.net.node(id).set(0, key)); !slices.Equal(got, []string{"v1"}) {
			t.Errorf("replica %s holds %v, want [v1]", id, got)
		}
	}
}

func TestABlindWriteCoversWhatOnlyItsPeersHold(t *testing.T) {
	// b coordinated v1 and c acknowledged it; a, the next coordinator,
	// never received it. A covering merge that did not check would leave
	// v1 and v2 as siblings on b and c; the check makes b and c refuse, and
	// a writes again having read their contexts.
	h := newHarness(t, Config{}, abc, nil, "a", "b", "c")
	v1, _ := vclock.Set{}.Update("b", vclock.Context{}, sib("v1"))
	h.net.node("b").store(0, key, v1)
	h.net.node("c").store(0, key, v1)
	mustPut(t, h.coord("a"), "v2", vclock.Context{})
	h.quiesce()
	for _, id := range abc {
		if got := values(h.net.node(id).set(0, key)); !slices.Equal(got, []string{"v2"}) {
			t.Errorf("replica %s holds %v, want only [v2]", id, got)
		}
	}
	if st := h.coord("a").Stats(); st.CoverFallbacks != 1 || st.CoveredBlindWrites != 0 {
		t.Fatalf("a's stats: %d covered, %d fallbacks; want 0 and 1", st.CoveredBlindWrites, st.CoverFallbacks)
	}
}

func TestAReplicaThatRefusesAnAcknowledgedBlindWriteStillGetsIt(t *testing.T) {
	// b holds a write nobody else saw (concurrent with the blind write, as
	// far as a and c can tell). a and c cover the blind write, so it is
	// acknowledged; b's refusal comes last and b is sent the write as a
	// plain merge, keeping both as siblings there.
	h := newHarness(t, Config{}, abc, nil, "a", "b", "c")
	x, _ := vclock.Set{}.Update("b", vclock.Context{}, sib("x"))
	h.net.node("b").store(0, key, x)
	release := make(chan struct{})
	h.setMergeGate("b", release)
	mustPut(t, h.coord("a"), "v2", vclock.Context{})
	close(release)
	h.setMergeGate("b", nil)
	h.quiesce()
	if got := values(h.net.node("b").set(0, key)); !slices.Equal(got, []string{"v2", "x"}) {
		t.Fatalf("b holds %v, want the blind write beside its own concurrent write", got)
	}
	for _, id := range []string{"a", "c"} {
		if got := values(h.net.node(id).set(0, key)); !slices.Equal(got, []string{"v2"}) {
			t.Errorf("replica %s holds %v, want [v2]", id, got)
		}
	}
	if st := h.coord("a").Stats(); st.CoveredBlindWrites != 1 || st.CoverFallbacks != 0 {
		t.Fatalf("a's stats: %d covered, %d fallbacks; want 1 and 0", st.CoveredBlindWrites, st.CoverFallbacks)
	}
}

func TestABlindWriteWithAReplicaDownReadsItsContextFirst(t *testing.T) {
	// A dead replica's slot goes to a hint, whose holder has no history of
	// the key to check a covering merge against: the gather path.
	h := newHarness(t, Config{}, abc, nil, "a", "b", "c", "d")
	fc := h.clusters["a"]
	fc.mu.Lock()
	fc.dead["b"] = true
	fc.mu.Unlock()
	served := servedGets(h, "c")
	mustPut(t, h.coord("a"), "v1", vclock.Context{})
	h.quiesce()
	if got := drain(served); !slices.Equal(got, []string{"c"}) {
		t.Fatalf("peers that served the context read: %v, want [c]", got)
	}
	if st := h.coord("a").Stats(); st.CoveredBlindWrites != 0 || st.CoverFallbacks != 0 {
		t.Fatalf("a's stats: %d covered, %d fallbacks; want none of either", st.CoveredBlindWrites, st.CoverFallbacks)
	}
}

func TestCanCoverOnlyWhereTwoWriteQuorumsMeet(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     Config
		w       int
		blind   bool
		target  []string
		wantCov bool
	}{
		{"N=3 W=2", Config{}, 0, true, nil, true},
		{"with a context", Config{}, 0, false, nil, false},
		{"this write W=1", Config{}, 1, true, nil, false},
		{"default W=1, this write W=3", Config{W: 1}, 3, true, nil, true},
		{"default W=1", Config{W: 1}, 0, true, nil, false},
		{"a ring in transition", Config{}, 0, true, []string{"a", "b", "d"}, false},
		{"local blind writes", Config{LocalBlindWrites: true}, 0, true, nil, false},
		{"gather blind writes", Config{GatherBlindWrites: true}, 0, true, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.cfg, abc, tc.target, "a", "b", "c", "d")
			c := h.coord("a")
			req := WriteRequest{Key: key, Blind: tc.blind, W: tc.w}
			plan, err := c.planWrite(req)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.canCover(&plan, req); got != tc.wantCov {
				t.Fatalf("canCover = %v, want %v", got, tc.wantCov)
			}
		})
	}
}

// olderReplicas answers merge-covering as a node of a version before it
// does: a bad request. Everything else passes through.
type olderReplicas struct {
	Replicas
	older map[string]bool
}

func (o olderReplicas) MergeCovering(ctx context.Context, id string, db int, key []byte, s vclock.Set) (bool, vclock.Context, error) {
	if o.older[id] {
		return false, vclock.Context{}, fmt.Errorf("replication: merge-covering at %s: %w: no RPC call 9", id, rpc.ErrBadRequest)
	}
	return o.Replicas.MergeCovering(ctx, id, db, key, s)
}

func TestABlindWriteAmongNodesOfAnOlderVersionReadsItsContextAndMergesPlainly(t *testing.T) {
	// During a rolling upgrade b does not know merge-covering. Its answer
	// counts as a refusal: b gets the write as a plain merge (whether c's
	// covering answer or b's comes first), never a hint as if it were down.
	h := newHarness(t, Config{}, abc, nil, "a", "b", "c")
	a := h.net.node("a")
	a.coord.replicas = olderReplicas{Replicas: a.coord.replicas, older: map[string]bool{"b": true}}
	v1, _ := vclock.Set{}.Update("c", vclock.Context{}, sib("v1"))
	for _, id := range abc {
		h.net.node(id).store(0, key, v1)
	}
	mustPut(t, a.coord, "v2", vclock.Context{})
	h.quiesce()
	for _, id := range abc {
		if got := values(h.net.node(id).set(0, key)); !slices.Equal(got, []string{"v2"}) {
			t.Errorf("replica %s holds %v, want [v2]", id, got)
		}
	}
	st := a.coord.Stats()
	if st.Hinted != 0 || st.CoverFallbacks+st.CoveredBlindWrites != 1 {
		t.Fatalf("a's stats: %+v; want no hint and one blind write, covered or fallen back", st)
	}
}
