package wal

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
)

// BenchmarkAppend measures group commit on a real disk: N appenders of
// 100-byte records under SyncPolicy "always". records/s should grow with N
// while syncs/record falls, because N appenders share each fsync.
func BenchmarkAppend(b *testing.B) {
	for _, appenders := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("appenders=%d", appenders), func(b *testing.B) {
			dir, err := os.MkdirTemp("/tmp", "wal-bench-")
			if err != nil {
				b.Fatal(err)
			}
			defer os.RemoveAll(dir)
			w, err := Open(Options{Dir: dir})
			if err != nil {
				b.Fatal(err)
			}
			payload := make([]byte, 100)
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ReportAllocs()
			b.SetBytes(int64(len(payload)))
			b.ResetTimer()
			for range appenders {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						if _, err := w.Append(payload); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			s := w.Stats()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(s.Syncs)/float64(b.N), "syncs/record")
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkRecovery measures Open plus a full Replay of a 16 MiB log of
// 100-byte records.
func BenchmarkRecovery(b *testing.B) {
	dir := b.TempDir()
	w, err := Open(Options{Dir: dir, Sync: SyncPolicy{Interval: 1 << 40}, SegmentSize: 4 << 20})
	if err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, 100)
	const n = 16 << 20 / 120
	for range n {
		if _, err := w.Append(payload); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		w, err := Open(Options{Dir: dir})
		if err != nil {
			b.Fatal(err)
		}
		count := 0
		if err := w.Replay(0, func(uint64, []byte) error { count++; return nil }); err != nil {
			b.Fatal(err)
		}
		if count != n {
			b.Fatalf("replayed %d records, want %d", count, n)
		}
		w.Close()
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
}
