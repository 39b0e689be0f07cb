package store

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"github.com/dynkv/dynkv/vclock"
)

// changeLog records OnChange calls and the state each key should be in.
type changeLog struct {
	mu    sync.Mutex
	state map[string][]byte // db+key -> encoded set as OnChange last reported it
	bad   []string
}

func (c *changeLog) observe(db int, key, before, after []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := string(rune('0'+db)) + string(key)
	if !bytes.Equal(c.state[k], before) {
		c.bad = append(c.bad, "key "+k+": before does not match the last after reported")
	}
	if after == nil {
		delete(c.state, k)
	} else {
		c.state[k] = append([]byte(nil), after...)
	}
}

func TestOnChangeReportsEveryStateChangeInOrder(t *testing.T) {
	clk := newTestClock()
	log := &changeLog{state: map[string][]byte{}}
	opts := testOptions(t.TempDir(), clk)
	opts.OnChange = log.observe
	opts.TombstoneGrace = time.Minute
	s := mustOpen(t, opts)
	defer closeStore(t, s)

	_, c1 := mustPut(t, s, 1, "a", "n1", vclock.Context{}, value("1"))
	mustPut(t, s, 1, "a", "n1", c1, value("2"))
	other := vclock.Set{}
	other, _ = other.Update("n2", vclock.Context{}, value("x"))
	if _, err := s.Merge(1, []byte("a"), other); err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, 2, "b", "n1", vclock.Context{}, vclock.Sibling{Tombstone: true, LastModified: clk.Now().UnixNano()})
	mustPut(t, s, 3, "c", "n1", vclock.Context{}, value("c"))
	if ok, err := s.Drop(3, []byte("c"), mustGet(t, s, 3, "c")); err != nil || !ok {
		t.Fatalf("Drop: %v %v", ok, err)
	}
	clk.Advance(2 * time.Minute)
	if n, err := s.reclaimPass(); err != nil || n != 1 {
		t.Fatalf("reclaim dropped %d keys (%v), want the tombstone", n, err)
	}

	log.mu.Lock()
	defer log.mu.Unlock()
	if len(log.bad) > 0 {
		t.Fatalf("OnChange out of order: %v", log.bad)
	}
	want := map[string][]byte{}
	if err := s.Scan(func(db int, key []byte, set vclock.Set) error {
		want[string(rune('0'+db))+string(key)] = set.Encode()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(want) != len(log.state) {
		t.Fatalf("OnChange tracked %d keys, the store holds %d", len(log.state), len(want))
	}
	for k, v := range want {
		if !bytes.Equal(log.state[k], v) {
			t.Fatalf("key %s: OnChange last reported %x, the store holds %x", k, log.state[k], v)
		}
	}
}

func TestScanMarkedSplitsChangesAtTheMark(t *testing.T) {
	clk := newTestClock()
	var mu sync.Mutex
	marked := false
	var afterMark []string
	opts := testOptions(t.TempDir(), clk)
	opts.OnChange = func(db int, key, before, after []byte) {
		mu.Lock()
		defer mu.Unlock()
		if marked {
			afterMark = append(afterMark, string(key))
		}
	}
	s := mustOpen(t, opts)
	defer closeStore(t, s)
	mustPut(t, s, 0, "before", "n1", vclock.Context{}, value("1"))
	var scanned []string
	err := s.ScanMarked(func() {
		mu.Lock()
		marked = true
		mu.Unlock()
	}, func(db int, key []byte, set vclock.Set) error {
		if string(key) == "before" {
			// A write during the scan is reported after the mark and
			// missing from the scan.
			mustPut(t, s, 0, "during", "n1", vclock.Context{}, value("2"))
		}
		scanned = append(scanned, string(key))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(scanned) != 1 || scanned[0] != "before" {
		t.Fatalf("scan saw %v, want [before]", scanned)
	}
	if len(afterMark) != 1 || afterMark[0] != "during" {
		t.Fatalf("changes after the mark: %v, want [during]", afterMark)
	}
}

func TestOnChangeReportsWALReplayAtOpen(t *testing.T) {
	clk := newTestClock()
	dir := t.TempDir()
	s := mustOpen(t, testOptions(dir, clk))
	defer closeStore(t, s)
	mustPut(t, s, 0, "a", "n1", vclock.Context{}, value("1"))
	_, c := mustPut(t, s, 0, "b", "n1", vclock.Context{}, value("1"))
	mustPut(t, s, 0, "b", "n1", c, value("2"))
	crashed := t.TempDir()
	copyDir(t, dir, crashed) // no checkpoint since the writes: Open replays them

	log := &changeLog{state: map[string][]byte{}}
	opts := testOptions(crashed, clk)
	opts.OnChange = log.observe
	r := mustOpen(t, opts)
	defer closeStore(t, r)
	log.mu.Lock()
	defer log.mu.Unlock()
	// The replayed records' LevelDB state may already hold them, so the
	// befores are not checked; the last after of each key must be its state.
	for _, key := range []string{"a", "b"} {
		if got, want := log.state["0"+key], mustGet(t, r, 0, key).Encode(); !bytes.Equal(got, want) {
			t.Fatalf("key %s: replay reported %x last, the store holds %x", key, got, want)
		}
	}
}
