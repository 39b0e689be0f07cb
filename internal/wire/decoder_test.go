package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"
)

var errTest = errors.New("test: malformed")

// TestDecoderReadsWhatAppendWrites: every field the append helpers and
// encoding/binary produce reads back, in order, with the offset advancing
// by what each took and nothing left over.
func TestDecoderReadsWhatAppendWrites(t *testing.T) {
	var b []byte
	b = append(b, 7)
	b = binary.AppendUvarint(b, 300)
	b = binary.AppendVarint(b, -5)
	b = binary.AppendVarint(b, math.MinInt64)
	b = AppendString(b, "actor")
	b = AppendBytes(b, []byte{1, 2, 3})
	b = AppendBytes(b, nil)
	b = binary.LittleEndian.AppendUint64(b, 0x0102030405060708)
	b = binary.AppendUvarint(b, 2)
	b = append(b, 9, 9)

	d := NewDecoder(b, errTest)
	if v, err := d.Byte("b"); err != nil || v != 7 {
		t.Fatalf("Byte = %d, %v; want 7", v, err)
	}
	if v, err := d.Uvarint("u"); err != nil || v != 300 {
		t.Fatalf("Uvarint = %d, %v; want 300", v, err)
	}
	if d.Offset() != 3 {
		t.Fatalf("Offset after byte and 2-byte uvarint = %d, want 3", d.Offset())
	}
	if v, err := d.Varint("v"); err != nil || v != -5 {
		t.Fatalf("Varint = %d, %v; want -5", v, err)
	}
	if v, err := d.Varint("v"); err != nil || v != math.MinInt64 {
		t.Fatalf("Varint = %d, %v; want MinInt64", v, err)
	}
	if v, err := d.Bytes("s", 5); err != nil || string(v) != "actor" {
		t.Fatalf("Bytes = %q, %v; want actor", v, err)
	}
	v, err := d.Bytes("b", 3)
	if err != nil || !bytes.Equal(v, []byte{1, 2, 3}) {
		t.Fatalf("Bytes = %v, %v; want [1 2 3]", v, err)
	}
	if cap(v) != 3 {
		t.Fatalf("Bytes result has cap %d, want 3 so appending cannot clobber the buffer", cap(v))
	}
	if v, err := d.Bytes("empty", 0); err != nil || len(v) != 0 {
		t.Fatalf("Bytes = %v, %v; want empty", v, err)
	}
	if v, err := d.Uint64LE("h"); err != nil || v != 0x0102030405060708 {
		t.Fatalf("Uint64LE = %#x, %v", v, err)
	}
	if n, err := d.Count("n", 1); err != nil || n != 2 {
		t.Fatalf("Count = %d, %v; want 2", n, err)
	}
	if d.Len() != 2 {
		t.Fatalf("Len = %d, want 2", d.Len())
	}
	if err := d.End("frame"); err == nil || !strings.Contains(err.Error(), "2 trailing bytes") {
		t.Fatalf("End with 2 bytes left = %v, want trailing-bytes error", err)
	}
	d.Byte("x")
	d.Byte("x")
	if err := d.End("frame"); err != nil {
		t.Fatalf("End after reading everything = %v", err)
	}
}

// TestDecoderRejectsWithSentinelAndOffset: each rejection wraps the
// sentinel given to NewDecoder and names the offset where the bad field
// starts.
func TestDecoderRejectsWithSentinelAndOffset(t *testing.T) {
	overflow := bytes.Repeat([]byte{0xff}, 10)
	overflow = append(overflow, 0x01)
	tests := []struct {
		name string
		in   []byte
		read func(d *Decoder) error
		want string
	}{
		{"byte at end", []byte{}, func(d *Decoder) error { _, err := d.Byte("flags"); return err },
			"offset 0: flags: unexpected end of input"},
		{"uvarint at end", []byte{0x80}, func(d *Decoder) error { _, err := d.Uvarint("n"); return err },
			"offset 0: n: unexpected end of input"},
		{"uvarint overflow", overflow, func(d *Decoder) error { _, err := d.Uvarint("n"); return err },
			"offset 0: n: varint overflows 64 bits"},
		{"uvarint not minimal", []byte{0x81, 0x00}, func(d *Decoder) error { _, err := d.Uvarint("n"); return err },
			"offset 0: n: varint not minimally encoded"},
		{"varint not minimal", []byte{0x80, 0x00}, func(d *Decoder) error { _, err := d.Varint("ts"); return err },
			"offset 0: ts: varint not minimally encoded"},
		{"count too large for bytes left", []byte{1, 5, 0, 0}, func(d *Decoder) error {
			d.Byte("skip")
			_, err := d.Count("items", 2)
			return err
		}, "offset 1: items 5 cannot fit in the 2 bytes left"},
		{"bytes over limit", []byte{4, 'a', 'b', 'c', 'd'}, func(d *Decoder) error { _, err := d.Bytes("key length", 3); return err },
			"offset 0: key length 4 exceeds the limit 3"},
		{"bytes past end", []byte{0, 3, 'a'}, func(d *Decoder) error {
			d.Byte("skip")
			_, err := d.Bytes("value length", 10)
			return err
		}, "offset 1: value length 3 exceeds the 1 bytes left"},
		{"fixed64 short", []byte{1, 2, 3}, func(d *Decoder) error { _, err := d.Uint64LE("hash"); return err },
			"offset 0: hash: unexpected end of input"},
		{"trailing", []byte{1, 2}, func(d *Decoder) error { d.Byte("b"); return d.End("ack") },
			"offset 1: ack: 1 trailing bytes"},
		{"caller's own check", []byte{9}, func(d *Decoder) error { d.Byte("b"); return d.ErrorfAt(0, "flag %d, want 0 or 1", 9) },
			"offset 0: flag 9, want 0 or 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDecoder(tc.in, errTest)
			err := tc.read(&d)
			if !errors.Is(err, errTest) {
				t.Fatalf("error %v does not wrap the sentinel", err)
			}
			if want := "test: malformed: " + tc.want; err.Error() != want {
				t.Fatalf("error\n got %q\nwant %q", err, want)
			}
		})
	}
}

func TestLenHelpersMatchEncodings(t *testing.T) {
	for _, x := range []uint64{0, 1, 127, 128, 16383, 16384, math.MaxUint32, math.MaxUint64} {
		if got, want := UvarintLen(x), len(binary.AppendUvarint(nil, x)); got != want {
			t.Errorf("UvarintLen(%d) = %d, want %d", x, got, want)
		}
	}
	for _, x := range []int64{0, -1, 1, 63, -64, 64, -65, math.MaxInt64, math.MinInt64} {
		if got, want := VarintLen(x), len(binary.AppendVarint(nil, x)); got != want {
			t.Errorf("VarintLen(%d) = %d, want %d", x, got, want)
		}
	}
	for _, n := range []int{0, 1, 127, 128, 1 << 20} {
		if got, want := BytesLen(n), len(AppendBytes(nil, make([]byte, n))); got != want {
			t.Errorf("BytesLen(%d) = %d, want %d", n, got, want)
		}
	}
}

// FuzzDecoder drives a Decoder with a program taken from the input's first
// bytes over the rest: it must never panic, never move backwards or past
// the end, wrap the sentinel in the first error (callers stop there), and whatever it accepts must
// re-encode to exactly the bytes it consumed (one encoding per value).
func FuzzDecoder(f *testing.F) {
	var frame []byte
	frame = binary.AppendUvarint(frame, 300)
	frame = binary.AppendVarint(frame, -7)
	frame = AppendString(frame, "node-a")
	frame = binary.LittleEndian.AppendUint64(frame, 42)
	f.Add([]byte{1, 2, 3, 4, 5, 0}, frame)
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6}, []byte{})
	f.Add([]byte{1}, []byte{0x81, 0x00})
	f.Add([]byte{5, 3}, []byte{3, 0, 0, 0, 1})
	f.Add([]byte{4}, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, prog, in []byte) {
		d := NewDecoder(in, errTest)
		for _, op := range prog {
			start := d.Offset()
			var err error
			var re []byte
			switch op % 7 {
			case 0:
				var v byte
				v, err = d.Byte("b")
				re = []byte{v}
			case 1:
				var v uint64
				v, err = d.Uvarint("u")
				re = binary.AppendUvarint(nil, v)
			case 2:
				var v int64
				v, err = d.Varint("v")
				re = binary.AppendVarint(nil, v)
			case 3:
				var v []byte
				v, err = d.Bytes("s", int(op>>3))
				re = AppendBytes(nil, v)
			case 4:
				var v uint64
				v, err = d.Uint64LE("h")
				re = binary.LittleEndian.AppendUint64(nil, v)
			case 5:
				var n int
				n, err = d.Count("n", int(op>>3))
				re = binary.AppendUvarint(nil, uint64(n))
				if err == nil && n*max(int(op>>3), 1) > d.Len() {
					t.Fatalf("Count %d of at least %d bytes accepted with %d left", n, op>>3, d.Len())
				}
			case 6:
				err = d.End("frame")
			}
			if d.Offset() < start || d.Offset() > len(in) || d.Len() != len(in)-d.Offset() {
				t.Fatalf("offset %d after op %d from %d, input %d bytes", d.Offset(), op, start, len(in))
			}
			if err != nil {
				if !errors.Is(err, errTest) {
					t.Fatalf("error %v does not wrap the sentinel", err)
				}
				return
			}
			if got := in[start:d.Offset()]; !bytes.Equal(got, re) {
				t.Fatalf("op %d accepted % x but the value re-encodes to % x", op, got, re)
			}
		}
	})
}
