package vclock

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dynkv/dynkv/internal/wire"
)

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("vclock: malformed encoding")

// Limits of the encodings. Callers enforce them before writing (node ids are
// validated at start, values and content types per request): DecodeContext
// and DecodeSet reject anything larger, so Encode of an oversized value
// produces bytes that cannot be read back.
const (
	MaxActorLen       = 255
	MaxContentTypeLen = 255
	MaxValueLen       = 64 << 20
	MaxSiblings       = 1 << 16
)

// Format versions, the first byte of each encoding. A decoder refuses
// versions it does not know rather than guess at their layout.
const (
	contextVersion byte = 1
	setVersion     byte = 1
)

// Sibling flags: a tombstone, or a counter's state (never both).
const (
	flagTombstone byte = 1
	flagCounter   byte = 2
)

// Layout (all integers uvarints unless marked, strings are a uvarint length
// then the bytes):
//
//	context = version(1) body
//	body    = nvv {actor counter} ndots {actor counter}
//	set     = version(1) body nsiblings {sibling}
//	sibling = actorIndex counter flags(1 byte: 1 tombstone, 2 counter)
//	          lastModified(zigzag varint)
//	          expires(zigzag varint) contentType value
//
// A sibling names its actor by index into the sorted, distinct actors of
// the set's context: the context must cover the sibling's dot, so the actor
// is always there, and an index is shorter than a node id. Every field has
// exactly one accepted encoding (minimal varints, sorted entries, no
// trailing bytes), so decoding then encoding reproduces the input.

// Encode returns the versioned binary form of c.
func (c Context) Encode() []byte {
	b := make([]byte, 0, 1+c.bodySize())
	b = append(b, contextVersion)
	return c.appendBody(b)
}

func (c Context) bodySize() int {
	n := wire.UvarintLen(uint64(len(c.VV))) + wire.UvarintLen(uint64(len(c.Dots)))
	for _, e := range c.VV {
		n += wire.UvarintLen(uint64(len(e.Actor))) + len(e.Actor) + wire.UvarintLen(e.Counter)
	}
	for _, d := range c.Dots {
		n += wire.UvarintLen(uint64(len(d.Actor))) + len(d.Actor) + wire.UvarintLen(d.Counter)
	}
	return n
}

func (c Context) appendBody(b []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(c.VV)))
	for _, e := range c.VV {
		b = appendString(b, e.Actor)
		b = binary.AppendUvarint(b, e.Counter)
	}
	b = binary.AppendUvarint(b, uint64(len(c.Dots)))
	for _, d := range c.Dots {
		b = appendString(b, d.Actor)
		b = binary.AppendUvarint(b, d.Counter)
	}
	return b
}

// DecodeContext parses the output of Context.Encode. It accepts only the
// canonical encoding of a normalised context; any other input yields an
// error wrapping ErrMalformed.
func DecodeContext(b []byte) (Context, error) {
	d := newDecoder(b)
	if err := d.version("context format version", contextVersion); err != nil {
		return Context{}, err
	}
	c, err := d.contextBody()
	if err != nil {
		return Context{}, err
	}
	if err := d.End("context"); err != nil {
		return Context{}, err
	}
	return c, nil
}

// Encode returns the versioned binary form of s. s must keep the Set
// invariants; a sibling whose dot the context does not cover cannot be
// encoded and Encode panics, as that is a bug in the caller.
func (s Set) Encode() []byte {
	var stack [16]string
	actors := s.Context.actors(stack[:0])
	n := 1 + s.Context.bodySize() + wire.UvarintLen(uint64(len(s.Siblings)))
	for _, x := range s.Siblings {
		n += wire.UvarintLen(uint64(len(actors))) + wire.UvarintLen(x.Dot.Counter) + 1 +
			wire.VarintLen(x.LastModified) + wire.VarintLen(x.Expires) +
			wire.UvarintLen(uint64(len(x.ContentType))) + len(x.ContentType) +
			wire.UvarintLen(uint64(len(x.Value))) + len(x.Value)
	}
	b := make([]byte, 0, n)
	b = append(b, setVersion)
	b = s.Context.appendBody(b)
	b = binary.AppendUvarint(b, uint64(len(s.Siblings)))
	for _, x := range s.Siblings {
		i := searchStrings(actors, x.Dot.Actor)
		if i == len(actors) || actors[i] != x.Dot.Actor {
			panic(fmt.Sprintf("vclock: Set.Encode: sibling %s is not covered by the set context %s", x.Dot, s.Context))
		}
		b = binary.AppendUvarint(b, uint64(i))
		b = binary.AppendUvarint(b, x.Dot.Counter)
		var flags byte
		if x.Tombstone {
			flags |= flagTombstone
		}
		if x.Kind == KindCounter {
			flags |= flagCounter
		}
		b = append(b, flags)
		b = binary.AppendVarint(b, x.LastModified)
		b = binary.AppendVarint(b, x.Expires)
		b = appendString(b, x.ContentType)
		b = binary.AppendUvarint(b, uint64(len(x.Value)))
		b = append(b, x.Value...)
	}
	return b
}

// DecodeSet parses the output of Set.Encode. It accepts only the canonical
// encoding of a set that keeps the Set invariants; any other input yields
// an error wrapping ErrMalformed. The result does not alias b.
func DecodeSet(b []byte) (Set, error) {
	d := newDecoder(b)
	if err := d.version("set format version", setVersion); err != nil {
		return Set{}, err
	}
	ctx, err := d.contextBody()
	if err != nil {
		return Set{}, err
	}
	var stack [16]string
	actors := ctx.actors(stack[:0])
	n, err := d.Count("set sibling count", minSiblingLen)
	if err != nil {
		return Set{}, err
	}
	if n > MaxSiblings {
		return Set{}, d.Errorf("set: %d siblings, more than the limit %d", n, MaxSiblings)
	}
	s := Set{Context: ctx}
	if n == 0 {
		return s, d.End("set")
	}
	s.Siblings = make([]Sibling, n)
	// Values are copied into one array sized by the bytes left, which is
	// bounded by the input, so hostile lengths cannot inflate memory.
	arena := make([]byte, 0, d.Len())
	for i := range s.Siblings {
		x := &s.Siblings[i]
		at := d.Offset()
		ai, err := d.Uvarint("sibling actor index")
		if err != nil {
			return Set{}, err
		}
		if ai >= uint64(len(actors)) {
			return Set{}, d.ErrorfAt(at, "sibling %d: actor index %d out of range (%d actors)", i, ai, len(actors))
		}
		x.Dot.Actor = actors[ai]
		at = d.Offset()
		if x.Dot.Counter, err = d.Uvarint("sibling counter"); err != nil {
			return Set{}, err
		}
		if !ctx.Covers(x.Dot) || x.Dot.Counter == 0 {
			return Set{}, d.ErrorfAt(at, "sibling %d: dot %s not covered by the set context", i, x.Dot)
		}
		if i > 0 && !dotLess(s.Siblings[i-1].Dot, x.Dot) {
			return Set{}, d.ErrorfAt(at, "sibling %d: dot %s not after %s", i, x.Dot, s.Siblings[i-1].Dot)
		}
		at = d.Offset()
		flags, err := d.Byte("sibling flags")
		if err != nil {
			return Set{}, err
		}
		if flags&^(flagTombstone|flagCounter) != 0 || flags == flagTombstone|flagCounter {
			return Set{}, d.ErrorfAt(at, "sibling %d: unknown flags %#x", i, flags)
		}
		x.Tombstone = flags&flagTombstone != 0
		if flags&flagCounter != 0 {
			x.Kind = KindCounter
		}
		if x.LastModified, err = d.Varint("sibling last-modified"); err != nil {
			return Set{}, err
		}
		if x.Expires, err = d.Varint("sibling expiry"); err != nil {
			return Set{}, err
		}
		ct, err := d.Bytes("sibling content type length", MaxContentTypeLen)
		if err != nil {
			return Set{}, err
		}
		if len(ct) > 0 {
			if i > 0 && s.Siblings[i-1].ContentType == string(ct) {
				x.ContentType = s.Siblings[i-1].ContentType
			} else {
				x.ContentType = string(ct)
			}
		}
		v, err := d.Bytes("sibling value length", MaxValueLen)
		if err != nil {
			return Set{}, err
		}
		if x.Kind == KindCounter {
			if _, _, err := DecodeCounter(v); err != nil {
				return Set{}, d.ErrorfAt(at, "sibling %d: counter share: %v", i, err)
			}
		}
		if len(v) > 0 {
			start := len(arena)
			arena = append(arena, v...)
			x.Value = arena[start:len(arena):len(arena)]
		}
	}
	return s, d.End("set")
}

// minSiblingLen is the fewest bytes a sibling can take: actor index,
// counter, flags, two timestamps and two lengths, one byte each.
const minSiblingLen = 7

// actors appends the distinct actors of c in sorted order to dst.
func (c Context) actors(dst []string) []string {
	i, j := 0, 0
	for i < len(c.VV) || j < len(c.Dots) {
		var a string
		switch {
		case j == len(c.Dots) || i < len(c.VV) && c.VV[i].Actor <= c.Dots[j].Actor:
			a = c.VV[i].Actor
			i++
		default:
			a = c.Dots[j].Actor
			j++
		}
		if len(dst) == 0 || dst[len(dst)-1] != a {
			dst = append(dst, a)
		}
	}
	return dst
}

func searchStrings(s []string, x string) int {
	lo, hi := 0, len(s)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s[m] < x {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// appendString stays a name of its own because the tests build inputs
// with it.
func appendString(b []byte, s string) []byte { return wire.AppendString(b, s) }

// decoder is wire's bounds-checked reader with this package's sentinel,
// plus the fields only vclock encodings have.
type decoder struct{ wire.Decoder }

func newDecoder(b []byte) decoder { return decoder{wire.NewDecoder(b, ErrMalformed)} }

func (d *decoder) version(what string, want byte) error {
	v, err := d.Byte(what)
	if err != nil {
		return err
	}
	if v != want {
		return d.ErrorfAt(0, "%s %d, want %d", what, v, want)
	}
	return nil
}

// contextBody reads and validates a normalised context.
func (d *decoder) contextBody() (Context, error) {
	var c Context
	nvv, err := d.Count("context vector entry count", 2)
	if err != nil {
		return Context{}, err
	}
	if nvv > 0 {
		c.VV = make([]Entry, nvv)
	}
	for i := range c.VV {
		at := d.Offset()
		a, err := d.Bytes("vector actor length", MaxActorLen)
		if err != nil {
			return Context{}, err
		}
		if i > 0 && string(a) <= c.VV[i-1].Actor {
			return Context{}, d.ErrorfAt(at, "vector entry %d: actor %q not after %q", i, a, c.VV[i-1].Actor)
		}
		c.VV[i].Actor = string(a)
		at = d.Offset()
		if c.VV[i].Counter, err = d.Uvarint("vector counter"); err != nil {
			return Context{}, err
		}
		if c.VV[i].Counter == 0 {
			return Context{}, d.ErrorfAt(at, "vector entry %d: zero counter", i)
		}
	}
	ndots, err := d.Count("context dot count", 2)
	if err != nil {
		return Context{}, err
	}
	if ndots > 0 {
		c.Dots = make([]Dot, ndots)
	}
	for i := range c.Dots {
		at := d.Offset()
		a, err := d.Bytes("dot actor length", MaxActorLen)
		if err != nil {
			return Context{}, err
		}
		dot := &c.Dots[i]
		// Reuse the string already decoded for this actor: dots of an actor
		// usually sit beside its vector entry or the previous dot.
		switch vi, ok := vvSearch(c.VV, string(a)); {
		case i > 0 && c.Dots[i-1].Actor == string(a):
			dot.Actor = c.Dots[i-1].Actor
		case ok:
			dot.Actor = c.VV[vi].Actor
		default:
			dot.Actor = string(a)
		}
		if dot.Counter, err = d.Uvarint("dot counter"); err != nil {
			return Context{}, err
		}
		if i > 0 && !dotLess(c.Dots[i-1], *dot) {
			return Context{}, d.ErrorfAt(at, "dot %d: %s not after %s", i, *dot, c.Dots[i-1])
		}
		// Normalised: the vector would have covered or absorbed it.
		if base := c.vv(dot.Actor); dot.Counter <= base || dot.Counter-1 == base {
			return Context{}, d.ErrorfAt(at, "dot %d: %s is covered by or contiguous with the vector", i, *dot)
		}
	}
	return c, nil
}
