package transport

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Frame layout (all integers big-endian):
//
//	offset size field
//	0      1    magic 0xD1 (dynkv-rpc/1)
//	1      1    type (frameHello ... frameGoAway)
//	2      1    code: the call of a request, the code of an error or refused frame, else 0
//	3      1    flags, 0 (reserved)
//	4      4    payload length
//	8      8    request ID (0 for connection-level frames)
//	16     4    timeout in microseconds (requests only; 0 = no deadline)
//	20     n    payload
//	20+n   16   MAC (keyed connections, after the handshake)
const (
	headerSize = 20
	tagSize    = 16
	magic      = 0xD1

	// DefaultMaxFrameBytes is the largest payload a side accepts unless
	// configured otherwise, as the HTTP/2 RPC's rpc.MaxFrameBytes.
	DefaultMaxFrameBytes = 64 << 20
	// maxHandshakePayload bounds every frame before the handshake is
	// done, so that a stranger makes a node allocate next to nothing.
	maxHandshakePayload = 256
	// maxNoticePayload bounds the message of a refused or goaway frame.
	maxNoticePayload = 4 << 10
	// maxTimeoutMicros is the largest deadline a request header carries
	// (about 71 minutes); a longer one is sent as this.
	maxTimeoutMicros = 1<<32 - 1
)

type frameType byte

const (
	frameHello    frameType = 1  // client: hello (handshake.go)
	frameWelcome  frameType = 2  // server: welcome
	frameProof    frameType = 3  // client: keyed proof
	frameReady    frameType = 4  // server: keyed handshake done, with a key confirmation
	frameRequest  frameType = 5  // client: a call; code = call, ID, timeout
	frameResponse frameType = 6  // server: a call's result
	frameError    frameType = 7  // server: the handler failed; code and detail
	frameRefused  frameType = 8  // server: refused (errors.go codes); ID 0: about the connection
	frameCancel   frameType = 9  // client: the caller gave up on ID
	framePing     frameType = 10 // client: liveness; ID echoed
	framePong     frameType = 11 // server: answer to a ping
	frameGoAway   frameType = 12 // server: no new calls on this connection
	maxFrameType            = frameGoAway
)

var frameNames = [...]string{
	frameHello: "hello", frameWelcome: "welcome", frameProof: "proof", frameReady: "ready",
	frameRequest: "request", frameResponse: "response", frameError: "error", frameRefused: "refused",
	frameCancel: "cancel", framePing: "ping", framePong: "pong", frameGoAway: "goaway",
}

func (t frameType) String() string {
	if t >= 1 && t <= maxFrameType {
		return frameNames[t]
	}
	return fmt.Sprintf("type(%d)", byte(t))
}

// header is a decoded frame header.
type header struct {
	typ     frameType
	code    byte
	length  uint32
	id      uint64
	timeout uint32 // microseconds
}

// put encodes h into b, which holds at least headerSize bytes.
func (h header) put(b []byte) {
	_ = b[headerSize-1]
	b[0] = magic
	b[1] = byte(h.typ)
	b[2] = h.code
	b[3] = 0
	binary.BigEndian.PutUint32(b[4:], h.length)
	binary.BigEndian.PutUint64(b[8:], h.id)
	binary.BigEndian.PutUint32(b[16:], h.timeout)
}

// parseHeader decodes and validates a header: only the canonical encoding
// of a frame this protocol defines, with a payload of at most limit bytes,
// is accepted, before anything is allocated for the payload.
func parseHeader(b []byte, limit int) (header, error) {
	_ = b[headerSize-1]
	if b[0] != magic {
		return header{}, fmt.Errorf("bad magic byte 0x%02x, want 0x%02x: not a %s frame (out of sync?)", b[0], magic, Protocol)
	}
	h := header{
		typ:     frameType(b[1]),
		code:    b[2],
		length:  binary.BigEndian.Uint32(b[4:]),
		id:      binary.BigEndian.Uint64(b[8:]),
		timeout: binary.BigEndian.Uint32(b[16:]),
	}
	if h.typ < 1 || h.typ > maxFrameType {
		return header{}, fmt.Errorf("unknown frame type %d", b[1])
	}
	if b[3] != 0 {
		return header{}, fmt.Errorf("%s frame with flags 0x%02x, want 0", h.typ, b[3])
	}
	if uint64(h.length) > uint64(limit) {
		return header{}, fmt.Errorf("%s frame of %d bytes exceeds the limit of %d: %w", h.typ, h.length, limit, ErrFrameTooLarge)
	}
	switch h.typ {
	case frameRequest, frameError, frameRefused:
	default:
		if h.code != 0 {
			return header{}, fmt.Errorf("%s frame with code %d, want 0", h.typ, h.code)
		}
	}
	if h.typ != frameRequest && h.timeout != 0 {
		return header{}, fmt.Errorf("%s frame with a timeout", h.typ)
	}
	switch h.typ {
	case frameRequest, frameResponse, frameError, frameCancel:
		if h.id == 0 {
			return header{}, fmt.Errorf("%s frame with request ID 0", h.typ)
		}
	case frameHello, frameWelcome, frameProof, frameReady, frameGoAway:
		if h.id != 0 {
			return header{}, fmt.Errorf("%s frame with request ID %d, want 0", h.typ, h.id)
		}
	}
	var max uint32
	switch h.typ {
	case frameCancel, framePing, framePong:
		max = 0
	case frameRefused:
		if h.code < 1 || h.code > maxRefusal {
			return header{}, fmt.Errorf("refused frame with unknown code %d", h.code)
		}
		max = maxNoticePayload
	case frameGoAway:
		max = maxNoticePayload
	case frameHello, frameWelcome, frameProof, frameReady:
		max = maxHandshakePayload
	default:
		return h, nil
	}
	if h.length > max {
		return header{}, fmt.Errorf("%s frame of %d bytes, at most %d allowed", h.typ, h.length, max)
	}
	return h, nil
}

// frameReader reads the frames of one connection; one goroutine owns it.
type frameReader struct {
	br    *bufio.Reader
	limit int       // largest payload accepted (after the handshake)
	mac   *frameMAC // nil until a keyed handshake is done
	n     uint64    // frames read, for error messages
}

// read returns the next frame. The payload is freshly allocated (nil when
// empty) and owned by the caller. Every error but a clean EOF between
// frames wraps ErrProtocol (or ErrUnauthorized for a MAC failure, or
// ErrFrameTooLarge) or is the connection's I/O error.
func (r *frameReader) read() (header, []byte, error) {
	p, err := r.br.Peek(headerSize)
	if err != nil {
		if errors.Is(err, io.EOF) && len(p) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return header{}, nil, err
	}
	var hb [headerSize]byte
	copy(hb[:], p)
	h, err := parseHeader(hb[:], r.limit)
	r.n++
	if err != nil {
		return header{}, nil, fmt.Errorf("%w: frame %d: %w", ErrProtocol, r.n, err)
	}
	_, _ = r.br.Discard(headerSize)
	var payload []byte
	if h.length > 0 {
		payload = make([]byte, h.length)
		if _, err := io.ReadFull(r.br, payload); err != nil {
			return header{}, nil, eofIsUnexpected(err)
		}
	}
	if r.mac != nil {
		tag, err := r.br.Peek(tagSize)
		if err != nil {
			return header{}, nil, eofIsUnexpected(err)
		}
		ok := r.mac.verify(hb[:], payload, tag)
		_, _ = r.br.Discard(tagSize)
		if !ok {
			return header{}, nil, fmt.Errorf("%w: frame %d (%s) failed its MAC: altered, replayed or reordered in transit", ErrUnauthorized, r.n, h.typ)
		}
	}
	return h, payload, nil
}

func eofIsUnexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// appendFrame appends one whole frame (header, payload, MAC if mac is
// set) to b: for the handshake and tests; links write through their writer.
func appendFrame(b []byte, h header, payload []byte, mac *frameMAC) []byte {
	h.length = uint32(len(payload))
	off := len(b)
	b = append(b, make([]byte, headerSize)...)
	h.put(b[off:])
	b = append(b, payload...)
	if mac != nil {
		b = mac.appendTag(b, b[off:off+headerSize], payload)
	}
	return b
}
