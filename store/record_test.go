package store

import (
	"bytes"
	"errors"
	"testing"

	"github.com/dynkv/dynkv/vclock"
)

func sampleSet() vclock.Set {
	set, ctx := vclock.Set{}.Update("n1", vclock.Context{}, vclock.Sibling{Value: []byte("v1"), ContentType: "text/plain", LastModified: 1, Expires: 9})
	set, _ = set.Update("n2", vclock.Context{}.Add(vclock.Dot{Actor: "n9", Counter: 3}), vclock.Sibling{Value: []byte("v2"), LastModified: 2})
	set, _ = set.Update("n1", ctx, vclock.Sibling{Tombstone: true, LastModified: 3})
	return set
}

func TestRecordRoundTrips(t *testing.T) {
	set := sampleSet()
	for _, tc := range []struct {
		op  recordOp
		db  int
		key []byte
	}{
		{opPut, 0, []byte("k")},
		{opPut, 255, bytes.Repeat([]byte{0xff}, MaxKeyLen)},
		{opDrop, 7, []byte("gone")},
	} {
		var body []byte
		if tc.op == opPut {
			body = set.Encode()
		}
		r, err := decodeRecord(encodeRecord(tc.op, tc.db, tc.key, body))
		if err != nil {
			t.Fatalf("decode %s db %d: %v", tc.op, tc.db, err)
		}
		if r.op != tc.op || r.db != tc.db || !bytes.Equal(r.key, tc.key) {
			t.Fatalf("decoded %s db %d key %d bytes, want %s db %d key %d bytes", r.op, r.db, len(r.key), tc.op, tc.db, len(tc.key))
		}
		if tc.op == opPut && !r.set.Equal(set) {
			t.Fatalf("decoded set %+v, want %+v", r.set, set)
		}
	}
}

func TestRecordDecoderRejectsMalformedPayloads(t *testing.T) {
	good := encodeRecord(opPut, 1, []byte("key"), sampleSet().Encode())
	cases := map[string][]byte{
		"empty":             nil,
		"short":             {recordVersion, byte(opDrop), 0},
		"unknown version":   append([]byte{9}, good[1:]...),
		"unknown op":        append([]byte{recordVersion, 7}, good[2:]...),
		"zero-length key":   {recordVersion, byte(opDrop), 0, 0},
		"key past the end":  {recordVersion, byte(opDrop), 0, 10, 'k'},
		"key too long":      append([]byte{recordVersion, byte(opDrop), 0, 0x81, 0x08}, bytes.Repeat([]byte("k"), 1025)...),
		"varint overflow":   {recordVersion, byte(opDrop), 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"drop with a body":  append(encodeRecord(opDrop, 0, []byte("k"), nil), 1),
		"truncated put":     good[:len(good)-1],
		"put without a set": encodeRecord(opPut, 0, []byte("k"), nil),
	}
	for name, b := range cases {
		if _, err := decodeRecord(b); !errors.Is(err, errBadRecord) {
			t.Errorf("%s: err %v, want errBadRecord", name, err)
		}
	}
}

// FuzzDecodeRecord: the WAL payload decoder never panics, and whatever it
// accepts encodes back to a payload that decodes to the same record.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(encodeRecord(opPut, 0, []byte("k"), sampleSet().Encode()))
	f.Add(encodeRecord(opPut, 15, []byte("a/longer/key"), vclock.Set{}.Encode()))
	f.Add(encodeRecord(opDrop, 3, []byte("gone"), nil))
	f.Add([]byte{recordVersion, byte(opDrop), 0, 0x81, 0x08})
	f.Add([]byte{})
	f.Add(encodeRecord(opHint, 2, []byte("k"), encodeHintBody("n3", 42, sampleSet().Encode())))
	f.Add(encodeRecord(opHintDrop, 2, []byte("k"), encodeHintBody("n3", 0, nil)))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecord(b)
		if err != nil {
			if !errors.Is(err, errBadRecord) {
				t.Fatalf("error %v does not wrap errBadRecord", err)
			}
			return
		}
		var body []byte
		switch r.op {
		case opPut:
			body = r.set.Encode()
		case opHint:
			body = encodeHintBody(r.owner, r.created, r.set.Encode())
		case opHintDrop:
			body = encodeHintBody(r.owner, 0, nil)
		}
		again, err := decodeRecord(encodeRecord(r.op, r.db, r.key, body))
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if again.op != r.op || again.db != r.db || !bytes.Equal(again.key, r.key) || !again.set.Equal(r.set) ||
			again.owner != r.owner || again.created != r.created {
			t.Fatalf("round trip changed the record: %+v -> %+v", r, again)
		}
	})
}

// FuzzParseReclaimKey: index keys parse without panicking and the keys the
// store builds parse back to what built them.
func FuzzParseReclaimKey(f *testing.F) {
	f.Add(int64(0), 0, []byte("k"))
	f.Add(int64(1)<<62, 255, []byte("some/key"))
	f.Add(int64(-5), 3, []byte{0})
	f.Fuzz(func(t *testing.T, at int64, db int, key []byte) {
		parseReclaimKey(key) // arbitrary bytes: must not panic
		if db < 0 || db > 255 || len(key) == 0 {
			return
		}
		gotAt, gotDB, gotKey, ok := parseReclaimKey(reclaimKey(at, db, key))
		wantAt := at
		if wantAt < 0 {
			wantAt = 0
		}
		if !ok || gotAt != wantAt || gotDB != db || !bytes.Equal(gotKey, key) {
			t.Fatalf("reclaimKey(%d, %d, %q) parsed as (%d, %d, %q, %v)", at, db, key, gotAt, gotDB, gotKey, ok)
		}
		if bytes.Compare(reclaimKey(at, db, key), reclaimBound(at)) >= 0 {
			t.Fatalf("entry at %d sorts at or after the scan bound for %d", at, at)
		}
	})
}
