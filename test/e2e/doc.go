// Package e2e is the end-to-end suite: through the shared harness in
// test/testnode it builds the dynkv binary once, runs
// real `dynkv server` processes on free loopback ports with their own data
// directories, and checks the guarantees of SPEC sections 2, 3, 5 and 6 over
// HTTP and the CLI: SIGKILL in the middle of a write load, a damaged or torn
// WAL, a data directory on a full file system, siblings and their
// resolution, TTLs and tombstones across restarts, and malformed input.
//
// The suite needs nothing but Go; the full-disk test mounts a tmpfs and runs
// only as root. Under -race the server binary is built with -race too, and a
// race report in any node's output fails the test. `go test -short` skips
// every test here, since each one starts node processes.
//
// Environment, for reproducing a failure:
//
//	DYNKV_E2E_SEED=N   replay a randomised test with the seed it printed
//	DYNKV_TEST_BIN=path test a given dynkv binary instead of building one
//
// Every other DYNKV_* variable is removed from the environment of the
// processes the suite starts.
package e2e
