package node

import (
	"net"
	"net/http"

	"go.uber.org/zap"

	"github.com/dynkv/dynkv/replication/rpc"
	"github.com/dynkv/dynkv/replication/rpc/transport"
)

// peerPolicy is how node-to-node RPC (/internal/v1/ except debug/) tells a
// member from a stranger; see the package doc. Each check it names must
// pass.
type peerPolicy struct {
	// mutualTLS (--tls-ca): the caller presents a certificate the CA
	// issued.
	mutualTLS bool
	// signed (--gossip-key): the caller holds a key derived from the
	// gossip keys: over the transport it proves so in the keyed handshake
	// and every frame carries a MAC (transport.Keyring); over the HTTP/2
	// RPC of older nodes every request carries an HMAC signature
	// (rpc.PeerKeys).
	signed bool
	// bearer (--auth-token, and neither of the above): the caller carries
	// a client token. Weaker: every client holding a token is trusted as a
	// peer.
	bearer bool
}

func (n *Node) peerPolicy() peerPolicy {
	p := peerPolicy{mutualTLS: n.cfg.TLSCA != "", signed: n.cfg.GossipKey != ""}
	p.bearer = !p.mutualTLS && !p.signed && len(n.tokens) > 0
	return p
}

func (p peerPolicy) open() bool { return !p.mutualTLS && !p.signed && !p.bearer }

// authorizePeer is transport.Server.Authorize (checked on the upgrade
// request) and rpc.Server.Authorize (the HTTP/2 RPC, on every
// request): the mutual-TLS and bearer-token checks. The keys are checked
// by the servers themselves: the transport's in its handshake and on every
// frame, the HTTP/2 RPC's signature before and after the body
// (rpc.Server.PeerKeys).
func (n *Node) authorizePeer(r *http.Request) bool {
	p := n.peerPolicy()
	if p.mutualTLS && (r.TLS == nil || len(r.TLS.VerifiedChains) == 0) {
		return false
	}
	if p.bearer && !n.tokens.ValidBearer(r.Header.Get("Authorization")) {
		return false
	}
	return true
}

// peerToken is the bearer token this node presents to its peers under the
// bearer policy: members of one cluster share the --auth-token list, so the
// first one will do. Under the other policies no client token is sent to
// peers.
func (n *Node) peerToken() string {
	if !n.peerPolicy().bearer || len(n.cfg.AuthTokens) == 0 {
		return ""
	}
	return n.cfg.AuthTokens[0]
}

// peerAuth is the policy as the transport, the replication server and
// the client take it: the Authorize check (nil when there is none), the
// keyring of the transport's keyed handshake and the keys that demand and
// make the HTTP/2 RPC's signatures (both nil when unsigned). It warns once
// when the RPC is open to anyone who reaches a non-loopback HTTP address.
func (n *Node) peerAuth(gossipKeys [][]byte) (authorize func(*http.Request) bool, ring *transport.Keyring, keys *rpc.PeerKeys, err error) {
	p := n.peerPolicy()
	if p.mutualTLS || p.bearer {
		authorize = n.authorizePeer
	}
	if p.signed {
		if ring, err = transport.NewKeyring(gossipKeys); err != nil {
			return nil, nil, nil, err
		}
		if keys, err = rpc.NewPeerKeys(gossipKeys); err != nil {
			return nil, nil, nil, err
		}
	}
	if p.open() && !loopbackAddr(n.cfg.HTTPAddr) {
		n.log.Warn("node-to-node RPC is unauthenticated: anyone who reaches --http-addr can read and write replicas; "+
			"set --gossip-key (signed RPC) or --tls-cert, --tls-key and --tls-ca (mutual TLS)",
			zap.String("http_addr", n.cfg.HTTPAddr))
	}
	return authorize, ring, keys, nil
}

// loopbackAddr reports whether host:port listens on loopback only.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
