package store

import (
	"bytes"
	"testing"
)

// FuzzDecodeHintValue: a hint as LevelDB holds it (created timestamp, then
// the Set encoding) is read back at every delivery round; damaged bytes
// must give an error, never a panic, and an accepted value must be the one
// encodeHintValue writes for what it decoded to.
func FuzzDecodeHintValue(f *testing.F) {
	f.Add(encodeHintValue(42, sampleSet().Encode()))
	f.Add(encodeHintValue(-1, hintSet("n1", "v", 1).Encode()))
	f.Add(encodeHintValue(0, nil))
	f.Add([]byte{0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		created, set, err := decodeHintValue(b)
		if err != nil {
			return
		}
		if again := encodeHintValue(created, set.Encode()); !bytes.Equal(again, b) {
			t.Fatalf("hint value re-encodes differently:\n in %x\nout %x", b, again)
		}
	})
}
