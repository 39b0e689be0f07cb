package vclock

import (
	"flag"
	"math/rand"
	"slices"
	"strings"
	"testing"
	"time"
)

var seedFlag = flag.Int64("vclock.seed", 0, "seed of the random property tests (0: time-based)")

// newRand returns a seeded source and logs the seed, so a failing random
// case can be replayed with -vclock.seed.
func newRand(t testing.TB) *rand.Rand {
	seed := *seedFlag
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	t.Logf("seed %d (replay with -vclock.seed=%d)", seed, seed)
	return rand.New(rand.NewSource(seed))
}

// model is the meaning of a context: the set of dots it covers.
type model map[Dot]bool

// fromModel builds the canonical context of a set of dots independently of
// the package's algebra, by walking each actor's counters.
func fromModel(m model) Context {
	maxOf := map[string]uint64{}
	for d := range m {
		if d.Counter > maxOf[d.Actor] {
			maxOf[d.Actor] = d.Counter
		}
	}
	actors := make([]string, 0, len(maxOf))
	for a := range maxOf {
		actors = append(actors, a)
	}
	slices.Sort(actors)
	var c Context
	for _, a := range actors {
		base := uint64(0)
		for m[Dot{a, base + 1}] {
			base++
		}
		if base > 0 {
			c.VV = append(c.VV, Entry{a, base})
		}
		for n := base + 2; n <= maxOf[a]; n++ {
			if m[Dot{a, n}] {
				c.Dots = append(c.Dots, Dot{a, n})
			}
		}
	}
	return c
}

func toModel(c Context) model {
	m := model{}
	for _, e := range c.VV {
		for n := uint64(1); n <= e.Counter; n++ {
			m[Dot{e.Actor, n}] = true
		}
	}
	for _, d := range c.Dots {
		m[d] = true
	}
	return m
}

// mk builds a context from a compact description, normalising it through
// the model: mk("a:2 b:1", "a:4") is [a:2 b:1 | a:4].
func mk(vv, dots string) Context {
	m := model{}
	for _, f := range strings.Fields(vv) {
		d := parseDot(f)
		for n := uint64(1); n <= d.Counter; n++ {
			m[Dot{d.Actor, n}] = true
		}
	}
	for _, f := range strings.Fields(dots) {
		m[parseDot(f)] = true
	}
	return fromModel(m)
}

func parseDot(s string) Dot {
	a, n, _ := strings.Cut(s, ":")
	var c uint64
	for _, ch := range n {
		c = c*10 + uint64(ch-'0')
	}
	return Dot{a, c}
}

// checkNormal fails unless c is in the canonical form the package promises.
func checkNormal(t testing.TB, c Context) {
	t.Helper()
	for i, e := range c.VV {
		if e.Counter == 0 || i > 0 && c.VV[i-1].Actor >= e.Actor {
			t.Fatalf("context %s: vector not sorted, unique and non-zero at %d", c, i)
		}
	}
	for i, d := range c.Dots {
		if i > 0 && !dotLess(c.Dots[i-1], d) {
			t.Fatalf("context %s: dots not sorted and unique at %d", c, i)
		}
		if d.Counter <= c.vv(d.Actor)+1 {
			t.Fatalf("context %s: dot %s covered by or contiguous with the vector", c, d)
		}
	}
}

func cloneContext(c Context) Context {
	return Context{VV: slices.Clone(c.VV), Dots: slices.Clone(c.Dots)}
}

func TestCovers(t *testing.T) {
	c := mk("a:2", "a:4 b:3")
	for _, tc := range []struct {
		d    Dot
		want bool
	}{
		{Dot{"a", 0}, true},
		{Dot{"a", 1}, true},
		{Dot{"a", 2}, true},
		{Dot{"a", 3}, false},
		{Dot{"a", 4}, true},
		{Dot{"a", 5}, false},
		{Dot{"b", 1}, false},
		{Dot{"b", 3}, true},
		{Dot{"c", 1}, false},
		{Dot{"", 1}, false},
	} {
		if got := c.Covers(tc.d); got != tc.want {
			t.Errorf("%s.Covers(%s) = %v, want %v", c, tc.d, got, tc.want)
		}
	}
}

func TestMax(t *testing.T) {
	c := mk("a:2 c:7", "a:4 a:9 b:3")
	for actor, want := range map[string]uint64{"a": 9, "b": 3, "c": 7, "d": 0, "": 0} {
		if got := c.Max(actor); got != want {
			t.Errorf("%s.Max(%q) = %d, want %d", c, actor, got, want)
		}
	}
}

func TestAddNormalises(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Context
		d    Dot
		want string
	}{
		{"first write of an actor", Context{}, Dot{"a", 1}, "[a:1]"},
		{"gap becomes a dot", Context{}, Dot{"a", 3}, "[| a:3]"},
		{"contiguous extends the vector", mk("a:2", ""), Dot{"a", 3}, "[a:3]"},
		{"covered is a no-op", mk("a:2", ""), Dot{"a", 1}, "[a:2]"},
		{"zero dot is a no-op", mk("a:2", ""), Dot{"a", 0}, "[a:2]"},
		{"known dot is a no-op", mk("a:2", "a:5"), Dot{"a", 5}, "[a:2 | a:5]"},
		{"filling a gap absorbs a run", mk("a:2", "a:4 a:5 a:7 b:9"), Dot{"a", 3}, "[a:5 | a:7 b:9]"},
		{"new actor between others", mk("a:1 c:1", ""), Dot{"b", 1}, "[a:1 b:1 c:1]"},
		{"new actor absorbs its dots", mk("", "b:2 b:3 b:5"), Dot{"b", 1}, "[b:3 | b:5]"},
		{"dot inserted in order", mk("a:1", "a:3 c:4"), Dot{"b", 7}, "[a:1 | a:3 b:7 c:4]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := cloneContext(tc.c)
			got := tc.c.Add(tc.d)
			if got.String() != tc.want {
				t.Fatalf("%s.Add(%s) = %s, want %s", tc.c, tc.d, got, tc.want)
			}
			checkNormal(t, got)
			if !tc.c.Equal(before) {
				t.Fatalf("Add modified its receiver: %s, was %s", tc.c, before)
			}
		})
	}
}

func TestMergeNormalises(t *testing.T) {
	for _, tc := range []struct {
		a, b Context
		want string
	}{
		{Context{}, Context{}, "[]"},
		{mk("a:1", ""), mk("", "a:2 a:4"), "[a:2 | a:4]"},
		{mk("a:3", ""), mk("", "a:2 a:5"), "[a:3 | a:5]"},
		{mk("", "b:2"), mk("b:1", ""), "[b:2]"},
		{mk("a:1", "a:3 c:5"), mk("b:2", "a:4 c:7"), "[a:1 b:2 | a:3 a:4 c:5 c:7]"},
		{mk("a:1", "a:3"), mk("a:2", "a:4"), "[a:4]"},
		{mk("x:9", ""), mk("x:2", "x:11"), "[x:9 | x:11]"},
	} {
		got := tc.a.Merge(tc.b)
		if got.String() != tc.want {
			t.Errorf("%s.Merge(%s) = %s, want %s", tc.a, tc.b, got, tc.want)
		}
		checkNormal(t, got)
	}
}

func TestCompare(t *testing.T) {
	for _, tc := range []struct {
		a, b Context
		want Ordering
	}{
		{Context{}, Context{}, Equal},
		{Context{}, mk("a:1", ""), Before},
		{mk("a:1", ""), Context{}, After},
		{mk("a:2", ""), mk("a:2", ""), Equal},
		{mk("a:1", ""), mk("a:2", ""), Before},
		{mk("a:1", ""), mk("b:1", ""), Concurrent},
		{mk("a:1", "a:3"), mk("a:3", ""), Before},
		{mk("a:1", "a:3"), mk("a:2", ""), Concurrent},
		{mk("", "a:3"), mk("a:1", ""), Concurrent},
		{mk("a:2 b:1", "c:4"), mk("a:2", "c:4"), After},
		{mk("a:5", ""), mk("a:1", "a:3 a:5"), After},
	} {
		if got := tc.a.Compare(tc.b); got != tc.want {
			t.Errorf("%s.Compare(%s) = %s, want %s", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestOrderingString(t *testing.T) {
	for o, want := range map[Ordering]string{Before: "before", Equal: "equal", After: "after", Concurrent: "concurrent", 0: "Ordering(0)"} {
		if got := o.String(); got != want {
			t.Errorf("Ordering(%d).String() = %q, want %q", int(o), got, want)
		}
	}
}

func TestContextString(t *testing.T) {
	for _, tc := range []struct {
		c    Context
		want string
	}{
		{Context{}, "[]"},
		{mk("n1:3 n2:1", ""), "[n1:3 n2:1]"},
		{mk("", "n1:3"), "[| n1:3]"},
		{Context{VV: []Entry{{"a b", 1}}}, `["a b":1]`},
	} {
		if got := tc.c.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}

func TestPruneDropsOnlyRetiredActors(t *testing.T) {
	c := mk("a:2 b:3 c:1", "a:5 b:7")
	before := cloneContext(c)
	got := c.Prune(func(a string) bool { return a == "b" })
	if want := "[a:2 c:1 | a:5]"; got.String() != want {
		t.Fatalf("Prune(b) = %s, want %s", got, want)
	}
	if !c.Equal(before) {
		t.Fatalf("Prune modified its receiver: %s, was %s", c, before)
	}
	if got := c.Prune(func(string) bool { return false }); !got.Equal(c) {
		t.Fatalf("Prune(nothing) = %s, want %s", got, c)
	}
	if got := c.Prune(func(string) bool { return true }); !got.IsZero() {
		t.Fatalf("Prune(everything) = %s, want []", got)
	}
}

// A result handed out must not let an append write into its argument's
// array: callers share contexts freely.
func TestResultsDoNotAliasWritably(t *testing.T) {
	c := Context{VV: make([]Entry, 1, 8), Dots: make([]Dot, 1, 8)}
	c.VV[0] = Entry{"a", 1}
	c.Dots[0] = Dot{"b", 5}
	for name, got := range map[string]Context{
		"Add covered": c.Add(Dot{"a", 1}),
		"Merge":       c.Merge(Context{}),
		"Prune":       c.Prune(func(string) bool { return false }),
	} {
		_ = append(got.VV, Entry{"zz", 1})
		_ = append(got.Dots, Dot{"zz", 9})
		if c.VV[:2][1] != (Entry{}) || c.Dots[:2][1] != (Dot{}) {
			t.Fatalf("%s: append to the result wrote into the argument's array", name)
		}
	}
}

func randomModel(r *rand.Rand, actors []string, maxCounter int) model {
	m := model{}
	for range r.Intn(12) {
		a := actors[r.Intn(len(actors))]
		// Runs from 1 make vector entries; scattered counters make dots.
		if r.Intn(2) == 0 {
			for n := 1; n <= 1+r.Intn(maxCounter); n++ {
				m[Dot{a, uint64(n)}] = true
			}
		} else {
			m[Dot{a, uint64(1 + r.Intn(maxCounter))}] = true
		}
	}
	return m
}

func unionModel(ms ...model) model {
	u := model{}
	for _, m := range ms {
		for d := range m {
			u[d] = true
		}
	}
	return u
}

func intersectModel(a, b model) model {
	m := model{}
	for d := range a {
		if b[d] {
			m[d] = true
		}
	}
	return m
}

func subset(a, b model) bool {
	for d := range a {
		if !b[d] {
			return false
		}
	}
	return true
}

// The algebra must agree with plain set semantics on random contexts:
// Merge is union (so commutative, associative, idempotent), Add inserts,
// Covers is membership, Compare is set inclusion.
func TestContextAlgebraMatchesSetModel(t *testing.T) {
	r := newRand(t)
	actors := []string{"a", "b", "n1", "n2"}
	for i := range 2000 {
		ma, mb, mc := randomModel(r, actors, 8), randomModel(r, actors, 8), randomModel(r, actors, 8)
		a, b, c := fromModel(ma), fromModel(mb), fromModel(mc)
		a0, b0 := cloneContext(a), cloneContext(b)
		checkNormal(t, a)

		ab := a.Merge(b)
		checkNormal(t, ab)
		if want := fromModel(unionModel(ma, mb)); !ab.Equal(want) {
			t.Fatalf("case %d: %s.Merge(%s) = %s, want %s", i, a, b, ab, want)
		}
		if ba := b.Merge(a); !ab.Equal(ba) {
			t.Fatalf("case %d: Merge not commutative: %s vs %s", i, ab, ba)
		}
		if left, right := ab.Merge(c), a.Merge(b.Merge(c)); !left.Equal(right) {
			t.Fatalf("case %d: Merge not associative: (a+b)+c = %s, a+(b+c) = %s", i, left, right)
		}
		if aa := a.Merge(a); !aa.Equal(a) {
			t.Fatalf("case %d: Merge not idempotent: %s.Merge(itself) = %s", i, a, aa)
		}
		if got, want := ab.Merge(c), fromModel(unionModel(ma, mb, mc)); !got.Equal(want) {
			t.Fatalf("case %d: three-way merge = %s, want %s", i, got, want)
		}

		var wantBeyond []string
		for d := range ma {
			if !mb[d] && !slices.Contains(wantBeyond, d.Actor) {
				wantBeyond = append(wantBeyond, d.Actor)
			}
		}
		slices.Sort(wantBeyond)
		if got := a.ActorsBeyond(b); !slices.Equal(got, wantBeyond) {
			t.Fatalf("case %d: %s.ActorsBeyond(%s) = %v, want %v", i, a, b, got, wantBeyond)
		}

		inter := a.Intersect(b)
		checkNormal(t, inter)
		if want := fromModel(intersectModel(ma, mb)); !inter.Equal(want) {
			t.Fatalf("case %d: %s.Intersect(%s) = %s, want %s", i, a, b, inter, want)
		}
		if ba := b.Intersect(a); !inter.Equal(ba) {
			t.Fatalf("case %d: Intersect not commutative: %s vs %s", i, inter, ba)
		}

		d := Dot{actors[r.Intn(len(actors))], uint64(1 + r.Intn(10))}
		added := a.Add(d)
		checkNormal(t, added)
		if want := fromModel(unionModel(ma, model{d: true})); !added.Equal(want) {
			t.Fatalf("case %d: %s.Add(%s) = %s, want %s", i, a, d, added, want)
		}
		if got, want := a.Covers(d), ma[d]; got != want {
			t.Fatalf("case %d: %s.Covers(%s) = %v, want %v", i, a, d, got, want)
		}
		if !added.Covers(d) {
			t.Fatalf("case %d: %s.Add(%s) does not cover it", i, a, d)
		}
		var wantMax uint64
		for x := range ma {
			if x.Actor == d.Actor {
				wantMax = max(wantMax, x.Counter)
			}
		}
		if got := a.Max(d.Actor); got != wantMax {
			t.Fatalf("case %d: %s.Max(%s) = %d, want %d", i, a, d.Actor, got, wantMax)
		}

		le, ge := subset(ma, mb), subset(mb, ma)
		want := map[[2]bool]Ordering{{true, true}: Equal, {true, false}: Before, {false, true}: After, {false, false}: Concurrent}[[2]bool{le, ge}]
		if got := a.Compare(b); got != want {
			t.Fatalf("case %d: %s.Compare(%s) = %s, want %s", i, a, b, got, want)
		}
		if got, want := a.Equal(b), le && ge; got != want {
			t.Fatalf("case %d: %s.Equal(%s) = %v, want %v", i, a, b, got, want)
		}

		if !a.Equal(a0) || !b.Equal(b0) {
			t.Fatalf("case %d: an operation modified its arguments", i)
		}
	}
}
