package store

import (
	"encoding/binary"
	"errors"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/syndtr/goleveldb/leveldb"

	"github.com/dynkv/dynkv/vclock"
)

// FuzzOpenWithStoredRecords puts arbitrary bytes where the store keeps its
// records in LevelDB (the checkpoint, a key's stored state, a hint) and
// opens it, as a restart on a damaged disk would. Open must not panic and
// must fail, with an error naming what is damaged, exactly when the
// checkpoint is not 8 bytes or the hint does not decode; a damaged key
// state must make reads of that key fail, not crash, and an intact one
// must read back as stored.
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
		_, _, hintErr := decodeHintValue(hint)
		switch {
		case len(ckpt) != 8 || binary.BigEndian.Uint64(ckpt) == math.MaxUint64:
			if err == nil || !strings.Contains(err.Error(), "checkpoint") {
				t.Fatalf("Open with checkpoint %x: %v, want an error about the checkpoint", ckpt, err)
			}
			return
		case hintErr != nil:
			if err == nil || !strings.Contains(err.Error(), "hint") {
				t.Fatalf("Open with a damaged hint (%v): %v, want an error about the hint", hintErr, err)
			}
			return
		case err != nil:
			t.Fatalf("Open with an intact checkpoint and hint: %v", err)
		}
		defer closeStore(t, s)

		want, decErr := vclock.DecodeSet(data)
		got, err := s.Get(0, key)
		switch {
		case decErr != nil:
			if err == nil || errors.Is(err, ErrNotFound) {
				t.Fatalf("Get of a damaged stored state (%v): %v, want a decode error", decErr, err)
			}
		case err != nil:
			t.Fatalf("Get of an intact stored state: %v", err)
		case !got.Equal(want):
			t.Fatal("Get returned another state than the one stored")
		}
		var hints int
		if err := s.ScanHints("n2", func(int, []byte, vclock.Set, time.Time) error { hints++; return nil }); err != nil || hints != 1 {
			t.Fatalf("ScanHints after Open: %d hints, %v; want the one stored", hints, err)
		}
	})
}
