// Package chaos is dynkv's fault-injection suite: it starts real `dynkv
// server` processes (test/testnode), runs clients against them with a
// checker, and meanwhile kills (SIGKILL and restart), pauses (SIGSTOP and
// SIGCONT) and, as root, partitions nodes (each node in its own network
// namespace, links cut with nftables). A seeded schedule picks the faults;
// the seed is printed and DYNKV_CHAOS_SEED replays it.
//
// Three workloads, each with a checker (checker.go):
//
//   - distinct writes: every acknowledged key reads back with its value
//     after healing, and every acknowledged delete stays deleted;
//   - set-append: clients read a set, union the siblings, add an element
//     and write back with the context; every acknowledged element is in
//     the final set;
//   - convergence: after healing and with no client reads, every replica
//     of every key holds the same version set (read from each replica's
//     own store), once with hinted handoff and once with every hint wiped,
//     so that anti-entropy alone must do it.
//
// Each run prints a summary (operations, acknowledged writes, faults by
// kind, writes lost, stale reads, seconds to converge). docs/reliability.md
// says how to run it and what it does not cover.
package chaos
