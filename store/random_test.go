package store

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/dynkv/dynkv/internal/testutil"
	"github.com/dynkv/dynkv/vclock"
)

// A random mix of coordinated writes, replica merges, checkpoints, clean
// restarts and crashes (directory copies of a running store) must leave the
// store holding exactly what the same operations give on in-memory Sets.
func TestRandomOperationsSurviveCrashesAndRestarts(t *testing.T) {
	seed := testutil.Seed(t, testutil.SeedEnv)
	rng := rand.New(rand.NewPCG(seed, 0))
	clk := newTestClock()
	dir := t.TempDir()
	opts := testOptions(dir, clk)
	opts.SegmentSize = 2 << 10
	opts.Sync.Interval = time.Hour // process crashes only: the page cache survives
	opts.checkpointBytes = 1 << 40 // checkpoints only where the test says
	s := mustOpen(t, opts)
	defer func() { closeStore(t, s) }()

	model := map[string]vclock.Set{}
	keys := []string{"a", "b", "c", "d", "e"}
	for step := 0; step < 300; step++ {
		k := keys[rng.IntN(len(keys))]
		switch op := rng.IntN(20); {
		case op < 10:
			cur := model[k]
			ctx := vclock.Context{}
			if rng.IntN(2) == 0 {
				ctx = cur.Context // a read-modify-write
			}
			sib := value(fmt.Sprintf("s%d", step))
			sib.LastModified = clk.After(0)
			actor := fmt.Sprintf("n%d", rng.IntN(3))
			set, _, err := s.Put(0, []byte(k), actor, ctx, sib)
			if err != nil {
				t.Fatalf("seed %d step %d Put: %v", seed, step, err)
			}
			if ctx.IsZero() {
				ctx = cur.Context
			}
			want, _ := cur.Update(actor, ctx, sib)
			if !set.Equal(want) {
				t.Fatalf("seed %d step %d: Put returned %+v, want %+v", seed, step, set, want)
			}
			model[k] = want
		case op < 15:
			in := remoteSet(fmt.Sprintf("r%d", rng.IntN(3)), fmt.Sprintf("m%d", step), clk.After(0))
			if _, err := s.Merge(0, []byte(k), in); err != nil {
				t.Fatalf("seed %d step %d Merge: %v", seed, step, err)
			}
			model[k] = vclock.Merge(model[k], in)
		case op < 17:
			if err := s.Checkpoint(); err != nil {
				t.Fatalf("seed %d step %d Checkpoint: %v", seed, step, err)
			}
		case op < 18:
			closeStore(t, s)
			s = mustOpen(t, opts)
		default:
			crashed := t.TempDir()
			copyDir(t, opts.Dir, crashed)
			closeStore(t, s)
			opts.Dir = crashed
			s = mustOpen(t, opts)
		}
		clk.Advance(time.Millisecond)
	}
	for _, k := range keys {
		want, ok := model[k]
		got, err := s.Get(0, []byte(k))
		if !ok {
			if err == nil {
				t.Errorf("seed %d: %s holds %+v, want nothing", seed, k, got)
			}
			continue
		}
		if err != nil || !got.Equal(want) {
			t.Errorf("seed %d: %s = %+v (%v), want %+v", seed, k, got, err, want)
		}
	}
}
