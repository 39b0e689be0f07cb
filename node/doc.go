// Package node assembles one dynkv node: its configuration, its lifecycle
// and the wiring of its parts. The front ends are rooms of their own that
// know the node only through a small Backend interface: node/httpapi (the
// HTTP API of SPEC section 3; http.go mounts the cluster and node-to-node
// endpoints in it) and node/resp (the Redis protocol, SPEC section 4;
// redis.go). node/metrics is the Prometheus registry, fed at scrape time
// by metrics_collector.go; node/internal/authguard delays and throttles
// failed client authentications for both front ends.
//
// Start listens on the HTTP address first, so that the address peers are
// told is the one actually bound (port 0 in tests), then starts gossip
// membership (joining --join), the node-to-node RPC client, the coordinator
// and the ownership-handoff worker, and serves. Shutdown reverses it: HTTP
// drains the client requests in flight and the node-to-node transport its
// peers' calls, then the coordinator, handoff and gossip stop, and the
// store closes last so the WAL ends cleanly.
//
// Client reads and writes go through the coordinator, which routes them to
// the key's preference list; a node started without --join founds a
// one-node cluster and serves exactly as a single node would. Node-to-node
// RPC shares the HTTP port: peers upgrade an HTTP/1.1 connection to the
// node-to-node transport at /internal/v1/rpc (replication/rpc/transport); the
// server also speaks HTTP/2 (h2c with prior knowledge on a plain listener,
// h2 by ALPN under TLS), for clients and for the HTTP/2 RPC of nodes of
// older versions. The RPC paths under /internal/v1/ sit outside the client
// in-flight limit so that an overloaded node still answers its peers'
// replica writes.
//
// Node-to-node authentication (peerauth.go) admits only members to the RPC
// (replica reads and writes, hints, anti-entropy, handoff); every check
// the flags turn on must pass:
//
//   - --tls-ca: mutual TLS; the caller presents a certificate the CA
//     issued (checked on the transport's upgrade request, and on every
//     HTTP/2 call).
//   - --gossip-key: the caller holds a key derived from the gossip keys:
//     over the transport both sides prove theirs in a keyed handshake and
//     every frame carries an HMAC-SHA256 tag (transport.Keyring); over the
//     HTTP/2 RPC every call is signed with HMAC-SHA256
//     (rpc.PeerKeys), the header checked before the body is read.
//     The first key proves, every key is accepted, so it rotates with the
//     gossip keyring.
//   - neither, but --auth-token: the bearer-token fallback; a node presents
//     the first of its --auth-token list to its peers (members share the
//     list) and any client holding a token is trusted as a peer. Weaker:
//     set --gossip-key or --tls-ca instead.
//   - none: the RPC is open to anyone who reaches the HTTP port; the node
//     logs one warning at start unless --http-addr is a loopback address.
//
// A refused upgrade gets 401, a refused handshake a refusal frame, a
// refused HTTP/2 call 401 as an RPC error frame. The debug routes under
// /internal/v1/debug/ are client endpoints behind the client tokens.
//
// The Redis protocol (SPEC section 4, docs/redis.md) listens on its own
// port (--resp-addr, node/resp) and serves its commands through the same
// coordinator and in-flight limit as the HTTP API. Shutdown stops it
// first: connections answer what they have read, then close.
//
// GET /internal/v1/debug/local/{db}/{key} returns this node's own copy of a
// key, bypassing the coordinator, so that tests can count replicas.
//
// Keys travel in the URL path. The handlers take the path as the client
// sent it (URL.EscapedPath) and percent-decode it once, so "%2F" is a key
// byte rather than a path separator and any byte, including NUL, can be part
// of a key; a literal "/" and "%2F" name the same key.
//
// Go's HTTP server rejects some request targets itself, before any handler
// runs, with a plain-text "400 Bad Request" (pinned down by
// TestGoServerRejectsMalformedTargetsBeforeRouting): a bad percent-escape
// in the path ("/kv/%zz", "/kv/%", "/kv/%2"), raw ASCII control bytes
// (0x00-0x1f, 0x7f) or spaces in the target, and targets that do not start
// with "/". Those requests never reach this package, so their error body
// is not JSON. Raw bytes >= 0x80 and a raw "#" do reach it and are key
// bytes. A malformed query string ("?ttl=%zz") reaches the node and gets a
// JSON 400.
package node
