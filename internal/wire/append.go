package wire

import "encoding/binary"

// AppendBytes appends v as a uvarint length then the bytes, the form
// Decoder.Bytes reads.
func AppendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// AppendString is AppendBytes for a string, without converting it.
func AppendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// UvarintLen is the size of binary.AppendUvarint(nil, x), for sizing a
// buffer before encoding into it.
func UvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// VarintLen is the size of binary.AppendVarint(nil, x).
func VarintLen(x int64) int {
	ux := uint64(x) << 1
	if x < 0 {
		ux = ^ux
	}
	return UvarintLen(ux)
}

// BytesLen is the size of AppendBytes of n bytes.
func BytesLen(n int) int { return UvarintLen(uint64(n)) + n }
