package coordinator

import (
	"fmt"
	"testing"

	"github.com/dynkv/dynkv/vclock"
)

// The benchmarks run the coordinator against in-memory replicas, so they
// measure its own cost per request (fan-out goroutines, channels, merges),
// not the network's or the disk's.

func benchHarness(b *testing.B, cfg Config) *harness {
	return newHarness(b, cfg, abc, nil, "a", "b", "c")
}

func BenchmarkPut(b *testing.B) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"N=3/W=2/blind-gather", Config{}},
		{"N=3/W=2/local-blind", Config{LocalBlindWrites: true}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h := benchHarness(b, tc.cfg)
			c := h.coord("a")
			value := make([]byte, 100)
			keys := make([][]byte, 1024)
			for i := range keys {
				keys[i] = fmt.Appendf(nil, "key-%d", i)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				_, err := c.Put(bg, WriteRequest{Key: keys[i%len(keys)], Blind: true, Sibling: vclock.Sibling{Value: value}})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			h.quiesce()
		})
	}
}

func BenchmarkGet(b *testing.B) {
	for _, tc := range []struct {
		name string
		h    func() *harness
	}{
		{"N=3/R=2", func() *harness { return benchHarness(b, Config{LocalBlindWrites: true}) }},
		{"N=1/R=1", func() *harness {
			return newHarness(b, Config{N: 1, R: 1, W: 1, LocalBlindWrites: true}, []string{"a"}, nil, "a")
		}},
	} {
		h := tc.h()
		c := h.coord("a")
		value := make([]byte, 100)
		if _, err := c.Put(bg, WriteRequest{Key: key, Blind: true, Sibling: vclock.Sibling{Value: value}}); err != nil {
			b.Fatal(err)
		}
		h.quiesce()
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := c.Get(bg, 0, key, 0); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			h.quiesce()
		})
	}
}
