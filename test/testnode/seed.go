package testnode

import (
	"testing"

	"github.com/dynkv/dynkv/internal/testutil"
)

// Seed is the seed of a randomised test: the value of the environment
// variable env when set, to replay a failure, else the clock. It logs the
// seed with the variable that replays it and fails tb on a malformed value.
func Seed(tb testing.TB, env string) uint64 {
	tb.Helper()
	return testutil.Seed(tb, env)
}
