package store

import (
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/dynkv/dynkv/vclock"
	"github.com/dynkv/dynkv/wal"
)

func hintSet(actor, v string, counter uint64) vclock.Set {
	ctx := vclock.Context{}
	if counter > 1 {
		ctx = ctx.Add(vclock.Dot{Actor: actor, Counter: counter - 1})
	}
	set, _ := vclock.Set{}.Update(actor, ctx, vclock.Sibling{Value: []byte(v), LastModified: 1})
	return set
}

type scannedHint struct {
	db      int
	key     string
	set     vclock.Set
	created time.Time
}

func scanHints(t testing.TB, s *Store, owner string) []scannedHint {
	t.Helper()
	var out []scannedHint
	err := s.ScanHints(owner, func(db int, key []byte, set vclock.Set, created time.Time) error {
		out = append(out, scannedHint{db, string(key), set, created})
		return nil
	})
	if err != nil {
		t.Fatalf("ScanHints(%s): %v", owner, err)
	}
	return out
}

func mustPutHint(t testing.TB, s *Store, owner string, db int, key string, set vclock.Set) {
	t.Helper()
	if err := s.PutHint(owner, db, []byte(key), set); err != nil {
		t.Fatalf("PutHint(%s, %d, %q): %v", owner, db, key, err)
	}
}

func TestHintsSurviveACrashThroughTheWAL(t *testing.T) {
	clk := newTestClock()
	dir := t.TempDir()
	a := mustOpen(t, testOptions(dir, clk))
	for i := 0; i < 20; i++ {
		mustPutHint(t, a, fmt.Sprintf("n%d", i%3), i%2, fmt.Sprintf("k%d", i), hintSet("n9", fmt.Sprint(i), 1))
	}
	if _, err := a.DropHint("n0", 0, []byte("k0"), hintSet("n9", "0", 1)); err != nil {
		t.Fatalf("DropHint: %v", err)
	}
	crashed := t.TempDir()
	copyDir(t, dir, crashed) // no checkpoint since Open: everything is in the WAL only
	closeStore(t, a)

	b := mustOpen(t, testOptions(crashed, clk))
	defer closeStore(t, b)
	st := b.HintStats()
	want := map[string]int{"n0": 6, "n1": 7, "n2": 6}
	for owner, n := range want {
		if st[owner].Count != n {
			t.Errorf("after crash: %s holds %d hints, want %d (stats %v)", owner, st[owner].Count, n, st)
		}
		if got := len(scanHints(t, b, owner)); got != n {
			t.Errorf("after crash: ScanHints(%s) found %d, want %d", owner, got, n)
		}
	}
	for _, h := range scanHints(t, b, "n0") {
		if h.key == "k0" {
			t.Errorf("dropped hint k0 came back after the crash")
		}
	}
}

func TestPutHintMergesAndKeepsTheOldestCreationTime(t *testing.T) {
	clk := newTestClock()
	s := mustOpen(t, testOptions(t.TempDir(), clk))
	defer closeStore(t, s)
	first := hintSet("n1", "a", 1)
	mustPutHint(t, s, "n3", 0, "k", first)
	created := clk.Now()
	clk.Advance(time.Minute)
	second := hintSet("n2", "b", 1) // concurrent with first
	mustPutHint(t, s, "n3", 0, "k", second)

	got := scanHints(t, s, "n3")
	if len(got) != 1 {
		t.Fatalf("ScanHints found %d hints, want 1 merged hint", len(got))
	}
	if want := vclock.Merge(first, second); !got[0].set.Equal(want) {
		t.Errorf("merged hint %v, want %v", got[0].set, want)
	}
	if !got[0].created.Equal(created) {
		t.Errorf("created %v, want the first hint's %v", got[0].created, created)
	}
	if st := s.HintStats()["n3"]; st.Count != 1 || !st.Oldest.Equal(created) {
		t.Errorf("stats %+v, want 1 hint created at %v", st, created)
	}
}

func TestDropHintOnlyDropsAnUnchangedHint(t *testing.T) {
	s := mustOpen(t, testOptions(t.TempDir(), newTestClock()))
	defer closeStore(t, s)
	delivered := hintSet("n1", "a", 1)
	mustPutHint(t, s, "n3", 1, "k", delivered)
	mustPutHint(t, s, "n3", 1, "k", hintSet("n2", "b", 1)) // arrives during delivery

	dropped, err := s.DropHint("n3", 1, []byte("k"), delivered)
	if err != nil || dropped {
		t.Fatalf("DropHint of a hint that grew: dropped %v err %v, want false", dropped, err)
	}
	now := scanHints(t, s, "n3")
	if len(now) != 1 {
		t.Fatalf("hint gone after a refused drop")
	}
	dropped, err = s.DropHint("n3", 1, []byte("k"), now[0].set)
	if err != nil || !dropped {
		t.Fatalf("DropHint of the current hint: dropped %v err %v, want true", dropped, err)
	}
	if st := s.HintStats(); len(st) != 0 {
		t.Errorf("stats after the drop %v, want none", st)
	}
	if dropped, _ := s.DropHint("n3", 1, []byte("k"), now[0].set); dropped {
		t.Errorf("DropHint of a missing hint reported a drop")
	}
}

func TestHintStatsAreRebuiltOnOpen(t *testing.T) {
	clk := newTestClock()
	dir := t.TempDir()
	a := mustOpen(t, testOptions(dir, clk))
	oldest := clk.Now()
	mustPutHint(t, a, "n2", 0, "a", hintSet("n1", "a", 1))
	clk.Advance(time.Second)
	mustPutHint(t, a, "n2", 0, "b", hintSet("n1", "b", 1))
	mustPutHint(t, a, "n3", 0, "c", hintSet("n1", "c", 1))
	if err := a.Checkpoint(); err != nil {
		t.Fatalf("Checkpoint: %v", err)
	}
	closeStore(t, a)

	b := mustOpen(t, testOptions(dir, clk))
	defer closeStore(t, b)
	st := b.HintStats()
	if st["n2"].Count != 2 || !st["n2"].Oldest.Equal(oldest) || st["n3"].Count != 1 || len(st) != 2 {
		t.Errorf("stats after reopen %v, want n2: 2 oldest %v, n3: 1", st, oldest)
	}
	if got, want := fmt.Sprint(b.HintOwners()), "[n2 n3]"; got != want {
		t.Errorf("HintOwners %s, want %s", got, want)
	}
	// Dropping the oldest moves Oldest to the next one.
	if _, err := b.DropHint("n2", 0, []byte("a"), hintSet("n1", "a", 1)); err != nil {
		t.Fatal(err)
	}
	if got := b.HintStats()["n2"]; got.Count != 1 || !got.Oldest.Equal(oldest.Add(time.Second)) {
		t.Errorf("n2 after dropping its oldest hint: %+v, want 1 created %v", got, oldest.Add(time.Second))
	}
}

func TestWipeHintsDeletesEveryHintDurably(t *testing.T) {
	clk := newTestClock()
	dir := t.TempDir()
	a := mustOpen(t, testOptions(dir, clk))
	for i := 0; i < 300; i++ { // more than one scan chunk
		mustPutHint(t, a, fmt.Sprintf("n%d", i%4), 0, fmt.Sprintf("k%d", i), hintSet("n9", "v", 1))
	}
	n, err := a.WipeHints()
	if err != nil || n != 300 {
		t.Fatalf("WipeHints: %d, %v; want 300", n, err)
	}
	crashed := t.TempDir()
	copyDir(t, dir, crashed)
	closeStore(t, a)
	b := mustOpen(t, testOptions(crashed, clk))
	defer closeStore(t, b)
	if st := b.HintStats(); len(st) != 0 {
		t.Errorf("hints after wipe and crash: %v", st)
	}
}

func TestHintsAreInvisibleToGetAndScan(t *testing.T) {
	s := mustOpen(t, testOptions(t.TempDir(), newTestClock()))
	defer closeStore(t, s)
	mustPutHint(t, s, "n3", 0, "hinted", hintSet("n1", "h", 1))
	mustPut(t, s, 0, "data", "n1", vclock.Context{}, value("d"))
	if _, err := s.Get(0, []byte("hinted")); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get of a hinted key: %v, want ErrNotFound", err)
	}
	var keys []string
	if err := s.Scan(func(db int, key []byte, _ vclock.Set) error {
		keys = append(keys, string(key))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(keys) != "[data]" {
		t.Errorf("Scan saw %v, want only [data]", keys)
	}
	if got := scanHints(t, s, "n3"); len(got) != 1 || got[0].key != "hinted" {
		t.Errorf("ScanHints(n3) %v", got)
	}
	if got := scanHints(t, s, "n"); len(got) != 0 {
		t.Errorf("ScanHints of an owner id that prefixes another found %v", got)
	}
}

func TestPutHintRespectsTheFreeSpaceGuardAndValidatesInput(t *testing.T) {
	opts := testOptions(t.TempDir(), newTestClock())
	opts.MinFreeBytes = math.MaxUint64
	s := mustOpen(t, opts)
	defer closeStore(t, s)
	if err := s.PutHint("n3", 0, []byte("k"), hintSet("n1", "v", 1)); !errors.Is(err, ErrDiskFull) {
		t.Errorf("PutHint below MinFreeBytes: %v, want ErrDiskFull", err)
	}
	if err := s.PutHint("", 0, []byte("k"), hintSet("n1", "v", 1)); !errors.Is(err, ErrBadHintOwner) {
		t.Errorf("PutHint with an empty owner: %v, want ErrBadHintOwner", err)
	}
	if err := s.PutHint("n3", 99, []byte("k"), hintSet("n1", "v", 1)); !errors.Is(err, ErrBadDatabase) {
		t.Errorf("PutHint to db 99: %v, want ErrBadDatabase", err)
	}
}

// FuzzParseHintKey: hint keys parse without panicking and the keys hintKey
// builds parse back to their parts.
func FuzzParseHintKey(f *testing.F) {
	f.Add("n1", 0, []byte("k"))
	f.Add("a-much-longer-node-id", 15, []byte{0, 0xff})
	f.Fuzz(func(t *testing.T, owner string, db int, key []byte) {
		parseHintKey(append([]byte{prefixHint}, key...))
		if len(owner) < 1 || len(owner) > MaxHintOwnerLen || db < 0 || db > 255 || len(key) < 1 {
			return
		}
		o, d, k, ok := parseHintKey(hintKey(owner, db, key))
		if !ok || o != owner || d != db || string(k) != string(key) {
			t.Fatalf("hintKey(%q, %d, %q) parsed as %q %d %q %v", owner, db, key, o, d, k, ok)
		}
	})
}

func BenchmarkPutHint(b *testing.B) {
	opts := testOptions(b.TempDir(), newTestClock())
	opts.Sync = wal.SyncPolicy{Interval: 10 * time.Millisecond} // measure the store, not the disk's fsync
	s := mustOpen(b, opts)
	defer closeStore(b, s)
	set := hintSet("n1", string(make([]byte, 256)), 1)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := s.PutHint("n3", 0, []byte(fmt.Sprintf("key-%d", i)), set); err != nil {
			b.Fatal(err)
		}
	}
}
