package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketBoundsContainTheirValues(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 1))
	values := []uint64{0, 1, 127, 128, 129, 255, 256, 1000, 1 << 20, 1<<63 - 1, 1 << 63, math.MaxUint64}
	for range 10000 {
		values = append(values, rng.Uint64()>>rng.UintN(64))
	}
	for _, v := range values {
		i := bucketOf(v)
		if i < 0 || i >= histBuckets {
			t.Fatalf("seed %d: bucketOf(%d) = %d, outside 0..%d", seed, v, i, histBuckets-1)
		}
		lo, hi := bucketBounds(i)
		if v < lo || v > hi {
			t.Fatalf("seed %d: %d in bucket %d whose bounds are [%d, %d]", seed, v, i, lo, hi)
		}
		if v >= subCount && float64(hi-lo) > float64(lo)/float64(subHalf) {
			t.Fatalf("seed %d: bucket %d [%d, %d] is wider than 1/%d of its values", seed, i, lo, hi, subHalf)
		}
	}
}

func TestBucketsAreContiguous(t *testing.T) {
	_, prevHi := bucketBounds(0)
	for i := 1; i < histBuckets; i++ {
		lo, hi := bucketBounds(i)
		if lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d, previous ended at %d", i, lo, prevHi)
		}
		prevHi = hi
	}
	if prevHi != math.MaxUint64 {
		t.Fatalf("last bucket ends at %d, want MaxUint64", prevHi)
	}
}

// TestQuantilesMatchASortedSample: every quantile is within one bucket
// (1/64) above the exact order statistic and never below it.
func TestQuantilesMatchASortedSample(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 2))
	var h histogram
	var sample []time.Duration
	for range 50000 {
		// Log-normal-ish latencies from 10µs to seconds.
		d := time.Duration(math.Exp(rng.NormFloat64()*1.5+math.Log(500_000))) + 10*time.Microsecond
		h.record(d)
		sample = append(sample, d)
	}
	slices.Sort(sample)
	for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999} {
		exact := sample[int(math.Ceil(q*float64(len(sample))))-1]
		got := h.quantile(q)
		if got < exact || float64(got-exact) > float64(exact)/float64(subHalf) {
			t.Errorf("seed %d: p%v = %v, exact %v: want at most 1/%d above", seed, q*100, got, exact, subHalf)
		}
	}
	if h.quantile(1) != sample[len(sample)-1] || h.quantile(0) != sample[0] {
		t.Errorf("seed %d: min/max %v/%v, want %v/%v", seed, h.quantile(0), h.quantile(1), sample[0], sample[len(sample)-1])
	}
	if h.n != uint64(len(sample)) {
		t.Errorf("count %d, want %d", h.n, len(sample))
	}
}

func TestMergeEqualsRecordingEverything(t *testing.T) {
	var a, b, all histogram
	for i := range 1000 {
		d := time.Duration(i*i) * time.Microsecond
		all.record(d)
		if i%3 == 0 {
			a.record(d)
		} else {
			b.record(d)
		}
	}
	var m histogram
	m.merge(&a)
	m.merge(&b)
	m.merge(&histogram{})
	if m != all {
		t.Fatalf("merged histogram differs: n %d/%d min %d/%d max %d/%d", m.n, all.n, m.min, all.min, m.max, all.max)
	}
	var empty histogram
	if empty.quantile(0.5) != 0 || empty.mean() != 0 {
		t.Fatalf("empty histogram reports %v / %v", empty.quantile(0.5), empty.mean())
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	b.ReportAllocs()
	var h histogram
	for i := range b.N {
		h.record(time.Duration(i&0xfffff) * time.Microsecond)
	}
}
