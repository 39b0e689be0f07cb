// Package testnode runs real `dynkv server` processes for end-to-end and
// chaos suites: it builds the binary once per test process, starts
// clusters of nodes on distinct loopback addresses, kills, stops, pauses
// and restarts them, and speaks the HTTP API (client, cluster and the
// internal debug read) with exact statuses and bodies, so a test can say
// what it expected and what it got.
//
// Where a node lives is behind the Network interface: the default puts node
// i on 127.0.0.<10+i> (Linux routes all of 127/8 to the loopback device);
// Namespaces (root only) puts each node in a network namespace of its own
// and cuts and heals links between them with nftables, for partitions.
//
// Nothing here calls t.Fatal from a goroutine other than the test's: the
// HTTP helpers return errors, and the lifecycle methods that fail the test
// are documented as test-goroutine only.
package testnode
