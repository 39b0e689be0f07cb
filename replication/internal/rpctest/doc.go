// Package rpctest holds the test helpers of the replication rooms that
// need replication/rpc: a node-to-node server on a real socket (Serve), a
// client closed with the test (NewClient) and the end-to-end check of a
// room's registered call (CheckServe). It is imported by tests only.
package rpctest
