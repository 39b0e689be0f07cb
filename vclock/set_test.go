package vclock

import (
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"
)

// checkSet fails unless s keeps the Set invariants.
func checkSet(t testing.TB, s Set) {
	t.Helper()
	checkNormal(t, s.Context)
	for i, x := range s.Siblings {
		if i > 0 && !dotLess(s.Siblings[i-1].Dot, x.Dot) {
			t.Fatalf("set %s: siblings not sorted and unique at %d", s.Context, i)
		}
		if x.Dot.Counter == 0 || !s.Context.Covers(x.Dot) {
			t.Fatalf("set %s: sibling %s not covered by the context", s.Context, x.Dot)
		}
	}
}

func cloneSet(s Set) Set {
	c := Set{Context: cloneContext(s.Context), Siblings: slices.Clone(s.Siblings)}
	for i := range c.Siblings {
		c.Siblings[i].Value = slices.Clone(c.Siblings[i].Value)
	}
	return c
}

func dots(s Set) string {
	var b strings.Builder
	for i, x := range s.Siblings {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%q", x.Dot, x.Value)
	}
	return b.String()
}

// cluster simulates replicas of one key that take writes with assorted
// contexts and exchange states, producing the states and client contexts
// that real use produces.
type cluster struct {
	r       *rand.Rand
	actors  []string
	states  []Set
	clients []Context // contexts handed to clients by writes
	seen    []Set     // every state any replica has had
	now     int64
}

func newCluster(r *rand.Rand, n int) *cluster {
	cl := &cluster{r: r, states: make([]Set, n), seen: []Set{{}}}
	for i := range n {
		cl.actors = append(cl.actors, fmt.Sprintf("n%d", i+1))
	}
	return cl
}

func (cl *cluster) randomSibling() Sibling {
	cl.now += int64(1 + cl.r.Intn(1000))
	s := Sibling{
		ContentType:  []string{"", "text/plain", "application/json"}[cl.r.Intn(3)],
		LastModified: cl.now,
	}
	if cl.r.Intn(4) == 0 {
		s.Expires = cl.now + int64(cl.r.Intn(5000))
	}
	if cl.r.Intn(8) == 0 {
		s.Tombstone = true
		return s
	}
	s.Value = make([]byte, cl.r.Intn(24))
	cl.r.Read(s.Value)
	return s
}

// randomContext is a context a client might send: a blind write, one a
// write returned, or a read of some replica.
func (cl *cluster) randomContext(coordinator int) Context {
	switch cl.r.Intn(4) {
	case 0:
		// The store turns a write without context into one with the
		// coordinator's own context.
		return cl.states[coordinator].Context
	case 1:
		if len(cl.clients) > 0 {
			return cl.clients[cl.r.Intn(len(cl.clients))]
		}
		return Context{}
	case 2:
		return cl.seen[cl.r.Intn(len(cl.seen))].Context
	}
	return cl.states[cl.r.Intn(len(cl.states))].Context
}

func (cl *cluster) step() {
	i := cl.r.Intn(len(cl.states))
	if cl.r.Intn(3) == 0 {
		j := cl.r.Intn(len(cl.states))
		cl.states[i] = Merge(cl.states[i], cl.states[j])
	} else {
		var ctx Context
		cl.states[i], ctx = cl.states[i].Update(cl.actors[i], cl.randomContext(i), cl.randomSibling())
		cl.clients = append(cl.clients, ctx)
	}
	cl.seen = append(cl.seen, cl.states[i])
}

// join is the textbook join of dotted causal containers, written
// independently of Merge with maps: siblings both hold, plus those each
// holds that the other has not seen superseded.
func join(a, b Set) Set {
	inB := map[Dot]bool{}
	for _, y := range b.Siblings {
		inB[y.Dot] = true
	}
	inA := map[Dot]bool{}
	var sibs []Sibling
	for _, x := range a.Siblings {
		inA[x.Dot] = true
		if inB[x.Dot] || !toModel(b.Context)[x.Dot] {
			sibs = append(sibs, x)
		}
	}
	for _, y := range b.Siblings {
		if !inA[y.Dot] && !toModel(a.Context)[y.Dot] {
			sibs = append(sibs, y)
		}
	}
	slices.SortFunc(sibs, func(x, y Sibling) int {
		if dotLess(x.Dot, y.Dot) {
			return -1
		}
		return 1
	})
	return Set{Context: fromModel(unionModel(toModel(a.Context), toModel(b.Context))), Siblings: sibs}
}

func TestSetMergeIsASemilattice(t *testing.T) {
	r := newRand(t)
	cl := newCluster(r, 3)
	for range 300 {
		cl.step()
	}
	for i := range 2000 {
		// Keep the universe growing so cases cover early and late states.
		cl.step()
		pick := func() Set { return cl.seen[r.Intn(len(cl.seen))] }
		a, b, c := pick(), pick(), pick()
		a0, b0 := cloneSet(a), cloneSet(b)
		ab := Merge(a, b)
		checkSet(t, ab)
		if want := join(a, b); !ab.Equal(want) {
			t.Fatalf("case %d: Merge = %s %s, want %s %s", i, ab.Context, dots(ab), want.Context, dots(want))
		}
		if ba := Merge(b, a); !ab.Equal(ba) {
			t.Fatalf("case %d: Merge not commutative: %s vs %s", i, dots(ab), dots(ba))
		}
		if left, right := Merge(ab, c), Merge(a, Merge(b, c)); !left.Equal(right) {
			t.Fatalf("case %d: Merge not associative: (a+b)+c = %s, a+(b+c) = %s", i, dots(left), dots(right))
		}
		if aa := Merge(a, a); !aa.Equal(a) {
			t.Fatalf("case %d: Merge not idempotent: %s, want %s", i, dots(aa), dots(a))
		}
		if !a.Equal(a0) || !b.Equal(b0) {
			t.Fatalf("case %d: Merge modified its arguments", i)
		}
	}
}

// A write supersedes exactly the siblings its context covers, and the
// context it returns covers what the client had seen plus the new write,
// nothing more.
func TestUpdateSupersedesExactlyWhatTheContextCovers(t *testing.T) {
	r := newRand(t)
	cl := newCluster(r, 3)
	for range 300 {
		cl.step()
	}
	for i := range 2000 {
		cl.step()
		s := cl.seen[r.Intn(len(cl.seen))]
		coord := r.Intn(len(cl.actors))
		actor := cl.actors[coord]
		ctx := cl.randomContext(coord)
		if r.Intn(4) == 0 {
			// Also contexts no replica produced, e.g. from a lost replica.
			ctx = fromModel(randomModel(r, cl.actors, 6))
		}
		sib := cl.randomSibling()
		s0, ctx0 := cloneSet(s), cloneContext(ctx)

		got, ret := s.Update(actor, ctx, sib)
		checkSet(t, got)
		dot := Dot{actor, max(s.Context.Max(actor), ctx.Max(actor)) + 1}
		if s.Context.Covers(dot) || ctx.Covers(dot) {
			t.Fatalf("case %d: minted dot %s is not fresh", i, dot)
		}
		var want []Sibling
		for _, x := range s.Siblings {
			if !toModel(ctx)[x.Dot] {
				want = append(want, x)
			}
		}
		sib.Dot = dot
		want = append(want, sib)
		slices.SortFunc(want, func(x, y Sibling) int {
			if dotLess(x.Dot, y.Dot) {
				return -1
			}
			return 1
		})
		wantSet := Set{
			Context:  fromModel(unionModel(toModel(s.Context), toModel(ctx), model{dot: true})),
			Siblings: want,
		}
		if !got.Equal(wantSet) {
			t.Fatalf("case %d: %s.Update(%s, %s) = %s %s, want %s %s",
				i, s.Context, actor, ctx, got.Context, dots(got), wantSet.Context, dots(wantSet))
		}
		if wantCtx := fromModel(unionModel(toModel(ctx), model{dot: true})); !ret.Equal(wantCtx) {
			t.Fatalf("case %d: returned context %s, want %s (the client's %s plus %s)", i, ret, wantCtx, ctx, dot)
		}
		if !s.Equal(s0) || !ctx.Equal(ctx0) {
			t.Fatalf("case %d: Update modified its arguments", i)
		}
	}
}

// SPEC section 5: two clients that keep writing one key, each with the
// context its own previous PUT returned, leave exactly two siblings, their
// two latest values, even when different nodes coordinate their writes and
// replica states meet in any order.
func TestTwoClientsWithOwnContextsLeaveExactlyTwoSiblings(t *testing.T) {
	for _, tc := range []struct {
		name        string
		sameNode    bool
		mergeRounds int
	}{
		{"same coordinator", true, 0},
		{"same coordinator, replicated", true, 3},
		{"different coordinators, random merges", false, 3},
		{"different coordinators, no sync between writes", false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRand(t)
			cl := newCluster(r, 3)
			// Both clients start from the same read of an existing value.
			cl.states[0], _ = cl.states[0].Update("n1", Context{}, Sibling{Value: []byte("v0")})
			for i := range cl.states {
				cl.states[i] = Merge(cl.states[i], cl.states[0])
			}
			read := cl.states[0].Context
			ctx := map[string]Context{"A": read, "B": read}
			latest := map[string]string{}
			for round := range 100 {
				order := []string{"A", "B"}
				r.Shuffle(2, func(i, j int) { order[i], order[j] = order[j], order[i] })
				for _, client := range order {
					coord := 0
					if !tc.sameNode {
						coord = r.Intn(len(cl.states))
					}
					v := fmt.Sprintf("%s-%d", client, round)
					cl.states[coord], ctx[client] = cl.states[coord].Update(cl.actors[coord], ctx[client], Sibling{Value: []byte(v)})
					latest[client] = v
				}
				for range tc.mergeRounds {
					i, j := r.Intn(len(cl.states)), r.Intn(len(cl.states))
					cl.states[i] = Merge(cl.states[i], cl.states[j])
				}
				for i, s := range cl.states {
					checkSet(t, s)
					owners := map[byte]bool{}
					for _, x := range s.Siblings {
						owners[x.Value[0]] = true
					}
					if len(s.Siblings) > 2 || len(owners) != len(s.Siblings) {
						t.Fatalf("round %d: replica %d holds %s, want at most one value per client", round, i, dots(s))
					}
				}
				perm := r.Perm(len(cl.states))
				var converged Set
				for _, i := range perm {
					converged = Merge(converged, cl.states[i])
				}
				got := []string{}
				for _, x := range converged.Siblings {
					got = append(got, string(x.Value))
				}
				slices.Sort(got)
				want := []string{latest["A"], latest["B"]}
				if !slices.Equal(got, want) {
					t.Fatalf("round %d: converged siblings %v, want exactly %v", round, got, want)
				}
			}
		})
	}
}

// A GET's context covers every sibling it returned, so a PUT with it
// resolves them all into one value, wherever it is coordinated.
func TestReadContextResolvesAllSiblings(t *testing.T) {
	r := newRand(t)
	cl := newCluster(r, 3)
	for round := range 200 {
		cl.step()
		var read Set
		for _, s := range cl.states {
			read = Merge(read, s)
		}
		coord := r.Intn(len(cl.states))
		written, _ := cl.states[coord].Update(cl.actors[coord], read.Context, Sibling{Value: []byte("resolved")})
		final := written
		for i, s := range cl.states {
			if i != coord {
				final = Merge(s, final)
			}
		}
		if len(final.Siblings) != 1 || string(final.Siblings[0].Value) != "resolved" {
			t.Fatalf("round %d: after a write with the read context %s the key holds %s, want only the new value",
				round, read.Context, dots(final))
		}
	}
}

func TestDeleteIsNotResurrectedByAStaleReplica(t *testing.T) {
	var stale Set
	stale, _ = stale.Update("n1", Context{}, Sibling{Value: []byte("v1")})
	deleted, _ := stale.Update("n2", stale.Context, Sibling{Tombstone: true, LastModified: 5})
	for _, m := range []Set{Merge(stale, deleted), Merge(deleted, stale)} {
		if len(m.Siblings) != 1 || !m.Siblings[0].Tombstone {
			t.Fatalf("merged state %s, want only the tombstone", dots(m))
		}
		if live := m.Live(10); len(live) != 0 {
			t.Fatalf("Live = %v, want nothing after a delete", live)
		}
	}
}

func TestLiveHidesTombstonesAndExpiredValues(t *testing.T) {
	s := Set{Siblings: []Sibling{
		{Dot: Dot{"a", 1}, Value: []byte("forever")},
		{Dot: Dot{"a", 2}, Tombstone: true},
		{Dot: Dot{"a", 3}, Value: []byte("expires at 100"), Expires: 100},
		{Dot: Dot{"a", 4}, Value: []byte("expires at 50"), Expires: 50},
	}}
	s.Context = mk("a:4", "")
	s0 := cloneSet(s)
	for _, tc := range []struct {
		now  int64
		want []string
	}{
		{49, []string{"forever", "expires at 100", "expires at 50"}},
		{50, []string{"forever", "expires at 100"}},
		{99, []string{"forever", "expires at 100"}},
		{100, []string{"forever"}},
	} {
		var got []string
		for _, x := range s.Live(tc.now) {
			got = append(got, string(x.Value))
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("Live(%d) = %q, want %q", tc.now, got, tc.want)
		}
	}
	if !s.Equal(s0) {
		t.Fatal("Live modified the set")
	}
	if live := (Set{Siblings: s.Siblings[:1]}).Live(0); len(live) != 1 {
		t.Fatalf("Live of one live value = %v", live)
	}
}

func TestMergePicksTheLaterWriteForOneDot(t *testing.T) {
	ctx := mk("a:1", "")
	older := Set{Context: ctx, Siblings: []Sibling{{Dot: Dot{"a", 1}, Value: []byte("old"), LastModified: 1}}}
	newer := Set{Context: ctx, Siblings: []Sibling{{Dot: Dot{"a", 1}, Value: []byte("new"), LastModified: 2}}}
	for _, m := range []Set{Merge(older, newer), Merge(newer, older)} {
		if len(m.Siblings) != 1 || string(m.Siblings[0].Value) != "new" {
			t.Fatalf("merge of two versions of one dot = %s, want the later", dots(m))
		}
	}
}

// A forged context at the top of the counter range must not make the
// coordinator mint the zero dot, which every context covers.
func TestUpdateSaturatesInsteadOfWrapping(t *testing.T) {
	top := ^uint64(0)
	forged := Context{VV: []Entry{{"n1", top}}}
	s, ret := Set{}.Update("n1", forged, Sibling{Value: []byte("a"), LastModified: 1})
	checkSet(t, s)
	if len(s.Siblings) != 1 || s.Siblings[0].Dot != (Dot{"n1", top}) || !ret.Covers(Dot{"n1", top}) {
		t.Fatalf("Update with a forged context = %s %s", s.Context, dots(s))
	}
	// A stale writer reuses the top dot; the set must stay decodable.
	s2, _ := s.Update("n1", Context{}, Sibling{Value: []byte("b"), LastModified: 2})
	checkSet(t, s2)
	if len(s2.Siblings) != 1 || string(s2.Siblings[0].Value) != "b" {
		t.Fatalf("second write at the top counter = %s, want only b", dots(s2))
	}
	if _, err := DecodeSet(s2.Encode()); err != nil {
		t.Fatalf("saturated set does not decode: %v", err)
	}
}

func TestSetPruneKeepsHeldSiblingsCovered(t *testing.T) {
	var s Set
	s, _ = s.Update("gone", Context{}, Sibling{Value: []byte("x")})
	s, _ = s.Update("gone", s.Context, Sibling{Value: []byte("y")})
	s, _ = s.Update("n1", Context{}, Sibling{Value: []byte("z")})
	s0 := cloneSet(s)
	p := s.Prune(func(a string) bool { return a == "gone" })
	checkSet(t, p)
	if want := "[n1:1 | gone:2]"; p.Context.String() != want {
		t.Fatalf("pruned context %s, want %s", p.Context, want)
	}
	if !slices.EqualFunc(p.Siblings, s.Siblings, Sibling.Equal) {
		t.Fatalf("prune dropped siblings: %s", dots(p))
	}
	if !s.Equal(s0) {
		t.Fatal("Prune modified the set")
	}
}

// forgedContext is what an attacker or a broken client may send: counters
// no replica minted, up to the top of the uint64 range, for the key's real
// actors and for made-up ones.
func forgedContext(r *rand.Rand, actors []string) Context {
	tops := []uint64{^uint64(0), ^uint64(0) - 1, 1 << 63, 1 << 32, uint64(2 + r.Intn(1000))}
	names := append(slices.Clone(actors), "ghost")
	slices.Sort(names)
	var c Context
	for _, a := range names {
		if r.Intn(3) == 0 {
			continue
		}
		top := tops[r.Intn(len(tops))]
		if r.Intn(2) == 0 {
			c.VV = append(c.VV, Entry{Actor: a, Counter: top})
		} else {
			c.Dots = append(c.Dots, Dot{a, top})
		}
	}
	return c
}

// A client context is clamped to what the replicas hold before it is used
// (the store's rule), so no context, however forged, makes a write
// supersede writes that happen later: every acknowledged write is in the
// converged state until a write that saw it supersedes it. Without the
// clamp, the same run loses writes, which shows the attack is real.
func TestForgedContextsNeverSwallowLaterWrites(t *testing.T) {
	for _, clamp := range []bool{true, false} {
		r := newRand(t)
		cl := newCluster(r, 3)
		lost := 0
		for i := range 3000 {
			coord := r.Intn(len(cl.states))
			ctx := cl.randomContext(coord)
			if r.Intn(3) == 0 {
				ctx = forgedContext(r, cl.actors)
			}
			if clamp {
				var held Context
				for _, s := range cl.states {
					held = held.Merge(s.Context)
				}
				ctx = ctx.Intersect(held)
				for _, e := range ctx.VV {
					if e.Counter > uint64(i+1) {
						t.Fatalf("case %d: clamped context %s has a counter above the %d writes made", i, ctx, i+1)
					}
				}
			}
			actor := cl.actors[coord]
			n := max(cl.states[coord].Context.Max(actor), ctx.Max(actor))
			if n < ^uint64(0) {
				n++
			}
			dot := Dot{actor, n}
			next, _ := cl.states[coord].Update(actor, ctx, cl.randomSibling())
			cl.states[coord] = next
			// Replicate to a random other replica, then converge.
			j := r.Intn(len(cl.states))
			cl.states[j] = Merge(cl.states[j], next)
			var converged Set
			for _, s := range cl.states {
				converged = Merge(converged, s)
			}
			found := false
			for _, x := range converged.Siblings {
				found = found || x.Dot == dot
			}
			if !found {
				if clamp {
					t.Fatalf("case %d: write %s coordinated by %s with context %s vanished from the converged state %s %s",
						i, dot, cl.actors[coord], ctx, converged.Context, dots(converged))
				}
				lost++
			}
		}
		if !clamp && lost == 0 {
			t.Fatalf("without the clamp no write was lost: the test no longer exercises the attack")
		}
		if !clamp {
			t.Logf("without the clamp %d of 3000 writes vanished", lost)
		}
	}
}
