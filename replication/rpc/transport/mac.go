package transport

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"hash"
)

// frameMAC authenticates the frames of one direction of a keyed
// connection: tag = HMAC-SHA256(direction key, seq || header || payload),
// truncated to tagSize bytes, where seq counts the frames of that direction
// from 0. The sequence number is implicit (both ends count), so a frame
// that is dropped, replayed, reordered or moved to another connection or
// direction fails, as does any altered bit. One goroutine owns each
// (the writer the sending one, the reader the receiving one).
type frameMAC struct {
	h      hash.Hash
	seq    uint64
	seqBuf [8]byte // not on the stack: it would escape through h.Write
	sum    [sha256.Size]byte
}

func newFrameMAC(key []byte) *frameMAC {
	return &frameMAC{h: hmac.New(sha256.New, key)}
}

func (m *frameMAC) compute(hdr, payload []byte) []byte {
	binary.BigEndian.PutUint64(m.seqBuf[:], m.seq)
	m.seq++
	m.h.Reset()
	m.h.Write(m.seqBuf[:])
	m.h.Write(hdr)
	m.h.Write(payload)
	return m.h.Sum(m.sum[:0])[:tagSize]
}

// appendTag appends the tag of the next frame to b.
func (m *frameMAC) appendTag(b, hdr, payload []byte) []byte {
	return append(b, m.compute(hdr, payload)...)
}

// verify checks the tag of the next frame received.
func (m *frameMAC) verify(hdr, payload, tag []byte) bool {
	return hmac.Equal(m.compute(hdr, payload), tag)
}
