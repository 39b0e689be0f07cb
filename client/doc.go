// Package client is the Go client of dynkv's HTTP API (SPEC section 3).
//
// A Client talks to any node of a cluster: every node accepts every request
// and coordinates it, so the client needs no knowledge of the ring. It fails
// over across the addresses it was given and retries, with bounded
// exponential backoff, the answers that say "try again" (503 quorum not
// reached, 429 load shed) and connection errors. The next node is tried at
// once; the client backs off only after every node failed in a round.
//
// Causality travels as an opaque context string (the X-Context header). A
// read-modify-write passes the context of the Get to the Put, so the write
// supersedes exactly the versions that were read; concurrent writes become
// siblings, which Get returns together with one context covering all of them.
//
// Retrying a write after a 503 is safe but not free: the first attempt may
// have reached some replicas, and the retry then becomes a concurrent
// sibling carrying the same value. Use WithRetries(0) where that matters.
package client
