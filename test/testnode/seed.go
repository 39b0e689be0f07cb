package testnode

import (
	"os"
	"strconv"
	"testing"
	"time"
)

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
