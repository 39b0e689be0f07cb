// Package transport is dynkv's node-to-node request/response transport:
// length-prefixed binary frames over persistent TCP (or TLS) connections,
// one (or a few, ClientConfig.ConnsPerPeer) per peer, on which request IDs
// multiplex any number of concurrent calls and responses come back in
// whatever order the handlers finish. It carries opaque payloads and a call
// byte; the replication package gives them meaning (codec.go).
//
// It replaces HTTP/2 between nodes, which cost about 40% of a node's CPU
// (docs/benchmarks.md): no header parsing or HPACK on the hot path, no
// flow-control windows, no per-call goroutine pair on the client, and
// frames queued by concurrent callers leave in one write.
//
// # How it is reached: an HTTP/1.1 Upgrade on the HTTP port
//
// The client sends "GET /internal/v1/rpc HTTP/1.1" with "Connection:
// Upgrade" and "Upgrade: dynkv-rpc/1" (and "Authorization: Bearer" when a
// token is configured); Server.ServeHTTP checks it, answers "101 Switching
// Protocols" and takes the connection over from net/http. We chose the
// upgrade over sniffing the first bytes of each connection because it
// needs no flag and no port, and it goes through everything the HTTP
// listener already does: the connection limit (--http-max-conns), TLS
// (under TLS the client offers ALPN "http/1.1" only, since an HTTP/2
// stream cannot be taken over), the router, and the RPC's authorization
// on an *http.Request (client certificate, bearer token) exactly as the
// HTTP/2 RPC checks it today. Sniffing would have to sit under TLS, inside
// the listener, and re-implement those. The upgrade costs one small
// HTTP/1.1 exchange per connection, not per call, and a node of an older
// version answers it with a 404 (ErrNotSupported), so a caller can fall
// back to HTTP/2 during a rolling upgrade.
//
// # Frames
//
// Every frame is a 20-byte header, the payload, and on a keyed connection
// a 16-byte MAC (frame.go has the layout): magic byte 0xD1, type, a code
// byte (the call of a request, the code of an error), reserved flags,
// the payload length, the request ID and, in requests, the caller's
// remaining deadline in microseconds, from which the server builds the
// handler's context. The decoder checks the magic, the type, every field
// the type forbids and the length against its limit (64 MiB by default,
// a few hundred bytes before the handshake is done) before it allocates,
// and accepts only canonical headers; FuzzReadFrame covers it. A frame
// that fails any check closes the connection, after the server has told
// the client why in a refused frame; the server stays up.
//
// Client to server: request, cancel (the caller gave up: the handler's
// context is cancelled), ping. Server to client: response, error (the
// handler returned an error: a code byte and opaque detail, see Error),
// refused (not run: the connection's cap was reached or the server is
// draining; or run, but the response exceeds the limit the client
// announced; or, with ID 0, why the server closes the connection), pong,
// goaway (no new calls on this connection).
//
// # Goroutines and limits
//
// Each connection has a writer goroutine that takes every frame queued
// since its last write and writes them at once (one write, or writev when
// large payloads ride along), and a reader goroutine: on the client it
// hands each response to the caller waiting on that ID; on the server it
// starts a goroutine per request, at most Server.MaxConcurrentCalls per
// connection. The server never blocks its reader on a full handler set: a
// request beyond the cap is answered at once with a refusal (ErrBusy,
// not run), so one slow call cannot stall the connection. The server
// announces its cap and its frame limit in the handshake and the client
// keeps to the lower of its own and the server's, waiting on its side,
// within the caller's context, for a slot: each side enforces only its own
// limits, and peers need not be configured alike (unlike
// --http2-max-streams). Clients ping every 10s and drop a connection on
// which a ping went unanswered for a whole interval with nothing else
// arriving; servers drop one that sent nothing for 2m.
//
// Frames are not split: a large payload (a 64 MiB handoff batch at most)
// holds its connection for as long as it takes to write, which is why a
// client may keep more than one connection per peer.
//
// # Security
//
// Every check configured must pass, as with the HTTP/2 RPC:
//
//   - TLS (ClientConfig.TLS, the HTTP server's own TLS): the connection is
//     TLS; with a CA, Server.Authorize demands a verified client
//     certificate (mutual TLS), checked on the upgrade request.
//   - A Keyring (derived from the gossip keys): a challenge-response
//     handshake in both directions (handshake.go), with nonces from both
//     sides, each side proving itself with its first key and accepting
//     any key of its ring, so rolling key rotation works. It derives a
//     key per direction for the session, and every later frame carries
//     a truncated HMAC-SHA256 over an implicit per-direction sequence
//     number, header and payload: a frame altered, injected, reordered
//     or replayed (within the connection or onto another) fails, and the
//     connection closes with ErrUnauthorized. Unlike the HTTP/2 RPC's
//     signatures there is no clock and no five-minute replay window, and
//     responses are authenticated too. The payload travels in the clear
//     without TLS.
//   - Neither: Server.Authorize checks the client bearer token sent with
//     the upgrade (the node's policy), or, with nothing configured, the
//     transport is open, as the HTTP/2 RPC is.
//
// A refusal of the upgrade or the handshake fails the call with an error
// wrapping both ErrNotDelivered and ErrUnauthorized.
//
// # Errors
//
// A failed Call is an *Error (the handler ran and failed) or wraps exactly
// one of ErrNotDelivered (the peer certainly did not run it: safe to send
// elsewhere, like rpc.ErrUnreachable) and ErrOutcomeUnknown (the
// request was written, then the connection broke or the caller stopped
// waiting), along with the reason.
package transport
