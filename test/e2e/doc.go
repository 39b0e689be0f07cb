// Package e2e is the end-to-end suite: it builds the dynkv binary once, runs
// real `dynkv server` processes on loopback ports with their own data
// directories, and checks the guarantees of SPEC sections 3, 5 and 6 over
// HTTP, including SIGKILL in the middle of a write load and a data directory
// on a full file system.
//
// The suite needs nothing but Go; the full-disk test mounts a tmpfs and runs
// only as root. `go test -short` skips every test here, since each one starts
// node processes.
package e2e
