package node

import (
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/dynkv/dynkv/vclock"
)

// The store opens before the node knows its cluster: until Start, nothing
// can say every replica holds a tombstone, so it is kept; once the node is
// a one-node cluster, its own copy is every replica.
func TestTombstonesAreKeptUntilTheClusterIsUpThenReapedOnOneNode(t *testing.T) {
	cfg := testConfig(t)
	n, err := New(cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	key := []byte("deleted")
	if _, _, err := n.store.Put(0, key, cfg.ID, vclock.Context{}, vclock.Sibling{Tombstone: true}); err != nil {
		t.Fatal(err)
	}
	if n.canDropTombstone(0, key) {
		t.Fatal("canDropTombstone agreed before the node joined a cluster")
	}
	if err := n.store.Close(); err != nil {
		t.Fatal(err)
	}

	tn := startNode(t, &cfg, nil)
	if !tn.canDropTombstone(0, key) {
		t.Fatal("canDropTombstone refused on a one-node cluster whose only replica holds the tombstone")
	}
	if tn.gc.gc == nil || tn.gc.gc.Stats().Agreed != 1 {
		t.Fatalf("tombstone GC not built or not counting: %+v", tn.gc.gc)
	}
}
