package coordinator

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/dynkv/dynkv/vclock"
)

// servedGets records which replicas served a Get from now on.
func servedGets(h *harness, ids ...string) chan string {
	served := make(chan string, 16)
	for _, id := range ids {
		n := h.net.node(id)
		n.mu.Lock()
		n.served = served
		n.mu.Unlock()
	}
	return served
}

func drain(c chan string) []string {
	var out []string
	for {
		select {
		case id := <-c:
			out = append(out, id)
		default:
			slices.Sort(out)
			return out
		}
	}
}

func TestBlindWriteReadsItsContextFromOnlyRReplicasWhenTheyAnswer(t *testing.T) {
	h := newHarness(t, Config{GatherHedge: time.Hour, GatherBlindWrites: true}, abc, nil, "a", "b", "c")
	served := servedGets(h, "b", "c")
	mustPut(t, h.coord("a"), "v1", vclock.Context{})
	h.quiesce()
	if got := drain(served); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("peers that served the context read: %v, want only [b] (self plus R-1=1 peer, in preference order)", got)
	}
}

func TestFailedContextReadAsksTheNextReplicaAtOnce(t *testing.T) {
	// The hedge is an hour: the write finishes only if the failure itself
	// makes the coordinator ask c.
	h := newHarness(t, Config{GatherHedge: time.Hour, GatherBlindWrites: true}, abc, nil, "a", "b", "c")
	mustPut(t, h.coord("b"), "v0", vclock.Context{}) // a, b and c hold v0
	h.quiesce()
	b := h.net.node("b")
	b.mu.Lock()
	b.getErr = errors.New("injected get failure")
	b.mu.Unlock()
	served := servedGets(h, "c")
	mustPut(t, h.coord("a"), "v1", vclock.Context{})
	h.quiesce()
	if got := drain(served); !slices.Equal(got, []string{"c"}) {
		t.Fatalf("peers that served the context read: %v, want [c] after b failed", got)
	}
	b.mu.Lock()
	b.getErr = nil
	b.mu.Unlock()
	s, _ := mustGet(t, h.coord("c"), 3)
	if got := values(s); !slices.Equal(got, []string{"v1"}) {
		t.Fatalf("read %v, want only the blind write's value", got)
	}
}

func TestStalledPeerIsBackedUpByTheOtherReplicasAfterTheHedge(t *testing.T) {
	h := newHarness(t, Config{GatherHedge: time.Millisecond, GatherBlindWrites: true}, abc, nil, "a", "b", "c")
	// c holds a write that b and a missed: only c's answer lets the blind
	// write supersede it.
	old, _ := vclock.Set{}.Update("c", vclock.Context{}, sib("old"))
	h.net.node("c").store(0, key, old)
	stalled := make(chan struct{})
	h.setGetGate("b", stalled)
	served := servedGets(h, "c")
	mustPut(t, h.coord("a"), "new", vclock.Context{})
	close(stalled)
	h.quiesce()
	if got := drain(served); !slices.Equal(got, []string{"c"}) {
		t.Fatalf("peers that served the context read: %v, want [c] once b stalled past the hedge", got)
	}
	s, _ := mustGet(t, h.coord("a"), 3)
	if got := values(s); !slices.Equal(got, []string{"new"}) {
		t.Fatalf("read %v, want only the blind write's value (c's old write superseded)", got)
	}
}

func TestContextReadAsksLivePeersFirst(t *testing.T) {
	h := newHarness(t, Config{GatherHedge: time.Hour, GatherBlindWrites: true}, abc, nil, "a", "b", "c")
	fc := h.clusters["a"]
	fc.mu.Lock()
	fc.dead["b"] = true
	fc.mu.Unlock()
	served := servedGets(h, "b", "c")
	mustPut(t, h.coord("a"), "v1", vclock.Context{})
	h.quiesce()
	if got := drain(served); !slices.Equal(got, []string{"c"}) {
		t.Fatalf("peers that served the context read: %v, want [c] while b is considered dead", got)
	}
}
