package store

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dynkv/dynkv/vclock"
	"github.com/dynkv/dynkv/wal"
)

type scanned struct {
	db  int
	key string
	set vclock.Set
}

func scanAll(t *testing.T, s *Store) []scanned {
	t.Helper()
	var out []scanned
	err := s.Scan(func(db int, key []byte, set vclock.Set) error {
		out = append(out, scanned{db, string(key), set})
		return nil
	})
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	return out
}

// Enough keys and bytes to span several chunks by count and by size.
func TestScanVisitsEveryKeyOnceInOrderAcrossChunks(t *testing.T) {
	clk := newTestClock()
	s := mustOpen(t, testOptions(t.TempDir(), clk))
	defer closeStore(t, s)

	want := map[string]string{}
	for i := 0; i < 3*scanChunkKeys+7; i++ {
		db, k := i%5, fmt.Sprintf("k%05d", i)
		v := fmt.Sprintf("v%d", i)
		if i%50 == 0 {
			v += strings.Repeat("x", scanChunkBytes/4) // forces size-bounded chunks
		}
		mustPut(t, s, db, k, "n1", vclock.Context{}, value(v))
		want[fmt.Sprintf("%d/%s", db, k)] = v
	}
	got := scanAll(t, s)
	if len(got) != len(want) {
		t.Fatalf("Scan visited %d keys, want %d", len(got), len(want))
	}
	for i, e := range got {
		name := fmt.Sprintf("%d/%s", e.db, e.key)
		w, ok := want[name]
		if !ok {
			t.Fatalf("Scan visited %s twice or it was never written", name)
		}
		delete(want, name)
		if v := values(e.set.Siblings); len(v) != 1 || v[0] != w {
			t.Errorf("Scan gave %s = %.20q, want [%.20s]", name, v, w)
		}
		if i > 0 && (got[i-1].db > e.db || got[i-1].db == e.db && got[i-1].key >= e.key) {
			t.Errorf("Scan order: %d/%s after %d/%s", e.db, e.key, got[i-1].db, got[i-1].key)
		}
	}
}

func TestScanOfAnEmptyStoreCallsNothing(t *testing.T) {
	s := mustOpen(t, testOptions(t.TempDir(), newTestClock()))
	defer closeStore(t, s)
	if got := scanAll(t, s); len(got) != 0 {
		t.Fatalf("Scan of an empty store visited %d keys", len(got))
	}
}

// The callback may write (Handoff drops keys it has handed off), and what it
// writes is not seen by the scan already running: the scan is a snapshot.
func TestScanSeesASnapshotAndLetsTheCallbackWrite(t *testing.T) {
	clk := newTestClock()
	s := mustOpen(t, testOptions(t.TempDir(), clk))
	defer closeStore(t, s)
	n := 2*scanChunkKeys + 1
	for i := 0; i < n; i++ {
		mustPut(t, s, 0, fmt.Sprintf("k%05d", i), "n1", vclock.Context{}, value("old"))
	}
	seen := 0
	err := s.Scan(func(db int, key []byte, set vclock.Set) error {
		if v := values(set.Siblings); len(v) != 1 || v[0] != "old" {
			t.Errorf("Scan gave %s = %v, want the snapshot's [old]", key, v)
		}
		if seen == 0 {
			for i := 0; i < n; i++ {
				mustPut(t, s, 0, fmt.Sprintf("k%05d", i), "n1", vclock.Context{}, value("new"))
			}
			mustPut(t, s, 0, "zzz-added-during-scan", "n1", vclock.Context{}, value("new"))
		}
		if _, err := s.Drop(db, key, set); err != nil {
			t.Errorf("Drop from the callback: %v", err)
		}
		seen++
		return nil
	})
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	if seen != n {
		t.Fatalf("Scan visited %d keys, want the %d of its snapshot", seen, n)
	}
	// Every Drop saw a changed key (rewritten to "new") and kept it.
	if got := len(scanAll(t, s)); got != n+1 {
		t.Fatalf("after the scan the store holds %d keys, want %d", got, n+1)
	}
}

func TestScanStopsAtTheCallbacksError(t *testing.T) {
	s := mustOpen(t, testOptions(t.TempDir(), newTestClock()))
	defer closeStore(t, s)
	for i := 0; i < 10; i++ {
		mustPut(t, s, 0, fmt.Sprintf("k%d", i), "n1", vclock.Context{}, value("v"))
	}
	stop := errors.New("enough")
	calls := 0
	err := s.Scan(func(int, []byte, vclock.Set) error {
		calls++
		if calls == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 3 {
		t.Fatalf("Scan returned %v after %d calls, want the callback's error after 3", err, calls)
	}
}

// Callers may keep what Scan hands them: nothing is reused between chunks.
func TestScanKeysAndSetsMayBeKept(t *testing.T) {
	s := mustOpen(t, testOptions(t.TempDir(), newTestClock()))
	defer closeStore(t, s)
	n := 2*scanChunkKeys + 3
	for i := 0; i < n; i++ {
		mustPut(t, s, 1, fmt.Sprintf("key-%05d", i), "n1", vclock.Context{}, value(fmt.Sprintf("val-%05d", i)))
	}
	var keys [][]byte
	var sets []vclock.Set
	if err := s.Scan(func(_ int, key []byte, set vclock.Set) error {
		keys, sets = append(keys, key), append(sets, set)
		return nil
	}); err != nil {
		t.Fatalf("Scan: %v", err)
	}
	for i := range keys {
		wk, wv := fmt.Sprintf("key-%05d", i), fmt.Sprintf("val-%05d", i)
		if string(keys[i]) != wk || !bytes.Equal(sets[i].Siblings[0].Value, []byte(wv)) {
			t.Fatalf("kept entry %d reads %q=%q after the scan, want %q=%q", i, keys[i], sets[i].Siblings[0].Value, wk, wv)
		}
	}
}

// A LevelDB reopen (recovery from failed applies) closes the snapshot's
// handle mid-scan; the scan resumes on the new handle without repeating or
// skipping keys.
func TestScanResumesAfterALevelDBReopen(t *testing.T) {
	s := mustOpen(t, testOptions(t.TempDir(), newTestClock()))
	defer closeStore(t, s)
	n := 3*scanChunkKeys + 1
	for i := 0; i < n; i++ {
		mustPut(t, s, 0, fmt.Sprintf("k%05d", i), "n1", vclock.Context{}, value("v"))
	}
	seen := map[string]int{}
	calls := 0
	err := s.Scan(func(_ int, key []byte, _ vclock.Set) error {
		seen[string(key)]++
		calls++
		if calls == scanChunkKeys+5 {
			if err := s.reopenLevelDB(); err != nil {
				t.Fatalf("reopen LevelDB: %v", err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Scan across a reopen: %v", err)
	}
	if s.Stats().LevelDBReopens != 1 {
		t.Fatalf("LevelDB reopens %d, want 1", s.Stats().LevelDBReopens)
	}
	if len(seen) != n || calls != n {
		t.Fatalf("Scan across a reopen visited %d distinct keys in %d calls, want %d each", len(seen), calls, n)
	}
}

func TestScanRefusesWhileRecordsArePending(t *testing.T) {
	fault := &failingApply{}
	opts := testOptions(t.TempDir(), newTestClock())
	opts.wrapApply = fault.wrap
	s := mustOpen(t, opts)
	defer closeStore(t, s)
	mustPut(t, s, 0, "k", "n1", vclock.Context{}, value("v1"))
	fault.set(fmt.Errorf("write journal: %w", syscall.EIO))
	if _, _, err := s.Put(0, []byte("k"), "n1", vclock.Context{}, value("v2")); err == nil {
		t.Fatal("Put with a failing LevelDB apply succeeded")
	}
	err := s.Scan(func(int, []byte, vclock.Set) error {
		t.Error("Scan called back although its snapshot would miss a pending record")
		return nil
	})
	if !errors.Is(err, ErrScanPending) {
		t.Fatalf("Scan with a pending record: %v, want ErrScanPending", err)
	}
	fault.set(nil)
	waitFor(t, "the pending record to be applied", func() bool { return s.Stats().PendingRecords == 0 })
	got := scanAll(t, s)
	if len(got) != 1 || values(got[0].set.Siblings)[0] != "v2" {
		t.Fatalf("Scan after the retry applied the record: %+v, want k=[v2]", got)
	}
}

func TestScanAfterCloseFails(t *testing.T) {
	s := mustOpen(t, testOptions(t.TempDir(), newTestClock()))
	closeStore(t, s)
	if err := s.Scan(func(int, []byte, vclock.Set) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("Scan after Close: %v, want ErrClosed", err)
	}
}

func TestDropRemovesAnUnchangedKeyAndItsReclaimEntry(t *testing.T) {
	clk := newTestClock()
	s := mustOpen(t, testOptions(t.TempDir(), clk))
	defer closeStore(t, s)
	set, _ := mustPut(t, s, 3, "ttl", "n1", vclock.Context{}, vclock.Sibling{Value: []byte("v"), Expires: clk.After(time.Hour)})
	mustPut(t, s, 3, "other", "n1", vclock.Context{}, value("stays"))
	if idx := reclaimIndex(t, s); len(idx) != 1 {
		t.Fatalf("reclaim index holds %d entries before Drop, want 1", len(idx))
	}
	ok, err := s.Drop(3, []byte("ttl"), set)
	if err != nil || !ok {
		t.Fatalf("Drop of an unchanged key = %v, %v; want true, nil", ok, err)
	}
	if _, err := s.Get(3, []byte("ttl")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Drop: %v, want ErrNotFound", err)
	}
	if idx := reclaimIndex(t, s); len(idx) != 0 {
		t.Fatalf("reclaim index holds %d entries after Drop, want none", len(idx))
	}
	mustGet(t, s, 3, "other")
	if ok, err := s.Drop(3, []byte("ttl"), set); ok || err != nil {
		t.Fatalf("second Drop = %v, %v; want false, nil (nothing left to drop)", ok, err)
	}
}

// The stray sweep hands a key off, then drops it; a write that lands in
// between must survive.
func TestDropAfterAConcurrentWriteKeepsTheNewValue(t *testing.T) {
	clk := newTestClock()
	s := mustOpen(t, testOptions(t.TempDir(), clk))
	defer closeStore(t, s)
	handedOff, _ := mustPut(t, s, 0, "k", "n1", vclock.Context{}, value("handed-off"))
	mustPut(t, s, 0, "k", "n1", vclock.Context{}, value("written-meanwhile"))
	ok, err := s.Drop(0, []byte("k"), handedOff)
	if err != nil || ok {
		t.Fatalf("Drop of a key written since = %v, %v; want false, nil", ok, err)
	}
	if got := values(mustGet(t, s, 0, "k").Siblings); len(got) != 1 || got[0] != "written-meanwhile" {
		t.Fatalf("after the refused Drop k = %v, want [written-meanwhile]", got)
	}
	// The same for a replica Merge that lands in between.
	cur := mustGet(t, s, 0, "k")
	if _, err := s.Merge(0, []byte("k"), remoteSet("n2", "merged-meanwhile", clk.After(0))); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Drop(0, []byte("k"), cur); err != nil || ok {
		t.Fatalf("Drop of a key merged into since = %v, %v; want false, nil", ok, err)
	}
	if got := values(mustGet(t, s, 0, "k").Siblings); !sameStrings(got, []string{"written-meanwhile", "merged-meanwhile"}) {
		t.Fatalf("after the refused Drop k = %v, want both siblings", got)
	}
}

func TestDropRejectsBadKeys(t *testing.T) {
	s := mustOpen(t, testOptions(t.TempDir(), newTestClock()))
	defer closeStore(t, s)
	if _, err := s.Drop(0, nil, vclock.Set{}); !errors.Is(err, ErrBadKey) {
		t.Errorf("Drop of an empty key: %v, want ErrBadKey", err)
	}
	if _, err := s.Drop(99, []byte("k"), vclock.Set{}); !errors.Is(err, ErrBadDatabase) {
		t.Errorf("Drop in database 99: %v, want ErrBadDatabase", err)
	}
}

// Drop is a WAL record: a crash after it (LevelDB's unsynced delete lost)
// must not bring the key back.
func TestDropSurvivesACrashThroughWALReplay(t *testing.T) {
	clk := newTestClock()
	dir := t.TempDir()
	a := mustOpen(t, testOptions(dir, clk))
	set, _ := mustPut(t, a, 0, "gone", "n1", vclock.Context{}, value("v"))
	mustPut(t, a, 0, "kept", "n1", vclock.Context{}, value("v"))
	if err := a.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	crashed := t.TempDir()
	copyDir(t, dir+"/leveldb", crashed+"/leveldb") // LevelDB as of the checkpoint: both keys
	if ok, err := a.Drop(0, []byte("gone"), set); err != nil || !ok {
		t.Fatalf("Drop = %v, %v; want true, nil", ok, err)
	}
	copyDir(t, dir+"/wal", crashed+"/wal")
	closeStore(t, a)

	b := mustOpen(t, testOptions(crashed, clk))
	defer closeStore(t, b)
	if got := b.Stats().ReplayedRecords; got != 1 {
		t.Errorf("replayed %d records, want the drop", got)
	}
	if _, err := b.Get(0, []byte("gone")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("dropped key after a crash: %v, want ErrNotFound", err)
	}
	mustGet(t, b, 0, "kept")
}

// BenchmarkScan: a full scan of 20k keys with 100-byte values, what a
// handoff pass reads before any network cost. Reports keys/s.
func BenchmarkScan(b *testing.B) {
	opts := testOptions(b.TempDir(), newTestClock())
	opts.Sync = wal.SyncPolicy{Interval: 10 * time.Millisecond}
	s := mustOpen(b, opts)
	defer closeStore(b, s)
	const keys = 20_000
	val := bytes.Repeat([]byte("v"), 100)
	for i := 0; i < keys; i++ {
		if _, _, err := s.Put(i%4, fmt.Appendf(nil, "bench-key-%07d", i), "n1", vclock.Context{}, vclock.Sibling{Value: val}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		n := 0
		if err := s.Scan(func(int, []byte, vclock.Set) error { n++; return nil }); err != nil {
			b.Fatal(err)
		}
		if n != keys {
			b.Fatalf("scanned %d keys, want %d", n, keys)
		}
	}
	b.ReportMetric(float64(keys*b.N)/b.Elapsed().Seconds(), "keys/s")
}
