// Package node assembles one dynkv node: its configuration, its lifecycle
// (open the store, listen, drain, close) and its client HTTP API (SPEC
// section 3).
//
// This is the single-node foundation. Requests are served by the local
// store directly; the quorum parameters r and w are validated and capped to
// the member count (one) so that clients written against a cluster work
// unchanged. The coordinator, gossip membership, node-to-node RPC and the
// Redis-protocol listener plug in here later; the settings they need are
// already part of Config so that cmd/dynkv exposes every flag of SPEC
// section 2 from the start.
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
