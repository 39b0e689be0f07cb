package transport

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
)

// keyLabel derives the transport's keys from the cluster secrets (the
// gossip keys), so that neither an AES gossip key nor the HTTP RPC's
// signing key (rpc.PeerKeys, label "dynkv node-to-node rpc v1")
// is ever used directly here.
const keyLabel = "dynkv node-to-node transport v1"

// Keyring holds the keys of the keyed handshake, derived one per cluster
// secret as HMAC-SHA256(secret, "dynkv node-to-node transport v1"). The
// first key proves this node; every key is accepted from a peer, so a
// cluster rotates its secrets by rolling restarts in the gossip keyring's
// order: add the new secret everywhere, make it first everywhere, drop the
// old one. Immutable; safe for concurrent use.
type Keyring struct {
	keys [][]byte
}

// NewKeyring derives a Keyring from secrets, first the one that proves
// this node. It returns nil when secrets is empty (no keyed handshake);
// an empty secret is an error.
func NewKeyring(secrets [][]byte) (*Keyring, error) {
	if len(secrets) == 0 {
		return nil, nil
	}
	k := &Keyring{}
	for i, s := range secrets {
		if len(s) == 0 {
			return nil, fmt.Errorf("transport: cluster secret %d of %d is empty", i+1, len(secrets))
		}
		m := hmac.New(sha256.New, s)
		m.Write([]byte(keyLabel))
		k.keys = append(k.keys, m.Sum(nil))
	}
	return k, nil
}

// Len is the number of keys.
func (k *Keyring) Len() int { return len(k.keys) }

// mac is HMAC-SHA256(key, parts...).
func mac(key []byte, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

// prove is this node's proof over parts, under its first key.
func (k *Keyring) prove(parts ...[]byte) (key, proof []byte) {
	return k.keys[0], mac(k.keys[0], parts...)
}

// match returns the key under which proof is the MAC of parts, trying
// every key.
func (k *Keyring) match(proof []byte, parts ...[]byte) ([]byte, bool) {
	for _, key := range k.keys {
		if hmac.Equal(mac(key, parts...), proof) {
			return key, true
		}
	}
	return nil, false
}
