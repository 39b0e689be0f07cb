package wire

import (
	"encoding/binary"
	"fmt"
)

// Decoder reads canonical fields from a buffer, reporting the offset of
// what it rejects. Create one with NewDecoder: the zero value has no
// sentinel to wrap. After a read fails the offset is unspecified; callers
// return the error and read no further.
type Decoder struct {
	buf       []byte
	off       int
	malformed error
}

// NewDecoder returns a Decoder over buf whose errors wrap malformed. It is
// returned by value so that a decoder kept in a local variable stays on the
// stack.
func NewDecoder(buf []byte, malformed error) Decoder {
	return Decoder{buf: buf, malformed: malformed}
}

// Offset is the position of the next unread byte.
func (d *Decoder) Offset() int { return d.off }

// Len is the number of unread bytes.
func (d *Decoder) Len() int { return len(d.buf) - d.off }

// Errorf returns an error at the current offset wrapping the sentinel.
func (d *Decoder) Errorf(format string, args ...any) error {
	return d.ErrorfAt(d.off, format, args...)
}

// ErrorfAt returns an error at offset off wrapping the sentinel; callers
// pass the offset where the rejected field started, not where reading it
// stopped.
func (d *Decoder) ErrorfAt(off int, format string, args ...any) error {
	return fmt.Errorf("%w: offset %d: %s", d.malformed, off, fmt.Sprintf(format, args...))
}

// End fails unless every byte has been read: trailing bytes would mean two
// inputs decode to the same value.
func (d *Decoder) End(what string) error {
	if d.off != len(d.buf) {
		return d.Errorf("%s: %d trailing bytes", what, len(d.buf)-d.off)
	}
	return nil
}

// Byte reads one byte.
func (d *Decoder) Byte(what string) (byte, error) {
	if d.off >= len(d.buf) {
		return 0, d.Errorf("%s: unexpected end of input", what)
	}
	v := d.buf[d.off]
	d.off++
	return v, nil
}

// Uint64LE reads a fixed-width little-endian uint64.
func (d *Decoder) Uint64LE(what string) (uint64, error) {
	if len(d.buf)-d.off < 8 {
		return 0, d.Errorf("%s: unexpected end of input", what)
	}
	v := binary.LittleEndian.Uint64(d.buf[d.off:])
	d.off += 8
	return v, nil
}

// Uvarint reads a minimally encoded uvarint: a longer encoding of the same
// number would decode fine but re-encode differently.
func (d *Decoder) Uvarint(what string) (uint64, error) {
	v, n := binary.Uvarint(d.buf[d.off:])
	switch {
	case n == 0:
		return 0, d.Errorf("%s: unexpected end of input", what)
	case n < 0:
		return 0, d.Errorf("%s: varint overflows 64 bits", what)
	case n > 1 && d.buf[d.off+n-1] == 0:
		return 0, d.Errorf("%s: varint not minimally encoded", what)
	}
	d.off += n
	return v, nil
}

// Varint reads a minimally encoded zigzag varint (binary.AppendVarint).
func (d *Decoder) Varint(what string) (int64, error) {
	ux, err := d.Uvarint(what)
	if err != nil {
		return 0, err
	}
	x := int64(ux >> 1)
	if ux&1 != 0 {
		x = ^x
	}
	return x, nil
}

// Count reads an element count and checks it against the bytes left, given
// that each element takes at least minLen (>= 1) bytes, before anyone
// allocates: a hostile count cannot make the caller allocate more than in
// proportion to the input.
func (d *Decoder) Count(what string, minLen int) (int, error) {
	at := d.off
	n, err := d.Uvarint(what)
	if err != nil {
		return 0, err
	}
	if left := uint64(len(d.buf) - d.off); n > left/uint64(max(minLen, 1)) {
		return 0, d.ErrorfAt(at, "%s %d cannot fit in the %d bytes left", what, n, left)
	}
	return int(n), nil
}

// Bytes reads a length-prefixed byte string of at most limit bytes. The
// result aliases the buffer, capped at its length so that appending to it
// cannot overwrite the bytes after it.
func (d *Decoder) Bytes(what string, limit int) ([]byte, error) {
	at := d.off
	n, err := d.Uvarint(what)
	if err != nil {
		return nil, err
	}
	if n > uint64(limit) {
		return nil, d.ErrorfAt(at, "%s %d exceeds the limit %d", what, n, limit)
	}
	if left := uint64(len(d.buf) - d.off); n > left {
		return nil, d.ErrorfAt(at, "%s %d exceeds the %d bytes left", what, n, left)
	}
	end := d.off + int(n)
	b := d.buf[d.off:end:end]
	d.off = end
	return b, nil
}
