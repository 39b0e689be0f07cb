package vclock

import (
	"slices"
	"strconv"
	"strings"
)

// Dot names one write: the Counter-th write coordinated by Actor.
type Dot struct {
	Actor   string
	Counter uint64
}

// Entry is a version-vector entry: it covers the dots (Actor, 1..Counter).
type Entry struct {
	Actor   string
	Counter uint64
}

// Context is a causal context: the set of dots covered by the version vector
// VV plus the exception dots Dots that are not contiguous with it.
//
// Every Context produced by this package is normalised, and every function
// here expects normalised input:
//   - VV is sorted by actor, one entry per actor, no zero counters;
//   - Dots is sorted by (actor, counter) without duplicates;
//   - no dot is covered by VV and none is contiguous with it (a dot
//     (a, VV[a]+1) is absorbed into the vector).
//
// Because the form is canonical, two contexts cover the same dots exactly
// when their fields are equal, which keeps Equal and the encoding simple.
// A Context is a value: no function mutates its slices, and results may
// share backing arrays with the arguments (with capacity clipped, so an
// append by the caller cannot write into someone else's array).
type Context struct {
	VV   []Entry
	Dots []Dot
}

// Ordering is the causal relation between two contexts.
type Ordering int

// The relations Compare reports. The zero Ordering is none of them, so a
// forgotten assignment is not mistaken for a real answer.
const (
	Before     Ordering = iota + 1 // the receiver covers strictly less
	Equal                          // both cover the same dots
	After                          // the receiver covers strictly more
	Concurrent                     // each covers a dot the other does not
)

func (o Ordering) String() string {
	switch o {
	case Before:
		return "before"
	case Equal:
		return "equal"
	case After:
		return "after"
	case Concurrent:
		return "concurrent"
	}
	return "Ordering(" + strconv.Itoa(int(o)) + ")"
}

func dotLess(a, b Dot) bool {
	if a.Actor != b.Actor {
		return a.Actor < b.Actor
	}
	return a.Counter < b.Counter
}

// vvSearch returns the index of actor's entry in vv, or the index where it
// would be inserted and false.
func vvSearch(vv []Entry, actor string) (int, bool) {
	lo, hi := 0, len(vv)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if vv[m].Actor < actor {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(vv) && vv[lo].Actor == actor
}

// dotSearch returns the index of d in dots, or its insertion point and false.
func dotSearch(dots []Dot, d Dot) (int, bool) {
	lo, hi := 0, len(dots)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if dotLess(dots[m], d) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(dots) && dots[lo] == d
}

func (c Context) vv(actor string) uint64 {
	if i, ok := vvSearch(c.VV, actor); ok {
		return c.VV[i].Counter
	}
	return 0
}

// clip returns c with slice capacities clipped to their lengths, so that
// handing c out cannot let an append overwrite a shared array.
func (c Context) clip() Context {
	return Context{VV: c.VV[:len(c.VV):len(c.VV)], Dots: c.Dots[:len(c.Dots):len(c.Dots)]}
}

// Covers reports whether the write d is in the context. The zero counter
// names no write and is trivially covered.
func (c Context) Covers(d Dot) bool {
	if d.Counter <= c.vv(d.Actor) {
		return true
	}
	_, ok := dotSearch(c.Dots, d)
	return ok
}

// Max returns the highest counter of actor in the context, 0 if none. A
// coordinator mints its next dot above it, so it must see exception dots too.
func (c Context) Max(actor string) uint64 {
	// Exception dots of an actor always lie above its vector entry, and the
	// last one is the highest.
	i, _ := dotSearch(c.Dots, Dot{Actor: actor, Counter: ^uint64(0)})
	if i > 0 && c.Dots[i-1].Actor == actor {
		return c.Dots[i-1].Counter
	}
	return c.vv(actor)
}

// Add returns the context that also covers d.
func (c Context) Add(d Dot) Context {
	vi, found := vvSearch(c.VV, d.Actor)
	var base uint64
	if found {
		base = c.VV[vi].Counter
	}
	if d.Counter <= base {
		return c.clip()
	}
	if d.Counter > base+1 {
		di, ok := dotSearch(c.Dots, d)
		if ok {
			return c.clip()
		}
		dots := make([]Dot, 0, len(c.Dots)+1)
		dots = append(dots, c.Dots[:di]...)
		dots = append(dots, d)
		dots = append(dots, c.Dots[di:]...)
		return Context{VV: c.VV[:len(c.VV):len(c.VV)], Dots: dots}
	}
	// d extends the vector; exception dots that become contiguous are
	// absorbed with it.
	base = d.Counter
	first, _ := dotSearch(c.Dots, Dot{Actor: d.Actor})
	j := first
	for j < len(c.Dots) && c.Dots[j].Actor == d.Actor && c.Dots[j].Counter == base+1 {
		base++
		j++
	}
	dots := c.Dots[:len(c.Dots):len(c.Dots)]
	if j > first {
		dots = make([]Dot, 0, len(c.Dots)-(j-first))
		dots = append(dots, c.Dots[:first]...)
		dots = append(dots, c.Dots[j:]...)
	}
	var vv []Entry
	if found {
		vv = make([]Entry, len(c.VV))
		copy(vv, c.VV)
		vv[vi].Counter = base
	} else {
		vv = make([]Entry, 0, len(c.VV)+1)
		vv = append(vv, c.VV[:vi]...)
		vv = append(vv, Entry{Actor: d.Actor, Counter: base})
		vv = append(vv, c.VV[vi:]...)
	}
	return Context{VV: vv, Dots: dots}
}

// Merge returns the least upper bound of c and o: the context covering
// every dot either covers.
func (c Context) Merge(o Context) Context {
	// Replicas usually merge a context into one that already holds it (a
	// client sends back what it read), so that case allocates nothing.
	if o.lessEq(c) {
		return c.clip()
	}
	if c.lessEq(o) {
		return o.clip()
	}
	return union(c, o)
}

// union builds the normalised union of c and o in one pass over both,
// actor by actor.
func union(c, o Context) Context {
	// Every actor of the result heads one of the four lists at some point.
	vv := make([]Entry, 0, len(c.VV)+len(o.VV)+len(c.Dots)+len(o.Dots))
	var dots []Dot
	if len(c.Dots)+len(o.Dots) > 0 {
		dots = make([]Dot, 0, len(c.Dots)+len(o.Dots))
	}
	ci, cj, oi, oj := 0, 0, 0, 0
	for ci < len(c.VV) || cj < len(c.Dots) || oi < len(o.VV) || oj < len(o.Dots) {
		// The next actor is the smallest at the head of the four lists.
		var actor string
		have := false
		pick := func(a string) {
			if !have || a < actor {
				actor, have = a, true
			}
		}
		if ci < len(c.VV) {
			pick(c.VV[ci].Actor)
		}
		if cj < len(c.Dots) {
			pick(c.Dots[cj].Actor)
		}
		if oi < len(o.VV) {
			pick(o.VV[oi].Actor)
		}
		if oj < len(o.Dots) {
			pick(o.Dots[oj].Actor)
		}
		var base uint64
		if ci < len(c.VV) && c.VV[ci].Actor == actor {
			base = c.VV[ci].Counter
			ci++
		}
		if oi < len(o.VV) && o.VV[oi].Actor == actor {
			base = max(base, o.VV[oi].Counter)
			oi++
		}
		for {
			cok := cj < len(c.Dots) && c.Dots[cj].Actor == actor
			ook := oj < len(o.Dots) && o.Dots[oj].Actor == actor
			if !cok && !ook {
				break
			}
			var n uint64
			switch {
			case cok && ook:
				n = min(c.Dots[cj].Counter, o.Dots[oj].Counter)
				if c.Dots[cj].Counter == n {
					cj++
				}
				if o.Dots[oj].Counter == n {
					oj++
				}
			case cok:
				n = c.Dots[cj].Counter
				cj++
			default:
				n = o.Dots[oj].Counter
				oj++
			}
			// Counters arrive in ascending order, so once one is kept as
			// an exception (a gap), no later one can be contiguous.
			switch {
			case n <= base:
			case n == base+1:
				base = n
			default:
				dots = append(dots, Dot{Actor: actor, Counter: n})
			}
		}
		if base > 0 {
			vv = append(vv, Entry{Actor: actor, Counter: base})
		}
	}
	return Context{VV: vv, Dots: dots}
}

// lessEq reports whether every dot c covers is covered by o.
func (c Context) lessEq(o Context) bool {
	if len(c.VV) > len(o.VV) {
		return false
	}
	for _, e := range c.VV {
		// o is normalised: if its vector stops below e.Counter, the next
		// dot is not among its exceptions (it would have been absorbed).
		if o.vv(e.Actor) < e.Counter {
			return false
		}
	}
	for _, d := range c.Dots {
		if !o.Covers(d) {
			return false
		}
	}
	return true
}

// CoveredBy reports whether o covers every dot c covers (c is Before or
// Equal to o).
func (c Context) CoveredBy(o Context) bool { return c.lessEq(o) }

// Compare reports how c relates causally to o.
func (c Context) Compare(o Context) Ordering {
	le, ge := c.lessEq(o), o.lessEq(c)
	switch {
	case le && ge:
		return Equal
	case le:
		return Before
	case ge:
		return After
	}
	return Concurrent
}

// IsZero reports whether c covers no write at all.
func (c Context) IsZero() bool { return len(c.VV) == 0 && len(c.Dots) == 0 }

// Equal reports whether c and o cover the same dots.
func (c Context) Equal(o Context) bool {
	if len(c.VV) != len(o.VV) || len(c.Dots) != len(o.Dots) {
		return false
	}
	for i := range c.VV {
		if c.VV[i] != o.VV[i] {
			return false
		}
	}
	for i := range c.Dots {
		if c.Dots[i] != o.Dots[i] {
			return false
		}
	}
	return true
}

// String renders c for logs and test failures: [a:3 b:1 | a:5 c:7] is the
// vector a:3 b:1 with exception dots (a,5) and (c,7).
func (c Context) String() string {
	var b strings.Builder
	b.WriteByte('[')
	for i, e := range c.VV {
		if i > 0 {
			b.WriteByte(' ')
		}
		writeActor(&b, e.Actor)
		b.WriteByte(':')
		b.WriteString(strconv.FormatUint(e.Counter, 10))
	}
	if len(c.Dots) > 0 {
		if len(c.VV) > 0 {
			b.WriteByte(' ')
		}
		b.WriteByte('|')
		for _, d := range c.Dots {
			b.WriteByte(' ')
			b.WriteString(d.String())
		}
	}
	b.WriteByte(']')
	return b.String()
}

func (d Dot) String() string {
	var b strings.Builder
	writeActor(&b, d.Actor)
	b.WriteByte(':')
	b.WriteString(strconv.FormatUint(d.Counter, 10))
	return b.String()
}

// writeActor quotes an actor only when it could be confused with the
// surrounding syntax, so ordinary node ids stay readable.
func writeActor(b *strings.Builder, actor string) {
	plain := actor != ""
	for i := 0; i < len(actor) && plain; i++ {
		ch := actor[i]
		plain = ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' ||
			ch == '-' || ch == '_' || ch == '.'
	}
	if plain {
		b.WriteString(actor)
		return
	}
	b.WriteString(strconv.Quote(actor))
}

// Prune returns c without the entries and dots of the actors retired
// reports true.
//
// Safety rule: retire only actors that were permanently removed from the
// cluster, whose ids will never be used again, and only once every replica
// of the key has absorbed their writes. Dropping an actor that may still
// coordinate writes makes it mint counters the pruned context no longer
// knows, so a later write could reuse a dot and be silently superseded; and
// a replica still holding a sibling the pruned context used to supersede
// would bring it back on the next merge. Use Set.Prune for a stored set, so
// the siblings it still holds stay covered.
func (c Context) Prune(retired func(actor string) bool) Context {
	keepVV, keepDots := 0, 0
	for _, e := range c.VV {
		if !retired(e.Actor) {
			keepVV++
		}
	}
	for _, d := range c.Dots {
		if !retired(d.Actor) {
			keepDots++
		}
	}
	if keepVV == len(c.VV) && keepDots == len(c.Dots) {
		return c.clip()
	}
	var out Context
	if keepVV > 0 {
		out.VV = make([]Entry, 0, keepVV)
		for _, e := range c.VV {
			if !retired(e.Actor) {
				out.VV = append(out.VV, e)
			}
		}
	}
	if keepDots > 0 {
		out.Dots = make([]Dot, 0, keepDots)
		for _, d := range c.Dots {
			if !retired(d.Actor) {
				out.Dots = append(out.Dots, d)
			}
		}
	}
	return out
}

// Intersect returns the context covering the dots both c and o cover.
//
// A coordinator uses it to clamp a client's context to what the replicas
// of the key have actually minted: a client can only have seen dots a
// replica handed out, so whatever else a context claims is forged (or from
// a replica whose data was lost), and believing it would make the write
// supersede, and every replica drop, writes that have not happened yet.
func (c Context) Intersect(o Context) Context {
	// The usual case: the client's context is what a replica holds or
	// less, and nothing is allocated.
	if c.lessEq(o) {
		return c.clip()
	}
	if o.lessEq(c) {
		return o.clip()
	}
	var out Context
	for _, e := range c.VV {
		if n := min(e.Counter, o.vv(e.Actor)); n > 0 {
			out.VV = append(out.VV, Entry{Actor: e.Actor, Counter: n})
		}
	}
	// The dots above the common vector that both cover: exceptions of
	// either that the other covers, in ascending order, so that Add
	// absorbs the contiguous ones.
	var extra []Dot
	for _, d := range c.Dots {
		if o.Covers(d) {
			extra = append(extra, d)
		}
	}
	for _, d := range o.Dots {
		if c.Covers(d) {
			extra = append(extra, d)
		}
	}
	slices.SortFunc(extra, func(a, b Dot) int {
		switch {
		case dotLess(a, b):
			return -1
		case dotLess(b, a):
			return 1
		}
		return 0
	})
	for _, d := range extra {
		out = out.Add(d)
	}
	return out.clip()
}

// ActorsBeyond returns, sorted, the actors of which c covers a dot that o
// does not.
func (c Context) ActorsBeyond(o Context) []string {
	var out []string
	add := func(a string) {
		if len(out) == 0 || out[len(out)-1] != a {
			out = append(out, a)
		}
	}
	i := 0
	for _, e := range c.VV {
		// Dots of actors before e.Actor, in order.
		for ; i < len(c.Dots) && c.Dots[i].Actor < e.Actor; i++ {
			if !o.Covers(c.Dots[i]) {
				add(c.Dots[i].Actor)
			}
		}
		// o is normalised: when its vector stops below e.Counter, the
		// next dot is not among its exceptions.
		if o.vv(e.Actor) < e.Counter {
			add(e.Actor)
		}
		for ; i < len(c.Dots) && c.Dots[i].Actor == e.Actor; i++ {
			if !o.Covers(c.Dots[i]) {
				add(e.Actor)
			}
		}
	}
	for ; i < len(c.Dots); i++ {
		if !o.Covers(c.Dots[i]) {
			add(c.Dots[i].Actor)
		}
	}
	return out
}
