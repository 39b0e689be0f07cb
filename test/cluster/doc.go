// Package cluster is the end-to-end suite of the Dynamo cluster (issue 3):
// real `dynkv server` processes on distinct loopback addresses, started,
// joined, killed, paused and restarted through test/testnode, checked only
// through the HTTP API a user has (plus the internal debug read that
// counts a key's local copies).
//
// The suite is skipped with -short. With -race the servers are built with
// -race too. DYNKV_TEST_BIN runs it against a given binary instead of
// building one. Random choices print their seed; set DYNKV_TEST_SEED to
// replay one.
package cluster
