package store

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dynkv/dynkv/vclock"
	"github.com/dynkv/dynkv/wal"
)

const benchKeys = 100_000

func benchKey(i int) []byte { return fmt.Appendf(nil, "bench-key-%07d", i%benchKeys) }

func benchStore(b *testing.B, sync wal.SyncPolicy) *Store {
	b.Helper()
	opts := testOptions(b.TempDir(), newTestClock())
	opts.Now = time.Now
	opts.Sync = sync
	opts.CheckpointInterval = DefaultCheckpointInterval
	opts.ReclaimInterval = DefaultReclaimInterval
	return mustOpen(b, opts)
}

// BenchmarkPut: concurrent blind writes of 100-byte values to random keys,
// the shape of a write-heavy client load on one replica.
func BenchmarkPut(b *testing.B) {
	for _, sp := range []struct {
		name string
		sync wal.SyncPolicy
	}{{"fsync=always", wal.SyncPolicy{}}, {"fsync=10ms", wal.SyncPolicy{Interval: 10 * time.Millisecond}}} {
		b.Run(sp.name, func(b *testing.B) {
			s := benchStore(b, sp.sync)
			defer closeStore(b, s)
			val := bytes.Repeat([]byte("v"), 100)
			var seed atomic.Uint64
			b.ReportAllocs()
			b.SetParallelism(16) // group commit needs concurrent writers
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				rng := rand.New(rand.NewPCG(seed.Add(1), 0))
				for pb.Next() {
					sib := vclock.Sibling{Value: val, ContentType: "application/octet-stream"}
					if _, _, err := s.Put(0, benchKey(rng.IntN(benchKeys)), "n1", vclock.Context{}, sib); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
		})
	}
}

// BenchmarkGet: concurrent reads of 100-byte values from a store of 10,000 keys.
func BenchmarkGet(b *testing.B) {
	s := benchStore(b, wal.SyncPolicy{Interval: 10 * time.Millisecond})
	defer closeStore(b, s)
	const n = 10_000
	val := bytes.Repeat([]byte("v"), 100)
	for i := 0; i < n; i++ {
		if _, _, err := s.Put(0, benchKey(i), "n1", vclock.Context{}, vclock.Sibling{Value: val}); err != nil {
			b.Fatal(err)
		}
	}
	var seed atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rng := rand.New(rand.NewPCG(seed.Add(1), 0))
		for pb.Next() {
			if _, err := s.Get(0, benchKey(rng.IntN(n))); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}
