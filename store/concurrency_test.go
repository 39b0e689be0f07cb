package store

import (
	"fmt"
	"sync"
	"testing"

	"github.com/dynkv/dynkv/vclock"
)

// Blind writes run under the key's lock, so however they interleave with
// each other, with checkpoints and with reclaim passes, every key ends with
// exactly one sibling, and a crash copy taken afterwards replays to the same
// states.
func TestConcurrentWritersCheckpointsAndReclaimsAgree(t *testing.T) {
	clk := newTestClock()
	dir := t.TempDir()
	opts := testOptions(dir, clk)
	opts.SegmentSize = 8 << 10
	// Checkpoints come from the goroutine below only: one racing the
	// directory copy at the end could release segments the copied LevelDB
	// still needs, which a real crash cannot do.
	opts.checkpointBytes = 1 << 40
	s := mustOpen(t, opts)

	const writers, writes, keys = 8, 60, 10
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < writes; i++ {
				k := []byte(fmt.Sprintf("k%d", (w+i)%keys))
				if _, _, err := s.Put(1, k, "n1", vclock.Context{}, value(fmt.Sprintf("w%d-%d", w, i))); err != nil {
					t.Errorf("writer %d Put %s: %v", w, k, err)
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 10; i++ {
			if err := s.Checkpoint(); err != nil {
				t.Errorf("Checkpoint: %v", err)
			}
			if _, err := s.reclaimPass(); err != nil {
				t.Errorf("reclaim pass: %v", err)
			}
		}
	}()
	wg.Wait()

	want := map[string]vclock.Set{}
	for i := 0; i < keys; i++ {
		k := fmt.Sprintf("k%d", i)
		set := mustGet(t, s, 1, k)
		if len(set.Siblings) != 1 {
			t.Errorf("%s has siblings %v after blind writes only, want exactly one", k, values(set.Siblings))
		}
		want[k] = set
	}
	crashed := t.TempDir()
	copyDir(t, dir, crashed)
	closeStore(t, s)

	c := mustOpen(t, testOptions(crashed, clk))
	defer closeStore(t, c)
	for k, w := range want {
		if got := mustGet(t, c, 1, k); !got.Equal(w) {
			t.Errorf("%s after crash copy: %+v, want %+v", k, got, w)
		}
	}
}
