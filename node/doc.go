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
// of a key. Go's HTTP server rejects some malformed request targets itself,
// before any handler runs, with a plain-text "400 Bad Request": a bad
// percent-escape in the path (for example "/kv/%zz"), ASCII control
// characters in the request target and request lines it cannot parse. Those
// requests never reach this package, so their error body is not JSON.
package node
