package rpc

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Node-to-node calls are signed with HMAC-SHA256 over a cluster secret
// (the gossip keys, --gossip-key) so that only members can call them when
// mutual TLS is not in use. A signed request carries one header:
//
//	X-Dynkv-Auth: v1 t=<unix seconds> n=<nonce, 32 hex> h=<header MAC, 64 hex> b=<body MAC, 64 hex>
//
// The header MAC covers the version, method, path, time, Content-Length and
// nonce; the server checks it before it reads a body of up to MaxFrameBytes,
// so a stranger costs it one MAC over a few dozen bytes. The body MAC covers
// the header MAC and the body, checked once the body is in. Every request
// within MaxPeerClockSkew of the verifier's clock is accepted: a recorded
// request can be replayed within that window (an on-path observer without
// TLS reads all the data anyway; mutual TLS is the answer there). Responses
// are not signed.
const (
	// PeerAuthHeader is the request header that carries the signature.
	PeerAuthHeader = "X-Dynkv-Auth"
	// MaxPeerClockSkew is how far a request's signing time may be from the
	// verifier's clock, either way.
	MaxPeerClockSkew = 5 * time.Minute

	peerAuthVersion = "v1"
	peerNonceBytes  = 16
	// maxPeerAuthHeader bounds the header before it is parsed; a good one
	// is about 190 bytes.
	maxPeerAuthHeader = 256
	// peerKeyLabel derives the MAC keys from the secrets, so that a gossip
	// key is never used directly as a MAC key.
	peerKeyLabel = "dynkv node-to-node rpc v1"
)

// ErrPeerAuth is wrapped by every refusal of a node-to-node signature.
var ErrPeerAuth = errors.New("replication: node-to-node authentication failed")

// PeerKeys signs and verifies node-to-node requests. The first key signs;
// every key verifies, so a cluster rotates keys by a rolling restart (new
// key added everywhere, then made first, then the old one dropped), the
// same order as the gossip keyring. Safe for concurrent use; immutable.
type PeerKeys struct {
	keys []*macKey
}

// macKey is one derived MAC key with a pool of keyed HMACs: hmac.New
// costs more than a small request's MAC, and a reset HMAC restores its
// keyed state without rehashing the key.
type macKey struct {
	pool sync.Pool // of hash.Hash
}

func newMACKey(key []byte) *macKey {
	k := &macKey{}
	k.pool.New = func() any { return hmac.New(sha256.New, key) }
	return k
}

// sum returns the HMAC of the concatenated parts.
func (k *macKey) sum(parts ...[]byte) [sha256.Size]byte {
	m := k.pool.Get().(hash.Hash)
	m.Reset()
	for _, p := range parts {
		m.Write(p)
	}
	var out [sha256.Size]byte
	m.Sum(out[:0])
	k.pool.Put(m)
	return out
}

// NewPeerKeys derives one MAC key per secret as HMAC-SHA256(secret,
// "dynkv node-to-node rpc v1"). It returns nil when secrets is empty: no
// signing, no verification. Empty secrets are an error.
func NewPeerKeys(secrets [][]byte) (*PeerKeys, error) {
	if len(secrets) == 0 {
		return nil, nil
	}
	k := &PeerKeys{}
	for i, s := range secrets {
		if len(s) == 0 {
			return nil, fmt.Errorf("replication: node-to-node secret %d of %d is empty", i+1, len(secrets))
		}
		k.keys = append(k.keys, newMACKey(deriveMACKey(s)))
	}
	return k, nil
}

// Sign sets the PeerAuthHeader of req, whose body is body, with the first
// key. req's ContentLength must be len(body) (http.NewRequest sets it for
// a bytes.Reader).
func (k *PeerKeys) Sign(req *http.Request, body []byte, now time.Time) error {
	var nonce [peerNonceBytes]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return fmt.Errorf("replication: signing request: %w", err)
	}
	a := peerAuth{unix: now.Unix(), nonce: nonce}
	key := k.keys[0]
	a.headerMAC = headerMAC(key, req.Method, req.URL.Path, a.unix, int64(len(body)), a.nonce)
	a.bodyMAC = bodyMAC(key, a.headerMAC, body)
	req.Header[PeerAuthHeader] = []string{a.String()}
	return nil
}

// PeerSignature is a request whose header MAC was verified; its body is
// still to be checked with VerifyBody.
type PeerSignature struct {
	key  *macKey
	auth peerAuth
}

// VerifyHeader checks the signature header of r against every key and the
// clock, before r's body is read. The error wraps ErrPeerAuth and says why
// in words an operator can act on.
func (k *PeerKeys) VerifyHeader(r *http.Request, now time.Time) (PeerSignature, error) {
	vals := r.Header.Values(PeerAuthHeader)
	if len(vals) == 0 {
		return PeerSignature{}, fmt.Errorf("%w: no %s header: the caller is not a cluster member, or runs without this cluster's --gossip-key", ErrPeerAuth, PeerAuthHeader)
	}
	if len(vals) > 1 {
		return PeerSignature{}, fmt.Errorf("%w: %d %s headers, want one", ErrPeerAuth, len(vals), PeerAuthHeader)
	}
	a, err := parsePeerAuth(vals[0])
	if err != nil {
		return PeerSignature{}, fmt.Errorf("%w: %v", ErrPeerAuth, err)
	}
	// The MAC first: the clock message below may only be shown to a
	// caller that holds the key.
	var key *macKey
	for _, kk := range k.keys {
		want := headerMAC(kk, r.Method, r.URL.Path, a.unix, r.ContentLength, a.nonce)
		if hmac.Equal(want[:], a.headerMAC[:]) {
			key = kk
			break
		}
	}
	if key == nil {
		return PeerSignature{}, fmt.Errorf("%w: the signature matches none of this node's keys: the caller's --gossip-key differs (or the request was altered)", ErrPeerAuth)
	}
	if skew := now.Sub(time.Unix(a.unix, 0)); skew > MaxPeerClockSkew || skew < -MaxPeerClockSkew {
		dir := "behind"
		if skew < 0 {
			dir, skew = "ahead of", -skew
		}
		return PeerSignature{}, fmt.Errorf("%w: request signed at %s, the caller's clock is %s %s this node's (limit %s): check NTP on both nodes",
			ErrPeerAuth, time.Unix(a.unix, 0).UTC().Format(time.RFC3339), skew.Truncate(time.Second), dir, MaxPeerClockSkew)
	}
	return PeerSignature{key: key, auth: a}, nil
}

// VerifyBody checks the body MAC of a request whose header VerifyHeader
// accepted.
func (s PeerSignature) VerifyBody(body []byte) error {
	if s.key == nil {
		return fmt.Errorf("%w: header not verified", ErrPeerAuth)
	}
	want := bodyMAC(s.key, s.auth.headerMAC, body)
	if !hmac.Equal(want[:], s.auth.bodyMAC[:]) {
		return fmt.Errorf("%w: the body does not match its signature (altered in transit)", ErrPeerAuth)
	}
	return nil
}

// peerAuth is the parsed PeerAuthHeader.
type peerAuth struct {
	unix      int64
	nonce     [peerNonceBytes]byte
	headerMAC [sha256.Size]byte
	bodyMAC   [sha256.Size]byte
}

func (a peerAuth) String() string {
	b := make([]byte, 0, 200)
	b = append(b, peerAuthVersion+" t="...)
	b = strconv.AppendInt(b, a.unix, 10)
	b = append(b, " n="...)
	b = hex.AppendEncode(b, a.nonce[:])
	b = append(b, " h="...)
	b = hex.AppendEncode(b, a.headerMAC[:])
	b = append(b, " b="...)
	b = hex.AppendEncode(b, a.bodyMAC[:])
	return string(b)
}

// parsePeerAuth parses "v1 t=<unix> n=<hex> h=<hex> b=<hex>": exactly
// these fields, in this order, single spaces.
func parsePeerAuth(s string) (peerAuth, error) {
	var a peerAuth
	if len(s) > maxPeerAuthHeader {
		return a, fmt.Errorf("%s header of %d bytes, longer than %d", PeerAuthHeader, len(s), maxPeerAuthHeader)
	}
	fields := strings.Split(s, " ")
	if len(fields) == 0 || fields[0] != peerAuthVersion {
		return a, fmt.Errorf("%s header does not start with %q: a caller of another version?", PeerAuthHeader, peerAuthVersion)
	}
	if len(fields) != 5 {
		return a, fmt.Errorf("%s header has %d fields, want 5 (v1 t= n= h= b=)", PeerAuthHeader, len(fields))
	}
	t, ok := strings.CutPrefix(fields[1], "t=")
	if !ok {
		return a, fmt.Errorf("%s header field 2 is %q, want t=<unix seconds>", PeerAuthHeader, fields[1])
	}
	unix, err := strconv.ParseInt(t, 10, 64)
	if err != nil || unix < 0 || t != strconv.FormatInt(unix, 10) {
		return a, fmt.Errorf("%s header time %q is not a canonical non-negative decimal", PeerAuthHeader, t)
	}
	a.unix = unix
	for i, f := range []struct {
		prefix string
		dst    []byte
	}{{"n=", a.nonce[:]}, {"h=", a.headerMAC[:]}, {"b=", a.bodyMAC[:]}} {
		v, ok := strings.CutPrefix(fields[2+i], f.prefix)
		if !ok {
			return a, fmt.Errorf("%s header field %d is %q, want %s<hex>", PeerAuthHeader, 3+i, fields[2+i], f.prefix)
		}
		if len(v) != 2*len(f.dst) {
			return a, fmt.Errorf("%s header %s has %d hex digits, want %d", PeerAuthHeader, f.prefix, len(v), 2*len(f.dst))
		}
		if strings.ContainsAny(v, "ABCDEF") {
			return a, fmt.Errorf("%s header %s has upper-case hex digits, want lower-case", PeerAuthHeader, f.prefix)
		}
		if _, err := hex.Decode(f.dst, []byte(v)); err != nil {
			return a, fmt.Errorf("%s header %s: %v", PeerAuthHeader, f.prefix, err)
		}
	}
	return a, nil
}

// deriveMACKey is HMAC-SHA256(secret, peerKeyLabel).
func deriveMACKey(secret []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(peerKeyLabel))
	return m.Sum(nil)
}

// headerMAC authenticates what the server knows before reading the body.
// Fields are newline-separated; method and path cannot contain a newline
// (HTTP forbids it), so the encoding is unambiguous.
func headerMAC(key *macKey, method, path string, unix, length int64, nonce [peerNonceBytes]byte) [sha256.Size]byte {
	b := make([]byte, 0, 128)
	b = append(b, "dynkv-rpc-header "+peerAuthVersion+"\n"...)
	b = append(b, method...)
	b = append(b, '\n')
	b = append(b, path...)
	b = append(b, '\n')
	b = strconv.AppendInt(b, unix, 10)
	b = append(b, '\n')
	b = strconv.AppendInt(b, length, 10)
	b = append(b, '\n')
	b = append(b, nonce[:]...)
	return key.sum(b)
}

var bodyLabel = []byte("dynkv-rpc-body " + peerAuthVersion + "\n")

// bodyMAC chains the body to its header MAC, so a body cannot be moved
// under another request's header.
func bodyMAC(key *macKey, header [sha256.Size]byte, body []byte) [sha256.Size]byte {
	return key.sum(bodyLabel, header[:], body)
}
