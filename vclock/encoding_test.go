package vclock

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// The byte layout is part of what nodes store and exchange; this pins it.
func TestContextEncodingLayout(t *testing.T) {
	c := mk("a:2", "b:3")
	want := []byte{1, 1, 1, 'a', 2, 1, 1, 'b', 3}
	if got := c.Encode(); !bytes.Equal(got, want) {
		t.Fatalf("Encode(%s) = %v, want %v", c, got, want)
	}
	if got := (Context{}).Encode(); !bytes.Equal(got, []byte{1, 0, 0}) {
		t.Fatalf("Encode(zero) = %v, want [1 0 0]", got)
	}
}

func TestSetEncodingLayout(t *testing.T) {
	s := Set{Context: mk("a:2 b:1", ""), Siblings: []Sibling{
		{Dot: Dot{"b", 1}, Value: []byte("hi"), ContentType: "t", LastModified: 1, Expires: -1, Tombstone: false},
	}}
	want := []byte{1, 2, 1, 'a', 2, 1, 'b', 1, 0, // context
		1,       // siblings
		1, 1, 0, // actor index of b, counter, flags
		2, 1, // zigzag 1 and -1
		1, 't', 2, 'h', 'i'}
	if got := s.Encode(); !bytes.Equal(got, want) {
		t.Fatalf("Encode = %v, want %v", got, want)
	}
}

func TestContextRoundTrip(t *testing.T) {
	r := newRand(t)
	actors := []string{"", "a", "n1", strings.Repeat("x", MaxActorLen), "node-\x00-\xff"}
	for i := range 2000 {
		c := fromModel(randomModel(r, actors, 300))
		if r.Intn(10) == 0 {
			c = c.Add(Dot{"big", ^uint64(0) - uint64(r.Intn(3))})
		}
		b := c.Encode()
		got, err := DecodeContext(b)
		if err != nil {
			t.Fatalf("case %d: DecodeContext(Encode(%s)): %v", i, c, err)
		}
		if !got.Equal(c) {
			t.Fatalf("case %d: round trip of %s gave %s", i, c, got)
		}
	}
}

func TestSetRoundTrip(t *testing.T) {
	r := newRand(t)
	cl := newCluster(r, 4)
	for i := range 2000 {
		cl.step()
		s := cl.seen[len(cl.seen)-1]
		if i%50 == 0 {
			s, _ = s.Update("n1", s.Context, Sibling{Value: bytes.Repeat([]byte{7}, 70000), ContentType: strings.Repeat("c", MaxContentTypeLen), LastModified: -1 << 62, Expires: 1<<63 - 1})
		}
		b := s.Encode()
		got, err := DecodeSet(b)
		if err != nil {
			t.Fatalf("case %d: DecodeSet(Encode()): %v", i, err)
		}
		if !got.Equal(s) {
			t.Fatalf("case %d: round trip of %s %s gave %s %s", i, s.Context, dots(s), got.Context, dots(got))
		}
		// The decoded set must not alias the input buffer.
		for i := range b {
			b[i] = 0xAA
		}
		if !got.Equal(s) {
			t.Fatalf("case %d: decoded set changed when the input buffer was overwritten", i)
		}
	}
}

func TestSetEncodePanicsOnUncoveredSibling(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("Encode of a set whose context misses a sibling did not panic")
		}
	}()
	Set{Siblings: []Sibling{{Dot: Dot{"a", 1}}}}.Encode()
}

// build assembles test encodings from bytes, uvarints (int) and strings
// (length-prefixed).
func build(parts ...any) []byte {
	var b []byte
	for _, p := range parts {
		switch v := p.(type) {
		case byte:
			b = append(b, v)
		case int:
			b = binary.AppendUvarint(b, uint64(v))
		case uint64:
			b = binary.AppendUvarint(b, v)
		case string:
			b = appendString(b, v)
		case []byte:
			b = append(b, v...)
		}
	}
	return b
}

func TestDecodeContextRejects(t *testing.T) {
	long := strings.Repeat("x", MaxActorLen+1)
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"empty input", nil, "unexpected end"},
		{"unknown version", []byte{2, 0, 0}, "format version 2"},
		{"trailing bytes", []byte{1, 0, 0, 0}, "trailing"},
		{"non-minimal varint", []byte{1, 0x80, 0x00, 0}, "minimally"},
		{"varint overflow", build(byte(1), []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}), "overflows"},
		{"count beyond input", build(byte(1), 1000, "a", 1), "cannot fit"},
		{"huge count", build(byte(1), uint64(1)<<62), "cannot fit"},
		{"zero vector counter", build(byte(1), 1, "a", 0, 0), "zero counter"},
		{"unsorted vector", build(byte(1), 2, "b", 1, "a", 1, 0), "not after"},
		{"duplicate vector actor", build(byte(1), 2, "a", 1, "a", 2, 0), "not after"},
		{"actor too long", build(byte(1), 1, long, 1, 0), "exceeds the limit"},
		{"actor beyond input", build(byte(1), 1, 9, []byte("ab"), 1, 0), "bytes left"},
		{"dot covered by vector", build(byte(1), 1, "a", 3, 1, "a", 2), "covered by or contiguous"},
		{"dot contiguous with vector", build(byte(1), 1, "a", 3, 1, "a", 4), "covered by or contiguous"},
		{"dot one without vector", build(byte(1), 0, 1, "a", 1), "covered by or contiguous"},
		{"zero dot", build(byte(1), 0, 1, "a", 0), "covered by or contiguous"},
		{"unsorted dots", build(byte(1), 0, 2, "b", 3, "a", 3), "not after"},
		{"duplicate dots", build(byte(1), 0, 2, "a", 3, "a", 3), "not after"},
		{"dots out of counter order", build(byte(1), 0, 2, "a", 5, "a", 3), "not after"},
		{"dot at top of a full vector", build(byte(1), 1, "a", ^uint64(0), 1, "a", ^uint64(0)), "covered by or contiguous"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeContext(tc.in)
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("DecodeContext(%v) error %v, want ErrMalformed mentioning %q", tc.in, err, tc.want)
			}
		})
	}
}

func TestDecodeSetRejects(t *testing.T) {
	ctx := []any{byte(1), 1, "a", 2, 0} // version, [a:2]
	sib := func(parts ...any) []byte { return build(append(append([]any{}, ctx...), parts...)...) }
	tooMany := sib(MaxSiblings+1, make([]byte, (MaxSiblings+1)*minSiblingLen))
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"context version only", []byte{1}, "unexpected end"},
		{"unknown version", []byte{9, 0, 0, 0}, "format version 9"},
		{"missing sibling count", sib(), "unexpected end"},
		{"trailing bytes", sib(0, byte(0)), "trailing"},
		{"too many siblings", tooMany, "more than the limit"},
		{"count beyond input", sib(3, 0, 1, byte(0), 0, 0, 0, 0), "cannot fit"},
		{"actor index out of range", sib(1, 1, 1, byte(0), 0, 0, 0, 0), "out of range"},
		{"dot not covered", sib(1, 0, 3, byte(0), 0, 0, 0, 0), "not covered"},
		{"zero dot", sib(1, 0, 0, byte(0), 0, 0, 0, 0), "not covered"},
		{"duplicate dots", sib(2, 0, 1, byte(0), 0, 0, 0, 0, 0, 1, byte(0), 0, 0, 0, 0), "not after"},
		{"unsorted dots", sib(2, 0, 2, byte(0), 0, 0, 0, 0, 0, 1, byte(0), 0, 0, 0, 0), "not after"},
		{"unknown flags", sib(1, 0, 1, byte(4), 0, 0, 0, 0), "unknown flags"},
		{"tombstone counter", sib(1, 0, 1, byte(3), 0, 0, 0, 0), "unknown flags"},
		{"counter share missing", sib(1, 0, 1, byte(2), 0, 0, 0, 0), "counter share"},
		{"content type too long", sib(1, 0, 1, byte(0), 0, 0, strings.Repeat("c", 256), 0), "exceeds the limit"},
		{"value beyond input", sib(1, 0, 1, byte(0), 0, 0, 0, 1000, []byte("abc")), "bytes left"},
		{"value above 64 MiB", sib(1, 0, 1, byte(0), 0, 0, 0, MaxValueLen+1), "exceeds the limit"},
		{"non-minimal timestamp", sib(1, 0, 1, byte(0), []byte{0x81, 0x00}, 0, 0, 0), "minimally"},
		{"truncated sibling", sib(1, 0, 1, byte(0), 0), "cannot fit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeSet(tc.in)
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("DecodeSet error %v, want ErrMalformed mentioning %q", err, tc.want)
			}
		})
	}
}

// Every proper prefix of a valid encoding is rejected: a torn record is
// never mistaken for a shorter valid one.
func TestDecodeRejectsEveryTruncation(t *testing.T) {
	s := exampleSet()
	for _, tc := range []struct {
		name   string
		enc    []byte
		decode func([]byte) error
	}{
		{"set", s.Encode(), func(b []byte) error { _, err := DecodeSet(b); return err }},
		{"context", s.Context.Encode(), func(b []byte) error { _, err := DecodeContext(b); return err }},
	} {
		if err := tc.decode(tc.enc); err != nil {
			t.Fatalf("%s: valid encoding rejected: %v", tc.name, err)
		}
		for n := range len(tc.enc) {
			if err := tc.decode(tc.enc[:n]); !errors.Is(err, ErrMalformed) {
				t.Fatalf("%s: prefix of %d of %d bytes: error %v, want ErrMalformed", tc.name, n, len(tc.enc), err)
			}
		}
	}
}

// exampleSet is a typical stored key: two concurrent values from two
// coordinators, one superseded write, a 100-byte value.
func exampleSet() Set {
	var s Set
	s, _ = s.Update("node-1", Context{}, Sibling{Value: bytes.Repeat([]byte("v"), 100), ContentType: "application/octet-stream", LastModified: 1732530000000000000})
	read := s.Context
	s, _ = s.Update("node-1", read, Sibling{Value: bytes.Repeat([]byte("w"), 100), ContentType: "application/octet-stream", LastModified: 1732530000000000001})
	other, _ := Set{}.Update("node-2", read, Sibling{Value: bytes.Repeat([]byte("x"), 100), ContentType: "application/octet-stream", LastModified: 1732530000000000002, Expires: 1732530060000000000})
	other, _ = other.Update("node-3", Context{}, Sibling{Tombstone: true, LastModified: 1732530000000000003})
	return Merge(s, other)
}

func FuzzDecodeContext(f *testing.F) {
	for _, c := range []Context{{}, mk("a:2", "b:3"), mk("n1:5 n2:9 n3:1", "n1:7 n1:9 n4:2"), exampleSet().Context} {
		f.Add(c.Encode())
	}
	f.Add([]byte{1, 0x80, 0x00, 0})
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeContext(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		checkNormal(t, c)
		if enc := c.Encode(); !bytes.Equal(enc, b) {
			t.Fatalf("accepted %x but it re-encodes as %x", b, enc)
		}
	})
}

func FuzzDecodeSet(f *testing.F) {
	f.Add(Set{}.Encode())
	f.Add(exampleSet().Encode())
	one, _ := Set{}.Update("n1", Context{}, Sibling{Value: []byte("hello"), ContentType: "text/plain", LastModified: -5, Expires: 99})
	f.Add(one.Encode())
	f.Add([]byte{1, 1, 1, 'a', 2, 0, 0xff, 0xff, 0x03})
	c, _ := Set{}.Increment("n1", -3, 7)
	f.Add(c.Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeSet(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		checkSet(t, s)
		if enc := s.Encode(); !bytes.Equal(enc, b) {
			t.Fatalf("accepted %x but it re-encodes as %x", b, enc)
		}
		if m := Merge(s, s); !m.Equal(s) {
			t.Fatalf("decoded set is not a fixed point of Merge: %s vs %s", dots(m), dots(s))
		}
	})
}
