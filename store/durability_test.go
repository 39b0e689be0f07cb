package store

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/dynkv/dynkv/vclock"
	"github.com/dynkv/dynkv/wal/waltest"
)

func TestCrashAfterWritesLosesNoWrite(t *testing.T) {
	clk := newTestClock()
	dir := t.TempDir()
	a := mustOpen(t, testOptions(dir, clk))
	want := map[string]string{}
	for i := 0; i < 50; i++ {
		k, v := fmt.Sprintf("key-%d", i), fmt.Sprintf("value-%d", i)
		mustPut(t, a, i%4, k, "n1", vclock.Context{}, value(v))
		want[fmt.Sprintf("%d/%s", i%4, k)] = v
	}
	crashed := t.TempDir()
	copyDir(t, dir, crashed) // A never got to close or checkpoint
	closeStore(t, a)

	b := mustOpen(t, testOptions(crashed, clk))
	defer closeStore(t, b)
	if got := b.Stats().ReplayedRecords; got != 50 {
		t.Errorf("replayed %d records, want the 50 written since the last checkpoint", got)
	}
	for i := 0; i < 50; i++ {
		k := fmt.Sprintf("key-%d", i)
		got := values(mustGet(t, b, i%4, k).Siblings)
		if w := want[fmt.Sprintf("%d/%s", i%4, k)]; len(got) != 1 || got[0] != w {
			t.Errorf("after the crash db %d %s = %v, want [%s]", i%4, k, got, w)
		}
	}
}

// LevelDB writes are not synced: a crash may lose everything LevelDB took
// in since the last checkpoint. The WAL must bring it all back.
func TestReplayRestoresWritesLevelDBLost(t *testing.T) {
	clk := newTestClock()
	dir := t.TempDir()
	a := mustOpen(t, testOptions(dir, clk))
	_, c := mustPut(t, a, 0, "before", "n1", vclock.Context{}, value("checkpointed"))
	mustPut(t, a, 0, "ttl", "n1", vclock.Context{}, vclock.Sibling{Value: []byte("x"), Expires: clk.After(10)})
	if err := a.Checkpoint(); err != nil {
		t.Fatalf("Checkpoint: %v", err)
	}
	crashed := t.TempDir()
	copyDir(t, filepath.Join(dir, "leveldb"), filepath.Join(crashed, "leveldb"))

	mustPut(t, a, 0, "before", "n1", c, value("overwritten"))
	mustPut(t, a, 1, "after", "n1", vclock.Context{}, value("new"))
	mustPut(t, a, 0, "ttl", "n1", vclock.Context{}, value("forever"))
	copyDir(t, filepath.Join(dir, "wal"), filepath.Join(crashed, "wal"))
	closeStore(t, a)

	b := mustOpen(t, testOptions(crashed, clk))
	defer closeStore(t, b)
	if got := b.Stats().ReplayedRecords; got != 3 {
		t.Errorf("replayed %d records, want the 3 written after the checkpoint", got)
	}
	for _, c := range []struct {
		db       int
		key, val string
	}{{0, "before", "overwritten"}, {1, "after", "new"}, {0, "ttl", "forever"}} {
		if got := values(mustGet(t, b, c.db, c.key).Siblings); len(got) != 1 || got[0] != c.val {
			t.Errorf("db %d %s = %v after replay, want [%s]", c.db, c.key, got, c.val)
		}
	}
	if idx := reclaimIndex(t, b); len(idx) != 0 {
		t.Errorf("reclaim index holds %d entries after replay, want none (the TTL value was overwritten by one that lives forever)", len(idx))
	}
}

func walSegments(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "wal", "*.wal"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestCheckpointReleasesWALSegmentsAndDataSurvivesReopen(t *testing.T) {
	clk := newTestClock()
	dir := t.TempDir()
	opts := testOptions(dir, clk)
	opts.SegmentSize = 4 << 10
	opts.Sync.Interval = 1 << 30   // fsync cost is not what this test is about
	opts.checkpointBytes = 1 << 40 // only the explicit Checkpoint below
	s := mustOpen(t, opts)
	payload := strings.Repeat("p", 200)
	for i := 0; i < 200; i++ {
		mustPut(t, s, 0, fmt.Sprintf("k%03d", i), "n1", vclock.Context{}, value(payload+fmt.Sprint(i)))
	}
	before := len(walSegments(t, dir))
	if before < 5 {
		t.Fatalf("only %d WAL segments after ~50 KiB of writes with 4 KiB segments", before)
	}
	if err := s.Checkpoint(); err != nil {
		t.Fatalf("Checkpoint: %v", err)
	}
	after := len(walSegments(t, dir))
	if after >= before || after > 2 {
		t.Fatalf("Checkpoint left %d of %d WAL segments, want at most the active one or two", after, before)
	}
	if got, want := s.Stats().CheckpointLSN, s.wal.LastLSN(); got != want {
		t.Errorf("checkpoint LSN %d, want the WAL's last LSN %d", got, want)
	}
	closeStore(t, s)

	s = mustOpen(t, opts)
	defer closeStore(t, s)
	if got := s.Stats().ReplayedRecords; got != 0 {
		t.Errorf("replayed %d records after a clean close, want 0", got)
	}
	for i := 0; i < 200; i++ {
		k := fmt.Sprintf("k%03d", i)
		if got := values(mustGet(t, s, 0, k).Siblings); len(got) != 1 || got[0] != payload+fmt.Sprint(i) {
			t.Fatalf("%s = %.20v... after reopen, want its value", k, got)
		}
	}
}

func TestAppendedBytesTriggerBackgroundCheckpoint(t *testing.T) {
	clk := newTestClock()
	dir := t.TempDir()
	opts := testOptions(dir, clk)
	opts.SegmentSize = 4 << 10
	opts.Sync.Interval = 1 << 30
	s := mustOpen(t, opts)
	defer closeStore(t, s)
	payload := strings.Repeat("p", 500)
	for i := 0; i < 20; i++ {
		mustPut(t, s, 0, fmt.Sprintf("k%d", i), "n1", vclock.Context{}, value(payload))
	}
	waitFor(t, "a checkpoint triggered by appended bytes", func() bool {
		return s.Stats().CheckpointLSN > 0
	})
}

func TestOpenFailsOnAForeignWALRecord(t *testing.T) {
	clk := newTestClock()
	dir := t.TempDir()
	s := mustOpen(t, testOptions(dir, clk))
	if _, err := s.wal.Append([]byte("not a store record")); err != nil {
		t.Fatalf("Append: %v", err)
	}
	crashed := t.TempDir()
	copyDir(t, dir, crashed)
	closeStore(t, s)
	_ = os.Remove(filepath.Join(crashed, "leveldb", "LOCK"))
	if s, err := Open(testOptions(crashed, clk)); err == nil {
		s.Close()
		t.Fatal("Open replayed a malformed record without complaint")
	} else if !strings.Contains(err.Error(), "WAL record") {
		t.Fatalf("Open error %q does not say which WAL record is bad", err)
	}
}

// A power loss keeps only what was fsynced: the WAL on a crash-simulating
// file system (waltest.MemFS.Crash drops every unsynced byte and directory
// entry), LevelDB rolled back to its last checkpoint (its writes are never
// synced, so all of them may be lost). Writers run concurrently so that
// the crash lands between group commits and in the middle of them; every
// write acknowledged before the crash must read back, at its version or a
// later one of the same writer.
func TestPowerLossLosesNoAcknowledgedWrite(t *testing.T) {
	const writers, perWriter, keysPerWriter = 4, 150, 10
	clk := newTestClock()
	dir := t.TempDir()
	fsys := waltest.NewMemFS()
	opts := testOptions(dir, clk)
	opts.FS = fsys
	a := mustOpen(t, opts)
	mustPut(t, a, 0, "checkpointed", "n1", vclock.Context{}, value("v"))
	if err := a.Checkpoint(); err != nil {
		t.Fatalf("Checkpoint: %v", err)
	}
	atCheckpoint := t.TempDir()
	copyDir(t, filepath.Join(dir, "leveldb"), atCheckpoint)

	var (
		mu      sync.Mutex
		acked   = map[string]int{"checkpointed": -1} // key -> latest acknowledged sequence
		crashed *waltest.MemFS
		snap    map[string]int
		count   int // writes acknowledged
		wg      sync.WaitGroup
	)
	crashAt := writers * perWriter / 2
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctxs := map[string]vclock.Context{}
			for i := range perWriter {
				k := fmt.Sprintf("w%d-k%d", w, i%keysPerWriter)
				_, c, err := a.Put(0, []byte(k), "n1", ctxs[k], value(fmt.Sprintf("%d", i)))
				if err != nil {
					t.Errorf("Put %s #%d: %v", k, i, err)
					return
				}
				ctxs[k] = c
				mu.Lock()
				acked[k], count = i, count+1
				if crashed == nil && count >= crashAt {
					snap = maps.Clone(acked)
					crashed = fsys.Crash()
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if crashed == nil {
		t.Fatal("the writers finished before the crash point")
	}
	closeStore(t, a) // the crashed copy is what the machine finds on power-up
	if err := os.RemoveAll(filepath.Join(dir, "leveldb")); err != nil {
		t.Fatal(err)
	}
	copyDir(t, atCheckpoint, filepath.Join(dir, "leveldb"))

	opts.FS = crashed
	b := mustOpen(t, opts)
	defer closeStore(t, b)
	lost := 0
	for k, seq := range snap {
		set, err := b.Get(0, []byte(k))
		if err != nil {
			t.Errorf("after the power loss %s: %v, want a value at sequence %d or later", k, err, seq)
			lost++
			continue
		}
		got := values(set.Siblings)
		if seq < 0 {
			if len(got) != 1 || got[0] != "v" {
				t.Errorf("checkpointed key after the power loss: %v, want [v]", got)
			}
			continue
		}
		if len(got) != 1 || atoi(got[0]) < seq {
			t.Errorf("after the power loss %s = %v, want one value at sequence %d or later", k, got, seq)
			lost++
		}
	}
	t.Logf("%d writes acknowledged before the crash over %d keys, %d records replayed, %d lost",
		crashAt, len(snap), b.Stats().ReplayedRecords, lost)
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}
