package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/dynkv/dynkv/vclock"
	"github.com/dynkv/dynkv/wal"
)

// BenchmarkReclaimExpired: the reclaimer's two steps for keys whose TTL
// ran out, per key: bury (a put record turning the value into its
// tombstone twin) and, past the grace, drop (a drop record). The WAL
// fsyncs on an interval, as a deployment that wants TTL churn cheap would.
func BenchmarkReclaimExpired(b *testing.B) {
	const batch = reclaimBatch
	clk := newTestClock()
	opts := testOptions(b.TempDir(), clk)
	opts.Sync = wal.SyncPolicy{Interval: 10 * time.Millisecond}
	opts.TombstoneGrace = time.Minute
	s := mustOpen(b, opts)
	defer closeStore(b, s)
	b.ReportAllocs()
	reclaimed := 0
	for b.Loop() {
		b.StopTimer()
		exp := clk.After(time.Second)
		for i := range batch {
			mustPut(b, s, 0, fmt.Sprintf("ttl-%07d", i), "n1", vclock.Context{}, vclock.Sibling{Value: make([]byte, 100), Expires: exp})
		}
		clk.Advance(2 * time.Second)
		b.StartTimer()
		if _, err := s.reclaimPass(); err != nil { // bury
			b.Fatal(err)
		}
		clk.Advance(time.Minute)
		n, err := s.reclaimPass() // drop
		if err != nil {
			b.Fatal(err)
		}
		reclaimed += n
	}
	if reclaimed != b.N*batch {
		b.Fatalf("reclaimed %d keys, want %d", reclaimed, b.N*batch)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(reclaimed), "ns/key")
}
