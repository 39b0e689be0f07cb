package coordinator

import (
	"errors"
	"testing"

	"github.com/dynkv/dynkv/store"
	"github.com/dynkv/dynkv/vclock"
)

func incr(t *testing.T, c *Coordinator, delta int64) int64 {
	t.Helper()
	res, err := c.Put(bg, WriteRequest{Key: key, Counter: true, Delta: delta})
	if err != nil {
		t.Fatalf("increment by %d at %s: %v", delta, c.cluster.Self(), err)
	}
	return res.Value
}

func counterOf(t *testing.T, s vclock.Set) int64 {
	t.Helper()
	v, _, err := s.CounterValue()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// Increments through every node, d forwarding to a replica, all count once,
// and each answer is the counter as its coordinator saw it.
func TestIncrementsThroughEveryNodeAllCount(t *testing.T) {
	h := newHarness(t, Config{}, abc, nil, "a", "b", "c", "d")
	var sum int64
	for i, id := range []string{"a", "b", "c", "d", "a", "d", "b"} {
		delta := int64(i*3 - 5)
		sum += delta
		got := incr(t, h.coord(id), delta)
		h.quiesce()
		if got != sum {
			t.Fatalf("increment %d via %s answered %d, want the running sum %d", i, id, got, sum)
		}
	}
	for _, id := range abc {
		if got := counterOf(t, h.net.node(id).set(0, key)); got != sum {
			t.Errorf("replica %s holds %d, want %d", id, got, sum)
		}
	}
	if n := len(h.net.node("d").set(0, key).Siblings); n != 0 {
		t.Errorf("d, not a replica, holds %d shares", n)
	}
	s, _ := mustGet(t, h.coord("d"), 0)
	if got := counterOf(t, s); got != sum {
		t.Errorf("read via d: %d, want %d", got, sum)
	}
}

// A replica that lost its copy of the counter (a wiped disk, or a copy
// handed off) builds its next increment on its share as a quorum holds it,
// not on nothing: otherwise its new, smaller share would replace the
// increments it had acknowledged.
func TestIncrementAfterLosingTheLocalCopyKeepsEarlierIncrements(t *testing.T) {
	h := newHarness(t, Config{}, abc, nil, "a", "b", "c")
	incr(t, h.coord("a"), 10)
	incr(t, h.coord("a"), 5)
	h.quiesce()
	h.net.node("a").store(0, key, vclock.Set{})
	if got := incr(t, h.coord("a"), 1); got != 16 {
		t.Fatalf("increment after a lost its copy answered %d, want 16", got)
	}
	h.quiesce()
	for _, id := range abc {
		if got := counterOf(t, h.net.node(id).set(0, key)); got != 16 {
			t.Errorf("replica %s holds %d, want 16", id, got)
		}
	}
}

func TestIncrementOfAValueIsTheWrongType(t *testing.T) {
	h := newHarness(t, Config{}, abc, nil, "a", "b", "c", "d")
	mustPut(t, h.coord("a"), "v", vclock.Context{})
	h.quiesce()
	for _, id := range []string{"b", "d"} {
		_, err := h.coord(id).Put(bg, WriteRequest{Key: key, Counter: true, Delta: 1})
		if !errors.Is(err, store.ErrWrongType) {
			t.Errorf("increment of a value via %s: %v, want ErrWrongType", id, err)
		}
	}
	if got := values(h.net.node("a").set(0, key)); len(got) != 1 || got[0] != "v" {
		t.Errorf("the value became %v", got)
	}
}

// W counts for increments as for writes: with two replicas failing, the
// increment is applied on the coordinator but not acknowledged.
func TestIncrementNeedsW(t *testing.T) {
	h := newHarness(t, Config{}, abc, nil, "a", "b", "c")
	boom := errors.New("down")
	h.fail("b", boom)
	h.fail("c", boom)
	_, err := h.coord("a").Put(bg, WriteRequest{Key: key, Counter: true, Delta: 1})
	asQuorumErr(t, err)
}
