package transport

import (
	"bufio"
	"crypto/hmac"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
)

// The handshake runs once per connection, right after the upgrade,
// before any call (see the package doc):
//
//	client -> hello   {version 1, flags, client nonce (32), client max frame}
//	server -> welcome {version 1, flags, server nonce (32), server max frame,
//	                   server max concurrent calls, [server proof (32)]}
//	keyed only:
//	client -> proof   {client proof (32)}
//	server -> ready   {confirmation (16)}
//
// Flag bit 0 says the side is keyed. A keyed server refuses an unkeyed
// hello and a keyed client refuses an unkeyed welcome, so both ends
// authenticate each other or neither does. With T the transcript
// ("dynkv-rpc/1 handshake\n" || hello payload || welcome payload without
// the proof), Ks the key the server proves with (its first) and Kc the
// client's:
//
//	server proof = HMAC(Ks, "server proof\n" || T)
//	client proof = HMAC(Kc, "client proof\n" || T || server proof)
//	secret       = HMAC(Ks, "session\n" || HMAC(Kc, "session\n" || T))
//	c2s, s2c     = HMAC(secret, "client to server"), HMAC(secret, "server to client")
//	confirmation = HMAC(secret, "server ready")[:16]
//
// Handshake frames carry no frame MAC (a refusal can come at any step and
// is sent in the clear); every frame after ready does, under c2s or s2c.
// Each side finds the peer's key by trying its whole ring, so both know Kc
// and Ks afterwards. Fresh nonces on both sides make every session's keys
// new: a recorded handshake or frame is worthless on another connection.
// The labels differ per role, so a proof cannot be reflected back.
const (
	handshakeVersion = 1
	flagKeyed        = 1
	nonceSize        = 32
	proofSize        = 32
	confirmSize      = 16
	helloSize        = 2 + nonceSize + 4
	welcomeSize      = 2 + nonceSize + 4 + 4
)

type hello struct {
	keyed    bool
	nonce    [nonceSize]byte
	maxFrame uint32
}

type welcome struct {
	keyed    bool
	nonce    [nonceSize]byte
	maxFrame uint32
	maxCalls uint32
	proof    []byte // keyed only
}

func (h hello) encode() []byte {
	b := make([]byte, helloSize)
	b[0] = handshakeVersion
	if h.keyed {
		b[1] = flagKeyed
	}
	copy(b[2:], h.nonce[:])
	binary.BigEndian.PutUint32(b[2+nonceSize:], h.maxFrame)
	return b
}

func decodeHello(b []byte) (hello, error) {
	var h hello
	if len(b) != helloSize {
		return h, fmt.Errorf("hello of %d bytes, want %d", len(b), helloSize)
	}
	if b[0] != handshakeVersion {
		return h, fmt.Errorf("hello of handshake version %d, want %d: a peer of another version?", b[0], handshakeVersion)
	}
	if b[1]&^flagKeyed != 0 {
		return h, fmt.Errorf("hello with unknown flags 0x%02x", b[1])
	}
	h.keyed = b[1] == flagKeyed
	copy(h.nonce[:], b[2:])
	h.maxFrame = binary.BigEndian.Uint32(b[2+nonceSize:])
	if h.maxFrame == 0 {
		return h, fmt.Errorf("hello with a max frame size of 0")
	}
	return h, nil
}

// encode returns the welcome payload; body is it without the proof (the
// part the transcript covers).
func (w welcome) encode() (payload, body []byte) {
	b := make([]byte, welcomeSize, welcomeSize+proofSize)
	b[0] = handshakeVersion
	if w.keyed {
		b[1] = flagKeyed
	}
	copy(b[2:], w.nonce[:])
	binary.BigEndian.PutUint32(b[2+nonceSize:], w.maxFrame)
	binary.BigEndian.PutUint32(b[6+nonceSize:], w.maxCalls)
	return append(b, w.proof...), b
}

func decodeWelcome(b []byte) (welcome, error) {
	var w welcome
	if len(b) < welcomeSize {
		return w, fmt.Errorf("welcome of %d bytes, want at least %d", len(b), welcomeSize)
	}
	if b[0] != handshakeVersion {
		return w, fmt.Errorf("welcome of handshake version %d, want %d: a peer of another version?", b[0], handshakeVersion)
	}
	if b[1]&^flagKeyed != 0 {
		return w, fmt.Errorf("welcome with unknown flags 0x%02x", b[1])
	}
	w.keyed = b[1] == flagKeyed
	want := welcomeSize
	if w.keyed {
		want += proofSize
	}
	if len(b) != want {
		return w, fmt.Errorf("welcome (keyed %v) of %d bytes, want %d", w.keyed, len(b), want)
	}
	copy(w.nonce[:], b[2:])
	w.maxFrame = binary.BigEndian.Uint32(b[2+nonceSize:])
	w.maxCalls = binary.BigEndian.Uint32(b[6+nonceSize:])
	if w.maxFrame == 0 || w.maxCalls == 0 {
		return w, fmt.Errorf("welcome with a max frame size of %d and %d max calls, want both above 0", w.maxFrame, w.maxCalls)
	}
	if w.keyed {
		w.proof = b[welcomeSize:]
	}
	return w, nil
}

// session is what a handshake establishes.
type session struct {
	send, recv   *frameMAC // nil on an unkeyed connection
	peerMaxFrame int       // the largest payload the peer accepts
	peerMaxCalls int       // the server's cap of concurrent calls (client side)
}

var (
	transcriptLabel  = []byte(Protocol + " handshake\n")
	serverProofLabel = []byte("server proof\n")
	clientProofLabel = []byte("client proof\n")
	sessionLabel     = []byte("session\n")
	c2sLabel         = []byte("client to server")
	s2cLabel         = []byte("server to client")
	readyLabel       = []byte("server ready")
)

func sessionKeys(kc, ks, transcript []byte) (c2s, s2c *frameMAC, confirmation []byte) {
	secret := mac(ks, sessionLabel, mac(kc, sessionLabel, transcript))
	return newFrameMAC(mac(secret, c2sLabel)), newFrameMAC(mac(secret, s2cLabel)), mac(secret, readyLabel)[:confirmSize]
}

func transcript(helloPayload, welcomeBody []byte) []byte {
	t := make([]byte, 0, len(transcriptLabel)+len(helloPayload)+len(welcomeBody))
	t = append(t, transcriptLabel...)
	t = append(t, helloPayload...)
	return append(t, welcomeBody...)
}

func newNonce() ([nonceSize]byte, error) {
	var n [nonceSize]byte
	_, err := rand.Read(n[:])
	return n, err
}

func writeFrame(nc net.Conn, h header, payload []byte, m *frameMAC) error {
	_, err := nc.Write(appendFrame(nil, h, payload, m))
	return err
}

// clientHandshake runs the client's side on a freshly upgraded connection
// (deadline set by the caller). Errors wrap ErrNotDelivered.
func clientHandshake(nc net.Conn, br *bufio.Reader, keys *Keyring, maxFrame int) (session, error) {
	nonce, err := newNonce()
	if err != nil {
		return session{}, fmt.Errorf("%w: handshake: %w", ErrNotDelivered, err)
	}
	hp := hello{keyed: keys != nil, nonce: nonce, maxFrame: uint32(maxFrame)}.encode()
	if err := writeFrame(nc, header{typ: frameHello}, hp, nil); err != nil {
		return session{}, fmt.Errorf("%w: handshake: sending hello: %w", ErrNotDelivered, err)
	}
	fr := &frameReader{br: br, limit: maxNoticePayload}
	h, payload, err := fr.read()
	if err != nil {
		return session{}, fmt.Errorf("%w: handshake: reading welcome: %w", ErrNotDelivered, err)
	}
	if h.typ == frameRefused {
		return session{}, fmt.Errorf("%w: handshake: %w", ErrNotDelivered, connRefusal(h.code, payload))
	}
	if h.typ != frameWelcome {
		return session{}, fmt.Errorf("%w: handshake: %w: got a %s frame, want welcome", ErrNotDelivered, ErrProtocol, h.typ)
	}
	w, err := decodeWelcome(payload)
	if err != nil {
		return session{}, fmt.Errorf("%w: handshake: %w: %w", ErrNotDelivered, ErrProtocol, err)
	}
	s := session{peerMaxFrame: int(w.maxFrame), peerMaxCalls: int(w.maxCalls)}
	switch {
	case keys == nil && !w.keyed:
		return s, nil
	case keys == nil:
		return session{}, fmt.Errorf("%w: %w: the peer demands the keyed handshake and this node has no key: set the cluster's --gossip-key", ErrNotDelivered, ErrUnauthorized)
	case !w.keyed:
		return session{}, fmt.Errorf("%w: %w: the peer does not prove a cluster key (it runs without --gossip-key)", ErrNotDelivered, ErrUnauthorized)
	}
	_, body := w.encode()
	t := transcript(hp, body)
	ks, ok := keys.match(w.proof, serverProofLabel, t)
	if !ok {
		return session{}, fmt.Errorf("%w: %w: the peer's proof matches none of this node's keys: its --gossip-key differs", ErrNotDelivered, ErrUnauthorized)
	}
	kc, proof := keys.prove(clientProofLabel, t, w.proof)
	if err := writeFrame(nc, header{typ: frameProof}, proof, nil); err != nil {
		return session{}, fmt.Errorf("%w: handshake: sending proof: %w", ErrNotDelivered, err)
	}
	var confirm []byte
	s.send, s.recv, confirm = sessionKeys(kc, ks, t)
	h, payload, err = fr.read()
	if err != nil {
		return session{}, fmt.Errorf("%w: handshake: reading ready: %w", ErrNotDelivered, err)
	}
	if h.typ == frameRefused {
		return session{}, fmt.Errorf("%w: handshake: %w", ErrNotDelivered, connRefusal(h.code, payload))
	}
	if h.typ != frameReady {
		return session{}, fmt.Errorf("%w: handshake: %w: got a %s frame, want ready", ErrNotDelivered, ErrProtocol, h.typ)
	}
	if !hmac.Equal(payload, confirm) {
		return session{}, fmt.Errorf("%w: %w: the peer's ready does not confirm the session (altered in transit?)", ErrNotDelivered, ErrUnauthorized)
	}
	return s, nil
}

// serverHandshake runs the server's side (deadline set by the caller).
// On a refusal it tells the client why before returning the error.
func serverHandshake(nc net.Conn, br *bufio.Reader, keys *Keyring, maxFrame, maxCalls int) (session, error) {
	fr := &frameReader{br: br, limit: maxHandshakePayload}
	refuse := func(code byte, format string, args ...any) (session, error) {
		notice := fmt.Sprintf(format, args...)
		_ = writeFrame(nc, header{typ: frameRefused, code: code}, []byte(notice), nil)
		if code == refusedUnauthorized {
			return session{}, fmt.Errorf("%w: %s", ErrUnauthorized, notice)
		}
		return session{}, fmt.Errorf("%w: %s", ErrProtocol, notice)
	}
	h, payload, err := fr.read()
	if err != nil {
		if errors.Is(err, ErrProtocol) {
			return refuse(refusedProtocol, "%v", err)
		}
		return session{}, fmt.Errorf("reading hello: %w", err)
	}
	if h.typ != frameHello {
		return refuse(refusedProtocol, "got a %s frame, want hello", h.typ)
	}
	hl, err := decodeHello(payload)
	if err != nil {
		return refuse(refusedProtocol, "%v", err)
	}
	if keys != nil && !hl.keyed {
		return refuse(refusedUnauthorized, "this node demands the keyed handshake (--gossip-key) and the caller has no key: it is not a cluster member, or runs without the cluster's --gossip-key")
	}
	s := session{peerMaxFrame: int(hl.maxFrame)}
	nonce, err := newNonce()
	if err != nil {
		return session{}, err
	}
	w := welcome{keyed: keys != nil, nonce: nonce, maxFrame: uint32(maxFrame), maxCalls: uint32(maxCalls)}
	if keys == nil {
		// A keyed client refuses this welcome itself.
		wp, _ := w.encode()
		return s, writeFrame(nc, header{typ: frameWelcome}, wp, nil)
	}
	_, body := w.encode()
	t := transcript(payload, body)
	ks, proofS := keys.prove(serverProofLabel, t)
	w.proof = proofS
	wp, _ := w.encode()
	if err := writeFrame(nc, header{typ: frameWelcome}, wp, nil); err != nil {
		return session{}, err
	}
	h, payload, err = fr.read()
	if err != nil {
		if errors.Is(err, ErrProtocol) {
			return refuse(refusedProtocol, "%v", err)
		}
		return session{}, fmt.Errorf("reading proof: %w", err)
	}
	if h.typ != frameProof || len(payload) != proofSize {
		return refuse(refusedProtocol, "got a %s frame of %d bytes, want a proof of %d", h.typ, len(payload), proofSize)
	}
	kc, ok := keys.match(payload, clientProofLabel, t, proofS)
	if !ok {
		return refuse(refusedUnauthorized, "the caller's proof matches none of this node's keys: its --gossip-key differs")
	}
	c2s, s2c, confirm := sessionKeys(kc, ks, t)
	s.send, s.recv = s2c, c2s
	return s, writeFrame(nc, header{typ: frameReady}, confirm, nil)
}
