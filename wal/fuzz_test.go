package wal

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"

	"github.com/dynkv/dynkv/wal/waltest"
)

func validSegment(payloads ...string) []byte {
	b := segmentHeader()
	for i, p := range payloads {
		b = appendRecord(b, uint64(i+1), payloadChecksum([]byte(p)), []byte(p))
	}
	return b
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add(validSegment("hello")[segmentHeaderSize:])
	f.Add(validSegment("")[segmentHeaderSize:])
	f.Add(validSegment("a", "bb")[segmentHeaderSize:])
	f.Add([]byte{})
	f.Add(make([]byte, frameHeaderSize))
	f.Add(bytes.Repeat([]byte{0xff}, 40))
	f.Fuzz(func(t *testing.T, b []byte) {
		lsn, payload, n, reason := decodeRecord(b)
		if reason != "" {
			if n != 0 || payload != nil {
				t.Fatalf("damaged record %q decoded to n=%d payload=%q", reason, n, payload)
			}
			return
		}
		if n < frameHeaderSize || n > len(b) || lsn == 0 {
			t.Fatalf("decoded n=%d lsn=%d from %d bytes", n, lsn, len(b))
		}
		again := appendRecord(nil, lsn, payloadChecksum(payload), payload)
		if !bytes.Equal(again, b[:n]) {
			t.Fatalf("decoded record does not re-encode to its bytes:\n got %x\nwant %x", again, b[:n])
		}
	})
}

// FuzzRecovery puts arbitrary bytes in a segment, as the only one or after
// a valid one, and opens the log: Open must not panic, must fail only with
// ErrCorrupt (never with Repair), and must replay exactly the valid prefix.
func FuzzRecovery(f *testing.F) {
	f.Add(validSegment("one", "two", "three"), false, false)
	f.Add(validSegment("one", "two", "three")[:30], false, true)
	f.Add(validSegment(), true, false)
	f.Add([]byte("DYNKVWAL"), false, false)
	f.Add([]byte("garbage that is not a log at all, not even close"), true, true)
	flipped := validSegment("one", "two", "three")
	flipped[35] ^= 4
	f.Add(flipped, false, false)
	f.Add(flipped, false, true)
	f.Fuzz(func(t *testing.T, data []byte, afterValid, repair bool) {
		fsys := waltest.NewMemFS()
		var want []rec
		base := uint64(1)
		if afterValid {
			first := validSegment("earlier")
			fsys.SetBytes(filepath.Join(memDir, segmentName(1)), first)
			want = append(want, rec{1, []byte("earlier")})
			base = 2
		}
		path := filepath.Join(memDir, segmentName(base))
		fsys.SetBytes(path, data)

		opts := Options{Dir: memDir, FS: fsys, Repair: repair}
		w, err := Open(opts)
		if err != nil {
			if repair || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open (repair %v): %v", repair, err)
			}
			return
		}
		defer w.Close()
		// The valid prefix: header, then records with increasing LSNs.
		if checkSegmentHeader(data) == "" {
			prev := base - 1
			for off := segmentHeaderSize; off < len(data); {
				lsn, p, n, reason := decodeRecord(data[off:])
				if reason != "" || lsn <= prev {
					break
				}
				want = append(want, rec{lsn, p})
				prev, off = lsn, off+n
			}
		}
		got := replayAll(t, w, 0)
		checkRecords(t, "replay of a fuzzed segment", got, want)
		last := uint64(0)
		if len(want) > 0 {
			last = want[len(want)-1].lsn
		}
		r, err := w.Append([]byte("after"))
		if err != nil || r <= last {
			t.Fatalf("append after recovery: lsn %d, %v; want above %d", r, err, last)
		}
	})
}
