// Package reptest holds the helpers the tests of the replication rooms
// (rpc, hints, handoff, antientropy) share: a store opened for a test (and
// one damaged on disk), a sample set, a goroutine leak check and a bounded
// context. It imports no room, so rpc's own tests use it too; the helpers
// that need rpc are replication/internal/rpctest's. It is imported by
// tests only.
package reptest
