package vclock

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"

	"github.com/dynkv/dynkv/internal/wire"
)

// Kind is the data type a sibling holds. A key's live siblings are all of
// one kind: the store refuses an operation of the other kind (ErrWrongType).
type Kind uint8

// The kinds.
const (
	// KindValue is an opaque value written by PUT or SET (the zero Kind).
	KindValue Kind = iota
	// KindCounter is one actor's share of a PN-counter (Increment).
	KindCounter
)

func (k Kind) String() string {
	switch k {
	case KindValue:
		return "value"
	case KindCounter:
		return "counter"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// ErrWrongType is an operation on a key that holds another kind of data:
// an increment of a key holding a value, or a plain write or read of a
// counter.
var ErrWrongType = errors.New("operation against a key holding the wrong kind of value")

// ErrCounterOverflow is an increment that would take a counter out of the
// int64 range.
var ErrCounterOverflow = errors.New("increment or decrement would overflow")

// A counter is a PN-counter kept in the dotted version model the values
// use, so that replication, read repair, anti-entropy, hints and handoff
// carry it unchanged and Merge is its join:
//
//   - each actor that increments the key holds one KindCounter sibling
//     whose value is its running totals: P, the sum of its increments, and
//     N, the sum of its decrements;
//   - an increment at actor a mints the next dot of a and replaces a's
//     previous counter sibling, which the new set's context covers, so
//     Merge drops the old one wherever the new one arrives, and keeps
//     every other actor's sibling (their dots are held, not superseded);
//   - the counter's value is the sum of P - N over its siblings.
//
// So each actor's share only grows, Merge keeps the latest share of each
// actor (the per-actor maximum of a PN-counter), and no increment is lost
// or counted twice as long as an actor's increments are serialised on one
// replica that holds its latest share (the store's key lock, and the
// coordinator's read of a quorum's state before it increments).
//
// A delete is a tombstone write like any other: it supersedes the shares
// its context covers, and a later increment starts that actor's share from
// zero. An increment concurrent with the delete is not covered by it and
// survives with its whole share, as in Riak: the counter comes back with
// that actor's total.

// counterValue is the encoding of a counter share: P then N, uvarints.
func encodeCounter(p, n uint64) []byte {
	b := make([]byte, 0, wire.UvarintLen(p)+wire.UvarintLen(n))
	b = binary.AppendUvarint(b, p)
	return binary.AppendUvarint(b, n)
}

// DecodeCounter parses a counter share, a KindCounter sibling's value,
// into its increments p and decrements n.
func DecodeCounter(b []byte) (p, n uint64, err error) {
	d := newDecoder(b)
	if p, err = d.Uvarint("counter increments"); err != nil {
		return 0, 0, err
	}
	if n, err = d.Uvarint("counter decrements"); err != nil {
		return 0, 0, err
	}
	return p, n, d.End("counter")
}

// LiveKinds reports which kinds the set's live siblings hold at now.
func (s Set) LiveKinds(now int64) (value, counter bool) {
	for _, x := range s.Siblings {
		if !x.Live(now) {
			continue
		}
		if x.Kind == KindCounter {
			counter = true
		} else {
			value = true
		}
	}
	return value, counter
}

// CounterValue is the value of the counter the set holds: the sum of its
// counter siblings' shares. ok is false when it holds none (the key is
// absent, deleted or holds only values). It fails with ErrCounterOverflow
// when concurrent increments took the sum past the int64 range.
func (s Set) CounterValue() (v int64, ok bool, err error) {
	var sum big.Int
	var share big.Int
	for _, x := range s.Siblings {
		if x.Kind != KindCounter || x.Tombstone {
			continue
		}
		p, n, err := DecodeCounter(x.Value)
		if err != nil {
			return 0, false, err
		}
		ok = true
		sum.Add(&sum, share.SetUint64(p))
		sum.Sub(&sum, share.SetUint64(n))
	}
	if !sum.IsInt64() {
		return 0, ok, ErrCounterOverflow
	}
	return sum.Int64(), ok, nil
}

// Increment adds delta (negative to decrement) to the counter s holds, as
// actor, at lastModified (unix nanoseconds). The new set replaces actor's
// share with its new totals under actor's next dot and drops what is not
// live (tombstones and expired values: the increment has seen them); it
// keeps every other actor's share. It fails with ErrWrongType when s holds
// a live value, and with ErrCounterOverflow when the counter would leave
// the int64 range or actor's dots are exhausted.
func (s Set) Increment(actor string, delta int64, lastModified int64) (Set, error) {
	var p, n uint64
	for _, x := range s.Siblings {
		switch {
		case x.Kind != KindCounter:
			if x.Live(lastModified) {
				return Set{}, ErrWrongType
			}
		case x.Dot.Actor == actor:
			// One share per actor after any merge; should damage have
			// left two, the larger totals are the later ones.
			xp, xn, err := DecodeCounter(x.Value)
			if err != nil {
				return Set{}, err
			}
			p, n = max(p, xp), max(n, xn)
		}
	}
	if delta >= 0 {
		if p > math.MaxUint64-uint64(delta) {
			return Set{}, ErrCounterOverflow
		}
		p += uint64(delta)
	} else {
		d := uint64(-(delta + 1)) + 1 // |delta| without overflowing at MinInt64
		if n > math.MaxUint64-d {
			return Set{}, ErrCounterOverflow
		}
		n += d
	}
	top := s.Context.Max(actor)
	if top == math.MaxUint64 {
		return Set{}, ErrCounterOverflow
	}
	dot := Dot{Actor: actor, Counter: top + 1}
	mine := Sibling{Dot: dot, Value: encodeCounter(p, n), Kind: KindCounter, LastModified: lastModified}
	sibs := make([]Sibling, 0, len(s.Siblings)+1)
	for _, x := range s.Siblings {
		if x.Kind == KindCounter && x.Dot.Actor != actor {
			sibs = append(sibs, x)
		}
	}
	i := len(sibs)
	for i > 0 && dotLess(dot, sibs[i-1].Dot) {
		i--
	}
	sibs = append(sibs, Sibling{})
	copy(sibs[i+1:], sibs[i:])
	sibs[i] = mine
	next := Set{Context: s.Context.Add(dot), Siblings: sibs}
	if _, _, err := next.CounterValue(); err != nil {
		return Set{}, err
	}
	return next, nil
}
