package rpc

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dynkv/dynkv/replication/rpc/transport"
	"github.com/dynkv/dynkv/store"
	"github.com/dynkv/dynkv/vclock"
	"github.com/dynkv/dynkv/wal"
)

func benchSet(b testing.TB) vclock.Set {
	s, _ := vclock.Set{}.Update("node-a", vclock.Context{}, vclock.Sibling{
		Value: make([]byte, 100), ContentType: "application/octet-stream", LastModified: time.Now().UnixNano(),
	})
	return s
}

func benchStore(b testing.TB, sync wal.SyncPolicy) *store.Store {
	st, err := store.Open(store.Options{Dir: b.TempDir(), Sync: sync, MinFreeBytes: 1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	return st
}

// BenchmarkMergeRoundTrip: a replica write as the coordinator makes it, over
// loopback (the transport, and h2c as before it), from many goroutines
// sharing one connection. fsync=always
// is the default durability (each ack is in the peer's WAL on disk);
// fsync=10ms shows what the RPC itself costs.
func BenchmarkMergeRoundTrip(b *testing.B) {
	for _, sync := range []struct {
		name   string
		policy wal.SyncPolicy
	}{{"fsync=always", wal.SyncPolicy{}}, {"fsync=10ms", wal.SyncPolicy{Interval: 10 * time.Millisecond}}} {
		b.Run(sync.name, func(b *testing.B) {
			st := benchStore(b, sync.policy)
			p := startServer(b, &Server{Store: st}, serverConfig{})
			for _, http2 := range []bool{false, true} {
				b.Run(viaName(http2), func(b *testing.B) {
					c := newTestClient(b, ClientConfig{HTTP2Only: http2})
					set := benchSet(b)
					var n atomic.Int64
					b.SetParallelism(32) // 64 callers on 2 cores, as dynkv bench runs
					b.ReportAllocs()
					b.ResetTimer()
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							key := fmt.Appendf(nil, "key-%d", n.Add(1)%10000)
							if err := c.Merge(context.Background(), p.addr, 0, key, set); err != nil {
								b.Error(err)
								return
							}
						}
					})
				})
			}
		})
	}
}

// BenchmarkGetRoundTrip: replica reads over loopback, via=transport (the
// node-to-node transport, as between current nodes) and via=http2 (the
// HTTP/2 RPC, as before it and to nodes of older versions) in one run, so
// that their ratio is what the transport saves a small call.
func BenchmarkGetRoundTrip(b *testing.B) {
	st := getBenchStore(b)
	for _, http2 := range []bool{false, true} {
		b.Run(viaName(http2), func(b *testing.B) { benchGets(b, st, nil, nil, http2) })
	}
}

func viaName(http2 bool) string {
	if http2 {
		return "via=" + ViaHTTP2
	}
	return "via=" + ViaTransport
}

// getBenchStore holds keys key-0 to key-999, for benchGets.
func getBenchStore(b *testing.B) *store.Store {
	st := benchStore(b, wal.SyncPolicy{Interval: 10 * time.Millisecond})
	set := benchSet(b)
	for i := range 1000 {
		if _, err := st.Merge(0, fmt.Appendf(nil, "key-%d", i), set); err != nil {
			b.Fatal(err)
		}
	}
	return st
}

// benchGets measures replica reads of st over loopback from 64 goroutines
// sharing one connection: over HTTP/2 (h2c, signed with peerKeys when not
// nil) or over the transport (keyed with ring when not nil).
func benchGets(b *testing.B, st *store.Store, peerKeys *PeerKeys, ring *transport.Keyring, http2 bool) {
	p := startServer(b, &Server{Store: st, PeerKeys: peerKeys}, serverConfig{keys: ring})
	c := newTestClient(b, ClientConfig{PeerKeys: peerKeys, Keys: ring, HTTP2Only: http2})
	if _, _, err := c.Get(context.Background(), p.addr, 0, []byte("key-0")); err != nil {
		b.Fatal(err) // dial outside the timing
	}
	var n atomic.Int64
	b.SetParallelism(32)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			key := fmt.Appendf(nil, "key-%d", n.Add(1)%1000)
			if _, found, err := c.Get(context.Background(), p.addr, 0, key); err != nil || !found {
				b.Errorf("get %s: found=%v err=%v", key, found, err)
				return
			}
		}
	})
}

func BenchmarkCodecMergeRequest(b *testing.B) {
	req := mergeRequest{DB: 0, Key: []byte("key-1234"), Set: benchSet(b)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeMergeRequest(encodeMergeRequest(req)); err != nil {
			b.Fatal(err)
		}
	}
}
