// Package ratelimit is the token bucket that paces dynkv's background
// traffic, ownership handoff (replication/handoff) and anti-entropy
// (replication/antientropy), and the clock it runs on, which tests replace
// with a FakeClock.
package ratelimit
