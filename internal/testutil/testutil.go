// Package testutil holds the helpers tests across dynkv share: the seed of
// a randomised test, which an environment variable replays, a poll with a
// deadline and a clock that moves by hand (FakeClock). Its subpackage
// storetest opens stores for the packages above the store. It is imported
// by tests only.
package testutil

import (
	"os"
	"strconv"
	"testing"
	"time"
)

// SeedEnv is the environment variable that replays the randomised unit
// tests (the end-to-end and chaos suites have their own, named in their
// package docs).
const SeedEnv = "DYNKV_TEST_SEED"

// Seed is the seed of a randomised test: the value of the environment
// variable env when set, to replay a failure, else the clock. It logs the
// seed with the variable that replays it and fails tb on a malformed value.
func Seed(tb testing.TB, env string) uint64 {
	tb.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(env); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			tb.Fatalf("%s=%q: %v", env, s, err)
		}
		seed = v
	}
	tb.Logf("seed %d (replay with %s=%d)", seed, env, seed)
	return seed
}

// Eventually polls cond every interval until it holds, and fails tb with
// what when within passes first. The deadline only bounds a broken test;
// it asserts nothing about speed, so make it generous.
func Eventually(tb testing.TB, within, interval time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("gave up after %s waiting for %s", within, what)
		}
		time.Sleep(interval)
	}
}
