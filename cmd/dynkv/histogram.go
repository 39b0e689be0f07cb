package main

import (
	"math"
	"math/bits"
	"time"
)

// histogram records latencies in log-linear buckets, the layout of
// HdrHistogram: values below 2^subBits nanoseconds get a bucket each; above,
// every power of two is split into 2^(subBits-1) equal buckets, so a
// recorded value is known to within 1/2^(subBits-1) (1.6%) whatever its
// magnitude, in a fixed array and with no allocation per sample.
//
// It is not safe for concurrent use: each bench worker owns one, and the
// reporter merges copies taken under the worker's lock.
type histogram struct {
	counts [histBuckets]uint64
	n      uint64
	sum    uint64 // nanoseconds; 2^64 ns is 584 years of latency
	min    uint64
	max    uint64
}

const (
	subBits     = 7
	subCount    = 1 << subBits          // linear buckets for the smallest values
	subHalf     = subCount / 2          // buckets per power of two above them
	histBuckets = subCount + 57*subHalf // shifts 1..57 cover every uint64 below 2^64
)

// bucketOf returns the bucket of v.
func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	shift := bits.Len64(v) - subBits // >= 1
	return subCount + (shift-1)*subHalf + int(v>>uint(shift)) - subHalf
}

// bucketBounds returns the smallest and largest value that fall in bucket i.
func bucketBounds(i int) (lo, hi uint64) {
	if i < subCount {
		return uint64(i), uint64(i)
	}
	shift := uint((i-subCount)/subHalf + 1)
	mant := uint64((i-subCount)%subHalf + subHalf)
	lo = mant << shift
	return lo, lo + (1 << shift) - 1
}

func (h *histogram) record(d time.Duration) {
	v := uint64(0)
	if d > 0 {
		v = uint64(d)
	}
	h.counts[bucketOf(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += v
}

func (h *histogram) merge(o *histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
}

// quantile returns the value at or below which a fraction q of the samples
// fall, as the highest value of its bucket (never above the true maximum),
// so the figure errs on the pessimistic side by at most one bucket width.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	if q <= 0 {
		return time.Duration(h.min)
	}
	if q >= 1 {
		return time.Duration(h.max)
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	if rank == 0 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			_, hi := bucketBounds(i)
			return time.Duration(min(max(hi, h.min), h.max))
		}
	}
	return time.Duration(h.max)
}

func (h *histogram) mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / h.n)
}
