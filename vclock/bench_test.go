package vclock

import (
	"bytes"
	"fmt"
	"testing"
)

// setWith returns a set of n concurrent siblings of 100 bytes, coordinated
// by n different nodes, as a key holds after n concurrent writers.
func setWith(n int) Set {
	var s Set
	for i := range n {
		one, _ := Set{}.Update(fmt.Sprintf("node-%d", i+1), Context{}, Sibling{
			Value: bytes.Repeat([]byte{'v'}, 100), ContentType: "application/octet-stream", LastModified: 1732530000000000000 + int64(i),
		})
		s = Merge(s, one)
	}
	return s
}

// BenchmarkUpdate is the write path: a client writes with the context of its
// last read, superseding every sibling.
func BenchmarkUpdate(b *testing.B) {
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprintf("siblings=%d", n), func(b *testing.B) {
			s := setWith(n)
			ctx := s.Context
			sib := Sibling{Value: bytes.Repeat([]byte{'w'}, 100), ContentType: "application/octet-stream", LastModified: 1732530001000000000}
			b.ReportAllocs()
			for b.Loop() {
				out, _ := s.Update("node-1", ctx, sib)
				if len(out.Siblings) != 1 {
					b.Fatal(len(out.Siblings))
				}
			}
		})
	}
}

// BenchmarkMerge is replication of a newer write into a replica holding
// three concurrent siblings.
func BenchmarkMerge(b *testing.B) {
	old := setWith(3)
	newer, _ := old.Update("node-2", old.Context, Sibling{Value: bytes.Repeat([]byte{'w'}, 100), LastModified: 1732530001000000000})
	b.ReportAllocs()
	for b.Loop() {
		if m := Merge(old, newer); len(m.Siblings) != 1 {
			b.Fatal(len(m.Siblings))
		}
	}
}

func BenchmarkContextMerge(b *testing.B) {
	x := mk("node-1:40 node-2:17 node-3:5", "node-1:42")
	y := mk("node-1:41 node-2:16 node-4:2", "node-3:7")
	b.ReportAllocs()
	for b.Loop() {
		x.Merge(y)
	}
}

func BenchmarkSetEncode(b *testing.B) {
	s := exampleSet()
	b.ReportAllocs()
	b.SetBytes(int64(len(s.Encode())))
	for b.Loop() {
		s.Encode()
	}
}

func BenchmarkDecodeSet(b *testing.B) {
	enc := exampleSet().Encode()
	b.ReportAllocs()
	b.SetBytes(int64(len(enc)))
	for b.Loop() {
		if _, err := DecodeSet(enc); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkContextEncodeDecode(b *testing.B) {
	c := exampleSet().Context
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeContext(c.Encode()); err != nil {
			b.Fatal(err)
		}
	}
}
