// Command dynkv is the one binary of dynkv (SPEC section 2): `dynkv server`
// runs a node; put, get, delete and cluster talk to a node over HTTP with
// package client; bench is a load generator.
//
// Exit status: 0 success, 1 a read found nothing, 2 usage error (including
// a request the server rejected as malformed: 400 or 413), 3 server,
// quorum or connection error. Every failure prints one line on stderr.
//
// The command logic is run(args, env, stdin, stdout, stderr), so tests
// drive it without a process, a real environment or real terminals.
package main
