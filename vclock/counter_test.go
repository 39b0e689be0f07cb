package vclock

import (
	"bytes"
	"errors"
	"math"
	"testing"
)

// counterCluster is replicas of one counter key: each increments as its
// own actor on its own state and they exchange states in random order, as
// replication, read repair and anti-entropy do.
type counterCluster struct {
	states []Set
	actors []string
	sum    int64 // of every increment applied
	seen   []Set // every state any replica has had
	now    int64
}

func newCounterCluster(n int) *counterCluster {
	cc := &counterCluster{states: make([]Set, n), seen: []Set{{}}}
	for i := range n {
		cc.actors = append(cc.actors, string(rune('a'+i)))
	}
	return cc
}

func (cc *counterCluster) step(t *testing.T, r interface{ Intn(int) int }) {
	t.Helper()
	i := r.Intn(len(cc.states))
	if r.Intn(2) == 0 {
		j := r.Intn(len(cc.states))
		cc.states[i] = Merge(cc.states[i], cc.states[j])
	} else {
		cc.now++
		delta := int64(r.Intn(21) - 10)
		next, err := cc.states[i].Increment(cc.actors[i], delta, cc.now)
		if err != nil {
			t.Fatalf("increment %d at %s: %v", delta, cc.actors[i], err)
		}
		cc.states[i] = next
		cc.sum += delta
	}
	checkSet(t, cc.states[i])
	cc.seen = append(cc.seen, cc.states[i])
}

// However the replicas' states travel, once every state has met every
// other the counter is the sum of every increment: none lost, none counted
// twice. Replay a failure with -vclock.seed.
func TestCounterConvergesToTheSumOfIncrements(t *testing.T) {
	r := newRand(t)
	for round := range 200 {
		cc := newCounterCluster(1 + r.Intn(4))
		for range 1 + r.Intn(200) {
			cc.step(t, r)
		}
		var all Set
		for _, s := range cc.states {
			all = Merge(all, s)
		}
		v, ok, err := all.CounterValue()
		if err != nil {
			t.Fatal(err)
		}
		if v != cc.sum || (!ok && cc.sum != 0) {
			t.Fatalf("round %d: merged counter = %d (present %v), want the sum %d", round, v, ok, cc.sum)
		}
		// At most one share per actor after the merge.
		seen := map[string]bool{}
		for _, x := range all.Siblings {
			if seen[x.Dot.Actor] {
				t.Fatalf("round %d: two shares of actor %s: %s", round, x.Dot.Actor, dots(all))
			}
			seen[x.Dot.Actor] = true
		}
		// Every replica's own value only counts increments that happened.
		for i, s := range cc.states {
			if _, _, err := s.CounterValue(); err != nil {
				t.Fatalf("replica %d: %v", i, err)
			}
		}
	}
}

// Merge of counter states is commutative, associative and idempotent, the
// join of the PN-counter semilattice (checked against the textbook join of
// dotted containers, join in set_test.go).
func TestCounterMergeIsASemilattice(t *testing.T) {
	r := newRand(t)
	cc := newCounterCluster(3)
	for range 300 {
		cc.step(t, r)
	}
	for i := range 2000 {
		cc.step(t, r)
		pick := func() Set { return cc.seen[r.Intn(len(cc.seen))] }
		a, b, c := pick(), pick(), pick()
		ab := Merge(a, b)
		if want := join(a, b); !ab.Equal(want) {
			t.Fatalf("case %d: Merge = %s, want %s", i, dots(ab), dots(want))
		}
		if ba := Merge(b, a); !ab.Equal(ba) {
			t.Fatalf("case %d: not commutative", i)
		}
		if l, rr := Merge(ab, c), Merge(a, Merge(b, c)); !l.Equal(rr) {
			t.Fatalf("case %d: not associative", i)
		}
		if !Merge(a, a).Equal(a) {
			t.Fatalf("case %d: not idempotent", i)
		}
		// The merged value is at least each side's per-actor share: for
		// states of one run, the merged counter equals the sum of each
		// actor's latest share, so it is never below either side for
		// increment-only runs; here we check the share rule directly.
		for _, x := range ab.Siblings {
			for _, y := range append(append([]Sibling{}, a.Siblings...), b.Siblings...) {
				if y.Dot.Actor == x.Dot.Actor && y.Dot.Counter > x.Dot.Counter {
					t.Fatalf("case %d: merge kept share %s of %s over the later %s", i, x.Dot, x.Dot.Actor, y.Dot)
				}
			}
		}
	}
}

func TestCounterEncodingRoundTrips(t *testing.T) {
	s, err := Set{}.Increment("n1", 5, 10)
	if err != nil {
		t.Fatal(err)
	}
	if s, err = s.Increment("n2", -7, 11); err != nil {
		t.Fatal(err)
	}
	got, err := DecodeSet(s.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(s) {
		t.Fatalf("round trip: %s, want %s", dots(got), dots(s))
	}
	if v, ok, err := got.CounterValue(); v != -2 || !ok || err != nil {
		t.Fatalf("value = %d, %v, %v; want -2", v, ok, err)
	}
	if _, counter := got.LiveKinds(0); !counter {
		t.Fatal("decoded counter sibling lost its kind")
	}
	// A counter sibling whose share does not decode is refused, as is
	// one flagged both tombstone and counter.
	bad := Set{Context: Context{VV: []Entry{{"n1", 1}}}, Siblings: []Sibling{{Dot: Dot{"n1", 1}, Kind: KindCounter, Value: []byte{0x80}}}}
	if _, err := DecodeSet(bad.Encode()); !errors.Is(err, ErrMalformed) {
		t.Fatalf("bad share: %v, want ErrMalformed", err)
	}
	enc := s.Encode()
	i := bytes.IndexByte(enc, flagCounter)
	enc[i] = flagCounter | flagTombstone
	if _, err := DecodeSet(enc); !errors.Is(err, ErrMalformed) {
		t.Fatalf("tombstone counter: %v, want ErrMalformed", err)
	}
}

func TestIncrementRefusesAValueAndOverflow(t *testing.T) {
	v, _ := Set{}.Update("n1", Context{}, Sibling{Value: []byte("x"), LastModified: 1})
	if _, err := v.Increment("n1", 1, 2); !errors.Is(err, ErrWrongType) {
		t.Fatalf("increment of a value: %v, want ErrWrongType", err)
	}
	// A deleted or expired value is no obstacle: the counter replaces it.
	del, _ := v.Update("n1", v.Context, Sibling{Tombstone: true, LastModified: 3})
	c, err := del.Increment("n1", 4, 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Siblings) != 1 || c.Siblings[0].Kind != KindCounter {
		t.Fatalf("after delete: %s, want one counter share", dots(c))
	}
	expired, _ := Set{}.Update("n1", Context{}, Sibling{Value: []byte("x"), LastModified: 1, Expires: 5})
	if _, err := expired.Increment("n1", 1, 6); err != nil {
		t.Fatalf("increment of an expired value: %v", err)
	}

	top, err := Set{}.Increment("n1", math.MaxInt64, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := top.Increment("n2", 1, 2); !errors.Is(err, ErrCounterOverflow) {
		t.Fatalf("past MaxInt64: %v, want ErrCounterOverflow", err)
	}
	bottom, err := Set{}.Increment("n1", math.MinInt64, 1)
	if err != nil {
		t.Fatal(err)
	}
	if v, _, _ := bottom.CounterValue(); v != math.MinInt64 {
		t.Fatalf("MinInt64 decrement: %d", v)
	}
	if _, err := bottom.Increment("n1", -1, 2); !errors.Is(err, ErrCounterOverflow) {
		t.Fatalf("below MinInt64: %v, want ErrCounterOverflow", err)
	}
	// Back from the bottom is fine: only the sum is bounded.
	if up, err := bottom.Increment("n2", 5, 2); err != nil {
		t.Fatal(err)
	} else if v, _, _ := up.CounterValue(); v != math.MinInt64+5 {
		t.Fatalf("value %d", v)
	}
}

// A delete supersedes the shares it saw: a later increment starts from
// zero, and an increment the delete did not see survives it.
func TestCounterDelete(t *testing.T) {
	a, _ := Set{}.Increment("a", 10, 1)
	b := a // replica b has a's share
	del, _ := b.Update("b", b.Context, Sibling{Tombstone: true, LastModified: 2})
	after, err := del.Increment("b", 3, 3)
	if err != nil {
		t.Fatal(err)
	}
	if v, _, _ := Merge(a, after).CounterValue(); v != 3 {
		t.Fatalf("increment after a delete: %d, want 3", v)
	}
	// a increments concurrently with the delete: its new share (11)
	// was not seen by the delete and survives it.
	a2, _ := a.Increment("a", 1, 4)
	if v, _, _ := Merge(a2, after).CounterValue(); v != 14 {
		t.Fatalf("increment concurrent with a delete: %d, want 11 + 3", v)
	}
}
