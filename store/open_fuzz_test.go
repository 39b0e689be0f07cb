package store

import (
	"encoding/binary"
	"errors"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/syndtr/goleveldb/leveldb"

	"github.com/dynkv/dynkv/vclock"
)

// FuzzOpenWithStoredRecords puts arbitrary bytes where the store keeps its
// records in LevelDB (the checkpoint, a key's stored state, a hint) and
// opens it, as a restart on a damaged disk would. Open must not panic and
// must not fail: a damaged checkpoint makes it replay the whole WAL, a
// damaged hint is moved aside (quarantine.go). A damaged key state must
// read as absent (moved aside), an intact one back as stored; each damaged
// record is counted once.
func FuzzOpenWithStoredRecords(f *testing.F) {
	ckpt := binary.BigEndian.AppendUint64(nil, 0)
	f.Add(ckpt, sampleSet().Encode(), encodeHintValue(42, sampleSet().Encode()))
	f.Add(binary.BigEndian.AppendUint64(nil, 7), vclock.Set{}.Encode(), encodeHintValue(0, hintSet("n1", "v", 1).Encode()))
	f.Add(binary.BigEndian.AppendUint64(nil, ^uint64(0)), []byte{1}, []byte{})
	f.Add(binary.BigEndian.AppendUint64(nil, ^uint64(0)), sampleSet().Encode(), encodeHintValue(5, sampleSet().Encode()))
	f.Add([]byte{0, 0, 0, 1}, []byte{}, encodeHintValue(1, nil))
	f.Fuzz(func(t *testing.T, ckpt, data, hint []byte) {
		dir := t.TempDir()
		key := []byte("k")
		ldb, err := leveldb.OpenFile(filepath.Join(dir, "leveldb"), nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, kv := range [][2][]byte{{checkpointKey, ckpt}, {dataKey(0, key), data}, {hintKey("n2", 0, key), hint}} {
			if err := ldb.Put(kv[0], kv[1], nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := ldb.Close(); err != nil {
			t.Fatal(err)
		}

		s, err := Open(testOptions(dir, newTestClock()))
		if err != nil {
			t.Fatalf("Open over damaged records: %v", err)
		}
		defer closeStore(t, s)
		ckptDamaged := len(ckpt) != 8 || binary.BigEndian.Uint64(ckpt) == math.MaxUint64
		_, _, hintErr := decodeHintValue(hint)
		want, decErr := vclock.DecodeSet(data)

		got, err := s.Get(0, key)
		switch {
		case decErr != nil:
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("Get of a damaged stored state (%v): %v, want it moved aside and absent", decErr, err)
			}
		case err != nil:
			t.Fatalf("Get of an intact stored state: %v", err)
		case !got.Equal(want):
			t.Fatal("Get returned another state than the one stored")
		}
		var hints int
		if err := s.ScanHints("n2", func(int, []byte, vclock.Set, time.Time) error { hints++; return nil }); err != nil {
			t.Fatalf("ScanHints after Open: %v", err)
		}
		wantHints := 1
		if hintErr != nil {
			wantHints = 0
		}
		if hints != wantHints {
			t.Fatalf("ScanHints after Open: %d hints, want %d (decode error %v)", hints, wantHints, hintErr)
		}
		q := s.Stats().Quarantine
		b2u := func(b bool) uint64 {
			if b {
				return 1
			}
			return 0
		}
		if q.Checkpoints != b2u(ckptDamaged) || q.Hints != b2u(hintErr != nil) || q.Data != b2u(decErr != nil) {
			t.Fatalf("quarantine stats %+v for checkpoint damaged %t, hint %v, data %v", q, ckptDamaged, hintErr, decErr)
		}
	})
}
