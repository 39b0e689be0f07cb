package vclock

import (
	"bytes"
	"time"
)

// MaxTTL is the longest time to live the front ends accept: it keeps
// now+ttl far from int64 nanosecond overflow (year 2262) in
// Sibling.Expires and catches unit mistakes such as milliseconds passed
// as seconds.
const MaxTTL = 100 * 365 * 24 * time.Hour

// Sibling is one stored version of a key: the value written by the write
// its Dot names.
type Sibling struct {
	Dot          Dot
	Value        []byte
	ContentType  string
	LastModified int64 // unix nanoseconds, set by the coordinator
	Expires      int64 // unix nanoseconds, absolute; 0 = never
	Tombstone    bool  // a delete marker; Value empty
	// Kind is the data type the sibling holds: KindValue (an opaque
	// value, the zero Kind) or KindCounter (counter.go). A tombstone is
	// always KindValue.
	Kind Kind
}

// Equal reports whether s and o are the same version, field by field (a nil
// and an empty Value are equal).
func (s Sibling) Equal(o Sibling) bool {
	return s.Dot == o.Dot && s.LastModified == o.LastModified && s.Expires == o.Expires &&
		s.Tombstone == o.Tombstone && s.Kind == o.Kind && s.ContentType == o.ContentType && bytes.Equal(s.Value, o.Value)
}

// Live reports whether s is a value a read returns at now: not a tombstone
// and not expired.
func (s Sibling) Live(now int64) bool {
	return !s.Tombstone && (s.Expires == 0 || now < s.Expires)
}

// Set is a replica's state for one key: the versions it holds and the
// context of every write it has seen for the key.
//
// Invariants, kept by Update and Merge and checked by DecodeSet: Siblings is
// sorted by Dot with no two sharing a dot, and Context covers every
// sibling's dot. Like Context, a Set is a value that no function mutates.
type Set struct {
	Context  Context   // every write this replica has seen for the key
	Siblings []Sibling // sorted by Dot; no two share a dot
}

// Update is a coordinated write at replica actor with client context ctx:
// it drops the siblings ctx covers, mints the dot (actor,
// max(s.Context.Max(actor), ctx.Max(actor))+1) and adds sib with that dot
// (sib.Dot is ignored). It returns the new set and the context to hand to
// the client: ctx plus the new dot, nothing the client has not seen.
//
// The new set's context also absorbs ctx: whatever the client saw is in the
// new write's past, so the siblings ctx covers are obsolete on every
// replica, and merges must drop them there too.
//
// Counters saturate rather than wrap: only a forged client context can
// bring an actor to the top of the uint64 range, and from there on the
// actor's writes to the key reuse the top dot and replace one another (the
// latest LastModified wins in Merge), instead of minting the zero dot that
// every context covers.
func (s Set) Update(actor string, ctx Context, sib Sibling) (Set, Context) {
	n := max(s.Context.Max(actor), ctx.Max(actor))
	if n < ^uint64(0) {
		n++
	}
	dot := Dot{Actor: actor, Counter: n}
	sib.Dot = dot
	sibs := make([]Sibling, 0, len(s.Siblings)+1)
	placed := false
	for _, x := range s.Siblings {
		if ctx.Covers(x.Dot) || x.Dot == dot {
			continue
		}
		if !placed && dotLess(dot, x.Dot) {
			sibs = append(sibs, sib)
			placed = true
		}
		sibs = append(sibs, x)
	}
	if !placed {
		sibs = append(sibs, sib)
	}
	return Set{Context: s.Context.Merge(ctx).Add(dot), Siblings: sibs}, ctx.Add(dot)
}

// Merge combines two replica states of one key (replication, read repair,
// anti-entropy). A sibling of a survives if b holds it too or b's context
// does not cover it (b has not seen the write that superseded it), and vice
// versa; the contexts merge. Merge is commutative, associative and
// idempotent, so replicas converge whatever order states arrive in.
func Merge(a, b Set) Set {
	ctx := a.Context.Merge(b.Context)
	sibs := make([]Sibling, 0, len(a.Siblings)+len(b.Siblings))
	i, j := 0, 0
	for i < len(a.Siblings) || j < len(b.Siblings) {
		switch {
		case j == len(b.Siblings) || i < len(a.Siblings) && dotLess(a.Siblings[i].Dot, b.Siblings[j].Dot):
			if x := a.Siblings[i]; !b.Context.Covers(x.Dot) {
				sibs = append(sibs, x)
			}
			i++
		case i == len(a.Siblings) || dotLess(b.Siblings[j].Dot, a.Siblings[i].Dot):
			if y := b.Siblings[j]; !a.Context.Covers(y.Dot) {
				sibs = append(sibs, y)
			}
			j++
		default:
			sibs = append(sibs, pickSame(a.Siblings[i], b.Siblings[j]))
			i++
			j++
		}
	}
	return Set{Context: ctx, Siblings: sibs}
}

// pickSame chooses between two siblings carrying the same dot. A dot names
// one write, so they are equal unless a replica's data was damaged; a
// deterministic choice, the later write first, keeps Merge commutative and
// convergent even then.
func pickSame(x, y Sibling) Sibling {
	if siblingLess(x, y) {
		return y
	}
	return x
}

func siblingLess(x, y Sibling) bool {
	switch {
	case x.LastModified != y.LastModified:
		return x.LastModified < y.LastModified
	case x.Tombstone != y.Tombstone:
		return !x.Tombstone
	case x.Expires != y.Expires:
		return x.Expires < y.Expires
	case x.Kind != y.Kind:
		return x.Kind < y.Kind
	case x.ContentType != y.ContentType:
		return x.ContentType < y.ContentType
	}
	return bytes.Compare(x.Value, y.Value) < 0
}

// Live returns the siblings a read returns at now (unix nanoseconds):
// neither tombstones nor expired. The result may share the set's array and
// must not be modified.
func (s Set) Live(now int64) []Sibling {
	n := 0
	for _, x := range s.Siblings {
		if x.Live(now) {
			n++
		}
	}
	if n == len(s.Siblings) {
		return s.Siblings[:n:n]
	}
	if n == 0 {
		return nil
	}
	live := make([]Sibling, 0, n)
	for _, x := range s.Siblings {
		if x.Live(now) {
			live = append(live, x)
		}
	}
	return live
}

// Equal reports whether s and o hold the same context and siblings.
func (s Set) Equal(o Set) bool {
	if !s.Context.Equal(o.Context) || len(s.Siblings) != len(o.Siblings) {
		return false
	}
	for i := range s.Siblings {
		if !s.Siblings[i].Equal(o.Siblings[i]) {
			return false
		}
	}
	return true
}

// Prune returns s with the context pruned by Context.Prune, except that the
// dots of the siblings s still holds stay covered, so the set keeps its
// invariant and a held value of a retired actor is not lost. The safety
// rule of Context.Prune applies.
func (s Set) Prune(retired func(actor string) bool) Set {
	ctx := s.Context.Prune(retired)
	for _, x := range s.Siblings {
		if retired(x.Dot.Actor) {
			ctx = ctx.Add(x.Dot)
		}
	}
	return Set{Context: ctx, Siblings: s.Siblings[:len(s.Siblings):len(s.Siblings)]}
}
