package membership

import (
	"encoding/binary"
	"fmt"
)

// Meta is what a node tells memberlist about itself (Delegate.NodeMeta), so
// a peer can check compatibility before admitting it, without the ring state.
type Meta struct {
	ID         string
	HTTPAddr   string
	Partitions int
}

const metaVersion = 1

// Encode returns version byte | id | http addr (uvarint-length strings) |
// uvarint partitions.
func (m Meta) Encode() []byte {
	b := make([]byte, 0, 4+len(m.ID)+len(m.HTTPAddr)+3)
	b = append(b, metaVersion)
	b = appendString(b, m.ID)
	b = appendString(b, m.HTTPAddr)
	return binary.AppendUvarint(b, uint64(m.Partitions))
}

// DecodeMeta parses an Encode'd Meta; it never panics.
func DecodeMeta(b []byte) (Meta, error) {
	d := decoder{b: b}
	if v := d.byte(); d.err == nil && v != metaVersion {
		return Meta{}, fmt.Errorf("%w: meta version %d, want %d", ErrMalformed, v, metaVersion)
	}
	var m Meta
	m.ID = d.string()
	m.HTTPAddr = d.string()
	p := d.uvarint()
	if d.err == nil && (p == 0 || p > MaxPartitions) {
		d.fail("partition count %d out of range", p)
	}
	m.Partitions = int(p)
	if d.err == nil && len(d.b) > 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return Meta{}, d.err
	}
	return m, nil
}
