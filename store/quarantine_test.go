package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/syndtr/goleveldb/leveldb"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/dynkv/dynkv/vclock"
)

// garbage is a value no decoder accepts: an unknown format version.
var garbage = []byte{0xee, 'n', 'o', 't', ' ', 'a', ' ', 's', 'e', 't'}

// observed opens a store whose warnings and errors a test can read.
func observed(t *testing.T, opts Options) (*Store, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zapcore.WarnLevel)
	opts.Logger = zap.New(core)
	return mustOpen(t, opts), logs
}

// damage overwrites a LevelDB record of the open store directly, as a
// damaged disk or an encoder bug would leave it: nothing is reported to
// OnChange, nothing goes through the WAL, and the key's cached state is
// forgotten.
func damage(t *testing.T, s *Store, lkey, v []byte) {
	t.Helper()
	if err := s.db().Put(lkey, v, writeSync); err != nil {
		t.Fatalf("damaging %q: %v", lkey, err)
	}
	// A damaged disk is seen by the reads that miss the state cache:
	// damage the record as if its cached copy had been evicted.
	if s.cache != nil && len(lkey) >= 2 && lkey[0] == prefixData {
		s.cache.forget(int(lkey[1]), lkey[2:])
	}
}

// damageAtRest overwrites a record of a closed store's LevelDB.
func damageAtRest(t *testing.T, dir string, lkey, v []byte) {
	t.Helper()
	ldb, err := leveldb.OpenFile(filepath.Join(dir, "leveldb"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ldb.Put(lkey, v, writeSync); err != nil {
		t.Fatal(err)
	}
	if err := ldb.Close(); err != nil {
		t.Fatal(err)
	}
}

func rawRecord(t *testing.T, s *Store, lkey []byte) ([]byte, bool) {
	t.Helper()
	v, err := s.db().Get(lkey, nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return nil, false
	}
	if err != nil {
		t.Fatalf("LevelDB Get %q: %v", lkey, err)
	}
	return v, true
}

// quarantinedFiles reads the .json files of dir's quarantine folder, with
// the bytes of the .bin file each names.
func quarantinedFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	entries, err := os.ReadDir(filepath.Join(dir, QuarantineDirName))
	if errors.Is(err, os.ErrNotExist) {
		return out
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		js, err := os.ReadFile(filepath.Join(dir, QuarantineDirName, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		var m quarantineMeta
		if err := json.Unmarshal(js, &m); err != nil {
			t.Fatalf("%s: %v in %s", e.Name(), err, js)
		}
		b, err := os.ReadFile(filepath.Join(dir, QuarantineDirName, m.File))
		if err != nil {
			t.Fatalf("%s names %s: %v", e.Name(), m.File, err)
		}
		out[m.Kind+":"+string(m.KeyBase64)] = b
	}
	return out
}

func quarantineLines(logs *observer.ObservedLogs) int {
	return logs.FilterMessageSnippet("damaged stored record quarantined").Len()
}

func TestGetOfADamagedRecordQuarantinesItOnceAndReadsAbsent(t *testing.T) {
	dir := t.TempDir()
	s, logs := observed(t, testOptions(dir, newTestClock()))
	defer closeStore(t, s)
	mustPut(t, s, 3, "bad", "n1", vclock.Context{}, value("v"))
	mustPut(t, s, 3, "good", "n1", vclock.Context{}, value("w"))
	damage(t, s, dataKey(3, []byte("bad")), garbage)

	for range 3 {
		if _, err := s.Get(3, []byte("bad")); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get of the damaged key: %v, want ErrNotFound", err)
		}
	}
	if got := values(mustGet(t, s, 3, "good").Siblings); len(got) != 1 || got[0] != "w" {
		t.Fatalf("the intact key reads %v", got)
	}
	if _, ok := rawRecord(t, s, dataKey(3, []byte("bad"))); ok {
		t.Error("the damaged record is still in LevelDB")
	}
	q := s.Stats().Quarantine
	if q.Data != 1 || q.Total() != 1 || q.Held != 1 || q.Failures != 0 {
		t.Errorf("quarantine stats %+v, want one data record moved aside", q)
	}
	files := quarantinedFiles(t, dir)
	if got, ok := files["data:bad"]; !ok || !bytes.Equal(got, garbage) {
		t.Errorf("quarantine folder holds %v, want the damaged bytes of key bad", files)
	}
	if n := quarantineLines(logs); n != 1 {
		t.Errorf("%d quarantine log lines, want exactly one", n)
	}
	if e := logs.FilterMessageSnippet("damaged stored record quarantined").All(); len(e) == 1 {
		fields := e[0].ContextMap()
		if fields["key_hash"] != fmt.Sprintf("%016x", keyHash(3, []byte("bad"))) || fields["kind"] != QuarantineData || fields["reason"] == nil {
			t.Errorf("quarantine log line fields %v, want kind, key_hash and reason", fields)
		}
	}
}

func TestPutAndMergeOverADamagedRecordSucceed(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, testOptions(dir, newTestClock()))
	defer closeStore(t, s)
	for _, k := range []string{"put", "merge", "drop"} {
		mustPut(t, s, 0, k, "n1", vclock.Context{}, value("old"))
		damage(t, s, dataKey(0, []byte(k)), garbage)
	}
	mustPut(t, s, 0, "put", "n1", vclock.Context{}, value("new"))
	if got := values(mustGet(t, s, 0, "put").Siblings); len(got) != 1 || got[0] != "new" {
		t.Errorf("after a Put over the damaged record: %v, want [new]", got)
	}
	if _, err := s.Merge(0, []byte("merge"), remoteSet("n2", "repaired", 5)); err != nil {
		t.Fatalf("Merge over the damaged record: %v", err)
	}
	if got := values(mustGet(t, s, 0, "merge").Siblings); len(got) != 1 || got[0] != "repaired" {
		t.Errorf("after a Merge over the damaged record: %v, want [repaired]", got)
	}
	if dropped, err := s.Drop(0, []byte("drop"), vclock.Set{}); err != nil || dropped {
		t.Errorf("Drop of a damaged key: %t, %v; want nothing dropped and no error", dropped, err)
	}
	if q := s.Stats().Quarantine; q.Data != 3 {
		t.Errorf("quarantine stats %+v, want three data records", q)
	}
	// The drop record of each quarantine replays cleanly.
	closeStore(t, s)
	s2 := mustOpen(t, testOptions(dir, newTestClock()))
	defer closeStore(t, s2)
	if got := values(mustGet(t, s2, 0, "put").Siblings); len(got) != 1 || got[0] != "new" {
		t.Errorf("after a reopen: %v, want [new]", got)
	}
	if q := s2.Stats().Quarantine; q.Total() != 0 || q.Held != 3 {
		t.Errorf("after a reopen quarantine stats %+v, want none this run and three held", q)
	}
}

func TestScanGoesOnPastDamagedRecordsAndQuarantinesThem(t *testing.T) {
	dir := t.TempDir()
	s, logs := observed(t, testOptions(dir, newTestClock()))
	defer closeStore(t, s)
	const n = 3*scanChunkKeys + 10
	for i := range n {
		mustPut(t, s, 0, fmt.Sprintf("k%05d", i), "n1", vclock.Context{}, value("v"))
	}
	bad := map[string]bool{"k00000": true, fmt.Sprintf("k%05d", scanChunkKeys): true, fmt.Sprintf("k%05d", n-1): true}
	for k := range bad {
		damage(t, s, dataKey(0, []byte(k)), garbage)
	}
	// Outside the configured databases: skipped, left alone.
	damage(t, s, dataKey(200, []byte("elsewhere")), sampleSet().Encode())
	for pass := range 2 {
		seen := 0
		err := s.Scan(func(db int, key []byte, set vclock.Set) error {
			if bad[string(key)] || db != 0 {
				t.Errorf("scan handed over %d/%q", db, key)
			}
			seen++
			return nil
		})
		if err != nil {
			t.Fatalf("scan %d: %v", pass, err)
		}
		if seen != n-len(bad) {
			t.Fatalf("scan %d saw %d keys, want %d", pass, seen, n-len(bad))
		}
	}
	if q := s.Stats().Quarantine; q.Data != uint64(len(bad)) {
		t.Errorf("quarantine stats %+v, want %d data records", q, len(bad))
	}
	if got := quarantineLines(logs); got != len(bad) {
		t.Errorf("%d quarantine log lines, want one per damaged record (%d)", got, len(bad))
	}
	if _, ok := rawRecord(t, s, dataKey(200, []byte("elsewhere"))); !ok {
		t.Error("a record of a database beyond the configuration was removed")
	}
}

func TestQuarantineReportsTheStoredBytesToOnChange(t *testing.T) {
	dir := t.TempDir()
	type change struct{ before, after []byte }
	var got []change
	opts := testOptions(dir, newTestClock())
	opts.OnChange = func(db int, key, before, after []byte) {
		if string(key) == "k" {
			got = append(got, change{append([]byte(nil), before...), append([]byte(nil), after...)})
		}
	}
	s := mustOpen(t, opts)
	defer closeStore(t, s)
	damage(t, s, dataKey(0, []byte("k")), garbage)
	var encoded [][]byte
	err := s.ScanMarkedEncoded(func() {}, func(db int, key, enc []byte) error {
		encoded = append(encoded, enc)
		return nil
	})
	if err != nil || len(encoded) != 1 || !bytes.Equal(encoded[0], garbage) {
		t.Fatalf("ScanMarkedEncoded: %q, %v; want the damaged bytes as stored", encoded, err)
	}
	if q := s.Stats().Quarantine; q.Total() != 0 {
		t.Fatalf("ScanMarkedEncoded moved a record aside: %+v", q)
	}
	if _, err := s.Get(0, []byte("k")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get: %v, want ErrNotFound", err)
	}
	if len(got) != 1 || !bytes.Equal(got[0].before, garbage) || got[0].after != nil {
		t.Fatalf("OnChange calls %q, want one from the damaged bytes to absent", got)
	}
}

func TestDamagedHintsAreQuarantinedAtOpenAndDuringUse(t *testing.T) {
	dir := t.TempDir()
	clk := newTestClock()
	s := mustOpen(t, testOptions(dir, clk))
	for i := range 5 {
		mustPutHint(t, s, "n2", 0, fmt.Sprintf("h%d", i), hintSet("n1", "v", 1))
	}
	closeStore(t, s)
	damageAtRest(t, dir, hintKey("n2", 0, []byte("h1")), []byte{1, 2, 3})                      // shorter than its timestamp
	damageAtRest(t, dir, hintKey("n2", 0, []byte("h2")), encodeHintValue(7, garbage))          // a Set that does not decode
	damageAtRest(t, dir, []byte{prefixHint, 0, 'x'}, encodeHintValue(7, sampleSet().Encode())) // a key that does not parse
	damageAtRest(t, dir, hintKey("n2", 99, []byte("h9")), encodeHintValue(7, sampleSet().Encode()))

	s, logs := observed(t, testOptions(dir, clk))
	defer closeStore(t, s)
	if got := s.HintStats()["n2"].Count; got != 3 {
		t.Errorf("HintStats after Open counts %d hints for n2, want the 3 intact", got)
	}
	if got := len(scanHints(t, s, "n2")); got != 3 {
		t.Errorf("ScanHints sees %d hints, want 3", got)
	}
	q := s.Stats().Quarantine
	if q.Hints != 4 || q.Held != 4 {
		t.Errorf("quarantine stats %+v, want four hint records", q)
	}
	if n := quarantineLines(logs); n != 4 {
		t.Errorf("%d quarantine log lines, want 4", n)
	}
	// Damage while running: a hint write and a delivery's drop go on.
	damage(t, s, hintKey("n2", 0, []byte("h3")), garbage)
	mustPutHint(t, s, "n2", 0, "h3", hintSet("n1", "again", 2))
	damage(t, s, hintKey("n2", 0, []byte("h4")), garbage)
	if dropped, err := s.DropHint("n2", 0, []byte("h4"), hintSet("n1", "v", 1)); err != nil || dropped {
		t.Errorf("DropHint of a damaged hint: %t, %v; want false, nil", dropped, err)
	}
	if got := s.Stats().Quarantine.Hints; got != 6 {
		t.Errorf("%d hints quarantined, want 6", got)
	}
	if got := s.HintStats()["n2"].Count; got != 2 {
		t.Errorf("HintStats counts %d hints, want 2 (h0 and the rewritten h3)", got)
	}
	n, err := s.WipeHints()
	if err != nil || n != 2 {
		t.Errorf("WipeHints: %d, %v; want 2 wiped", n, err)
	}
}

func TestDamagedCheckpointFallsBackToAFullReplay(t *testing.T) {
	clk := newTestClock()
	dir := t.TempDir()
	a := mustOpen(t, testOptions(dir, clk))
	_, c := mustPut(t, a, 0, "k", "n1", vclock.Context{}, value("checkpointed"))
	if err := a.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	crashed := t.TempDir()
	copyDir(t, filepath.Join(dir, "leveldb"), filepath.Join(crashed, "leveldb"))
	mustPut(t, a, 0, "k", "n1", c, value("after"))
	mustPut(t, a, 0, "other", "n1", vclock.Context{}, value("x"))
	copyDir(t, filepath.Join(dir, "wal"), filepath.Join(crashed, "wal"))
	closeStore(t, a)
	damageAtRest(t, crashed, checkpointKey, []byte{1, 2, 3})

	b, logs := observed(t, testOptions(crashed, clk))
	if got := values(mustGet(t, b, 0, "k").Siblings); len(got) != 1 || got[0] != "after" {
		t.Errorf("k = %v after a full replay, want [after]", got)
	}
	if got := values(mustGet(t, b, 0, "other").Siblings); len(got) != 1 || got[0] != "x" {
		t.Errorf("other = %v after a full replay, want [x]", got)
	}
	if q := b.Stats().Quarantine; q.Checkpoints != 1 || q.Held != 1 {
		t.Errorf("quarantine stats %+v, want the checkpoint record", q)
	}
	if n := quarantineLines(logs); n != 1 {
		t.Errorf("%d quarantine log lines, want 1", n)
	}
	mustPut(t, b, 0, "later", "n1", vclock.Context{}, value("y"))
	closeStore(t, b)
	c2 := mustOpen(t, testOptions(crashed, clk))
	defer closeStore(t, c2)
	for k, v := range map[string]string{"k": "after", "other": "x", "later": "y"} {
		if got := values(mustGet(t, c2, 0, k).Siblings); len(got) != 1 || got[0] != v {
			t.Errorf("%s = %v after the next open, want [%s]", k, got, v)
		}
	}
	if q := c2.Stats().Quarantine; q.Total() != 0 {
		t.Errorf("the next open met damage again: %+v", q)
	}
}

func TestReplaySetsAsideAWALRecordWhoseSetDoesNotDecode(t *testing.T) {
	clk := newTestClock()
	dir := t.TempDir()
	s := mustOpen(t, testOptions(dir, clk))
	mustPut(t, s, 0, "k", "n1", vclock.Context{}, value("earlier"))
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	for _, p := range [][]byte{
		encodeRecord(opPut, 0, []byte("k"), garbage),
		encodeRecord(opHint, 0, []byte("h"), encodeHintBody("n2", 5, garbage)),
		encodeRecord(opPut, 0, []byte("after"), sampleSet().Encode()),
	} {
		if _, err := s.wal.Append(p); err != nil {
			t.Fatal(err)
		}
	}
	crashed := t.TempDir()
	copyDir(t, dir, crashed)
	closeStore(t, s)
	_ = os.Remove(filepath.Join(crashed, "leveldb", "LOCK"))

	b, logs := observed(t, testOptions(crashed, clk))
	defer closeStore(t, b)
	if got := values(mustGet(t, b, 0, "k").Siblings); len(got) != 1 || got[0] != "earlier" {
		t.Errorf("k = %v, want its state before the undecodable record", got)
	}
	if got := mustGet(t, b, 0, "after"); !got.Equal(sampleSet()) {
		t.Errorf("the record after the undecodable ones was not replayed: %+v", got)
	}
	if q := b.Stats().Quarantine; q.WALRecords != 2 {
		t.Errorf("quarantine stats %+v, want two WAL records", q)
	}
	if n := quarantineLines(logs); n != 2 {
		t.Errorf("%d quarantine log lines, want 2", n)
	}
}

func TestReplayOverADamagedRecordKeepsACopy(t *testing.T) {
	clk := newTestClock()
	dir := t.TempDir()
	s := mustOpen(t, testOptions(dir, clk))
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	damage(t, s, dataKey(0, []byte("k")), garbage)
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.wal.Append(encodeRecord(opPut, 0, []byte("k"), sampleSet().Encode())); err != nil {
		t.Fatal(err)
	}
	crashed := t.TempDir()
	copyDir(t, dir, crashed)
	closeStore(t, s)
	_ = os.Remove(filepath.Join(crashed, "leveldb", "LOCK"))
	b := mustOpen(t, testOptions(crashed, clk))
	defer closeStore(t, b)
	if got := mustGet(t, b, 0, "k"); !got.Equal(sampleSet()) {
		t.Errorf("k = %+v, want the replayed state", got)
	}
	if files := quarantinedFiles(t, crashed); !bytes.Equal(files["data:k"], garbage) {
		t.Errorf("quarantine folder %v, want a copy of the damaged bytes the replay replaced", files)
	}
}

func TestReclaimerGoesOnPastADamagedRecord(t *testing.T) {
	clk := newTestClock()
	dir := t.TempDir()
	opts := testOptions(dir, clk)
	opts.TombstoneGrace = time.Minute
	s := mustOpen(t, opts)
	defer closeStore(t, s)
	for _, k := range []string{"a", "b"} {
		mustPut(t, s, 0, k, "n1", vclock.Context{}, vclock.Sibling{Tombstone: true})
	}
	damage(t, s, dataKey(0, []byte("a")), garbage)
	clk.Advance(2 * time.Minute)
	if _, err := s.reclaimPass(); err != nil {
		t.Fatalf("reclaim pass: %v", err)
	}
	if _, err := s.Get(0, []byte("b")); !errors.Is(err, ErrNotFound) {
		t.Errorf("b after the pass: %v, want reaped", err)
	}
	if q := s.Stats().Quarantine; q.Data != 1 {
		t.Errorf("quarantine stats %+v, want the damaged record", q)
	}
	if idx := reclaimIndex(t, s); len(idx) != 0 {
		t.Errorf("reclaim index keeps %d entries", len(idx))
	}
}

func TestARecordThatCannotBeMovedAsideStaysAndIsRetried(t *testing.T) {
	dir := t.TempDir()
	s, logs := observed(t, testOptions(dir, newTestClock()))
	defer closeStore(t, s)
	mustPut(t, s, 0, "k", "n1", vclock.Context{}, value("v"))
	damage(t, s, dataKey(0, []byte("k")), garbage)
	// A file where the folder should be: the copy cannot be written.
	blocker := filepath.Join(dir, QuarantineDirName)
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := s.Get(0, []byte("k")); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get: %v, want ErrNotFound (skipped for now)", err)
		}
	}
	if err := s.Scan(func(int, []byte, vclock.Set) error { return nil }); err != nil {
		t.Fatalf("Scan: %v", err)
	}
	if _, _, err := s.Put(0, []byte("k"), "n1", vclock.Context{}, value("w")); !errors.Is(err, errNotQuarantined) {
		t.Fatalf("Put over a record that cannot be moved aside: %v, want it to fail rather than destroy the bytes", err)
	}
	if v, ok := rawRecord(t, s, dataKey(0, []byte("k"))); !ok || !bytes.Equal(v, garbage) {
		t.Fatal("the damaged bytes are gone though no copy was kept")
	}
	q := s.Stats().Quarantine
	if q.Failures < 5 || q.Total() != 0 {
		t.Errorf("quarantine stats %+v, want only failures", q)
	}
	if n := logs.FilterMessageSnippet("could not be moved aside").Len(); n != 1 {
		t.Errorf("%d warnings about the failure, want one (rate-limited)", n)
	}
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, 0, "k", "n1", vclock.Context{}, value("w"))
	if q := s.Stats().Quarantine; q.Data != 1 {
		t.Errorf("quarantine stats %+v after the folder could be written, want the record moved aside", q)
	}
}

func TestDamagedCheckpointAfterACleanCloseLosesNothing(t *testing.T) {
	clk := newTestClock()
	dir := t.TempDir()
	a := mustOpen(t, testOptions(dir, clk))
	for i := range 20 {
		mustPut(t, a, 0, fmt.Sprintf("k%d", i), "n1", vclock.Context{}, value(fmt.Sprintf("v%d", i)))
	}
	closeStore(t, a) // a final checkpoint releases what it can of the WAL
	damageAtRest(t, dir, checkpointKey, binary.BigEndian.AppendUint64(nil, math.MaxUint64))
	b := mustOpen(t, testOptions(dir, clk))
	for i := range 20 {
		mustPut(t, b, 1, fmt.Sprintf("k%d", i), "n1", vclock.Context{}, value(fmt.Sprintf("w%d", i)))
	}
	closeStore(t, b)
	c := mustOpen(t, testOptions(dir, clk))
	defer closeStore(t, c)
	for i := range 20 {
		for db, v := range map[int]string{0: fmt.Sprintf("v%d", i), 1: fmt.Sprintf("w%d", i)} {
			if got := values(mustGet(t, c, db, fmt.Sprintf("k%d", i)).Siblings); len(got) != 1 || got[0] != v {
				t.Fatalf("db %d k%d = %v, want [%s]", db, i, got, v)
			}
		}
	}
	if lsn := c.Stats().CheckpointLSN; lsn == 0 || lsn == math.MaxUint64 {
		t.Errorf("checkpoint LSN %d after the fallback", lsn)
	}
}
