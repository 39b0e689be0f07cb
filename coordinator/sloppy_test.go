package coordinator

import (
	"errors"
	"fmt"
	"testing"

	"github.com/dynkv/dynkv/replication/rpc"
	"github.com/dynkv/dynkv/vclock"
)

func (h *harness) markDead(ids ...string) {
	for _, fc := range h.clusters {
		fc.mu.Lock()
		for _, id := range ids {
			fc.dead[id] = true
		}
		fc.mu.Unlock()
	}
}

func (h *harness) hints(id string) map[string][]string {
	n := h.net.node(id)
	n.mu.Lock()
	defer n.mu.Unlock()
	out := map[string][]string{}
	for k, s := range n.hints {
		out[k] = values(s)
	}
	return out
}

func TestDeadPrimaryIsReplacedByAFallbackHoldingAHintThatCountsTowardW(t *testing.T) {
	ring := []string{"a", "b", "c", "d", "e"}
	h := newHarness(t, Config{N: 3, W: 3}, ring, nil, ring...)
	h.markDead("c")
	h.fail("c", rpc.ErrUnreachable)

	if _, err := put(t, h.coord("a"), "v1", vclock.Context{}, 3); err != nil {
		t.Fatalf("write at W=3 with c dead and d healthy: %v, want success through a hint", err)
	}
	h.quiesce()
	if got := fmt.Sprint(h.hints("d")); got != "map[c|0/k:[v1]]" {
		t.Errorf("hints on d: %s, want the write held for c", got)
	}
	if got := h.hints("e"); len(got) != 0 {
		t.Errorf("hints on e: %v, want none (one fallback per missing owner)", got)
	}
	if got := values(h.net.node("b").set(0, key)); fmt.Sprint(got) != "[v1]" {
		t.Errorf("b holds %v, want the merged write [v1]", got)
	}
	if st := h.coord("a").Stats(); st.Hinted != 1 {
		t.Errorf("Stats.Hinted %d, want 1", st.Hinted)
	}
}

func TestAFailedMergeFallsBackToAHint(t *testing.T) {
	ring := []string{"a", "b", "c", "d"}
	h := newHarness(t, Config{N: 3, W: 3}, ring, nil, ring...)
	h.fail("b", fmt.Errorf("dial: %w", rpc.ErrUnreachable)) // alive per the failure detector

	if _, err := put(t, h.coord("a"), "v1", vclock.Context{}, 3); err != nil {
		t.Fatalf("write with b unreachable: %v, want success through a hint on d", err)
	}
	h.quiesce()
	if got := fmt.Sprint(h.hints("d")); got != "map[b|0/k:[v1]]" {
		t.Errorf("hints on d: %s, want the write held for b", got)
	}
}

func TestWithoutAHealthyFallbackTheSlotFails(t *testing.T) {
	ring := []string{"a", "b", "c", "d"}
	h := newHarness(t, Config{N: 3, W: 3}, ring, nil, ring...)
	h.markDead("c", "d")
	h.fail("c", rpc.ErrUnreachable)
	_, err := put(t, h.coord("a"), "v1", vclock.Context{}, 3)
	// Acked may be 1 or 2: the write fails as soon as c's slot fails.
	if q := asQuorumErr(t, err); q.Needed != 3 || q.Acked > 2 {
		t.Errorf("quorum error %+v, want needed 3 acked at most 2", q)
	}
	// The coordinator keeps the hint itself so c still gets the write.
	h.quiesce()
	if got := fmt.Sprint(h.hints("a")); got != "map[c|0/k:[v1]]" {
		t.Errorf("hints on the coordinator a: %s, want the write held for c", got)
	}

	// A fallback that fails to store the hint is a failed slot as well.
	h2 := newHarness(t, Config{N: 3, W: 3}, ring, nil, ring...)
	h2.markDead("c")
	n := h2.net.node("d")
	n.mu.Lock()
	n.hintErr = errors.New("disk full")
	n.mu.Unlock()
	_, err = put(t, h2.coord("a"), "v1", vclock.Context{}, 3)
	if q := asQuorumErr(t, err); q.Needed != 3 || q.Acked > 2 {
		t.Errorf("quorum error %+v, want needed 3 acked at most 2", q)
	}
	h2.quiesce()
	if st := h2.coord("a").Stats(); st.HintFailures != 1 {
		t.Errorf("Stats.HintFailures %d, want 1", st.HintFailures)
	}
}

func TestFallbackChoiceIsDeterministicAndSkipsDeadNodesAndListMembers(t *testing.T) {
	dead := map[string]bool{}
	alive := func(id string) bool { return !dead[id] }
	for _, tc := range []struct {
		name  string
		ring  []string
		plan  writePlan
		dead  []string
		wantC string // candidates
		wantA string // owner -> fallback for owners dead before the fan-out
	}{
		{"one dead primary", []string{"a", "b", "c", "d", "e"}, planWrite([]string{"a", "b", "c"}, nil, 2),
			[]string{"b"}, "[d e]", "map[b:d]"},
		{"dead fallback skipped", []string{"a", "b", "c", "d", "e", "f"}, planWrite([]string{"a", "b", "c"}, nil, 2),
			[]string{"c", "d"}, "[e f]", "map[c:e]"},
		{"two dead primaries take distinct fallbacks", []string{"a", "b", "c", "d", "e", "f"}, planWrite([]string{"a", "b", "c"}, nil, 2),
			[]string{"b", "c"}, "[d e f]", "map[b:d c:e]"},
		{"target list members are not fallbacks", []string{"a", "b", "c", "d", "e"}, planWrite([]string{"a", "b", "c"}, []string{"a", "b", "d"}, 2),
			[]string{"c"}, "[e]", "map[c:e]"},
		{"no fallback left", []string{"a", "b", "c"}, planWrite([]string{"a", "b", "c"}, nil, 2),
			[]string{"b", "c"}, "[]", "map[b: c:]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clear(dead)
			for _, d := range tc.dead {
				dead[d] = true
			}
			cands := fallbackCandidates(tc.ring, &tc.plan, alive)
			if got := fmt.Sprint(cands); got != tc.wantC {
				t.Errorf("candidates %s, want %s", got, tc.wantC)
			}
			for i := 0; i < 3; i++ { // the same every time
				p := newFallbackPicker(append([]string(nil), cands...))
				got := p.assignDead(tc.plan.nodes, "a", alive, func(string) bool { return false })
				if fmt.Sprint(got) != tc.wantA {
					t.Fatalf("assignment %v, want %s", got, tc.wantA)
				}
			}
		})
	}
}

func TestPickerGivesEachOwnerOneFallback(t *testing.T) {
	p := newFallbackPicker([]string{"d", "e"})
	if a, b := p.pick("b"), p.pick("b"); a != "d" || b != "d" {
		t.Errorf("pick(b) twice: %q %q, want d both times", a, b)
	}
	if got := p.pick("c"); got != "e" {
		t.Errorf("pick(c) %q, want e", got)
	}
	if got := p.pick("x"); got != "" {
		t.Errorf("pick with every candidate taken: %q, want none", got)
	}
}
