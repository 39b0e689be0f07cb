package antientropy

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/dynkv/dynkv/replication/rpc"
	"github.com/dynkv/dynkv/store"
)

// Shape of every partition's hash tree. Fixed, so two replicas' trees are
// comparable node by node without agreeing on anything first.
const (
	// TreeLeaves is the number of leaf buckets per partition.
	TreeLeaves = 1024
	// TreeInner is the number of inner nodes; each covers
	// TreeLeaves/TreeInner consecutive leaves.
	TreeInner    = 32
	leavesPerInn = TreeLeaves / TreeInner
)

// TreeSummary is one partition's tree as exchanged: the root, the inner
// nodes and the leaves. Ready is false while the node is still building its
// trees (its hashes mean nothing yet).
type TreeSummary struct {
	Ready  bool
	Root   uint64
	Inner  [TreeInner]uint64
	Leaves [TreeLeaves]uint64
}

// KeyHash is one key as anti-entropy compares it: its place and the hash of
// its encoded Set.
type KeyHash struct {
	DB   int
	Key  []byte
	Hash uint64
}

// hashTree is a Merkle tree of fixed shape. A leaf is the XOR of the entry
// hashes of its keys, so a change is O(1) (leaf ^= h(before) ^ h(after))
// and the order keys were added in does not matter: incremental updates and
// a rebuild by scan agree. Inner and root hashes are recomputed lazily, only
// for inner nodes a leaf under them changed since.
type hashTree struct {
	leaves    [TreeLeaves]uint64
	inner     [TreeInner]uint64
	root      uint64
	dirty     uint32 // bit i: inner node i is stale
	rootDirty bool
}

func (t *hashTree) flip(bucket int, delta uint64) {
	if delta == 0 {
		return
	}
	t.leaves[bucket] ^= delta
	t.dirty |= 1 << (bucket / leavesPerInn)
	t.rootDirty = true
}

// refresh recomputes the stale inner nodes and the root. Inner nodes and
// the root hash their children (not XOR them) so that equal roots are
// strong evidence of equal leaves.
func (t *hashTree) refresh() {
	if !t.rootDirty {
		return
	}
	var buf [leavesPerInn * 8]byte
	for d := t.dirty; d != 0; d &= d - 1 {
		i := bits.TrailingZeros32(d)
		for j := range leavesPerInn {
			binary.LittleEndian.PutUint64(buf[j*8:], t.leaves[i*leavesPerInn+j])
		}
		t.inner[i] = xxhash.Sum64(buf[:])
	}
	t.dirty = 0
	var rb [TreeInner * 8]byte
	for i, h := range t.inner {
		binary.LittleEndian.PutUint64(rb[i*8:], h)
	}
	t.root = xxhash.Sum64(rb[:])
	t.rootDirty = false
}

// placeHash is xxhash64(db byte || key), the hash membership places keys
// by: its high bits choose the partition (membership.PartitionOf), its low
// bits the leaf bucket, so buckets spread evenly within every partition.
func placeHash(db int, key []byte) uint64 {
	var d xxhash.Digest
	d.Reset()
	_, _ = d.Write([]byte{byte(db)})
	_, _ = d.Write(key)
	return d.Sum64()
}

func partitionOfHash(h uint64, partitions int) int {
	hi, _ := bits.Mul64(h, uint64(partitions))
	return int(hi)
}

func bucketOfHash(h uint64) int { return int(h % TreeLeaves) }

// entryHash is a key's contribution to its leaf: the key and its encoded
// Set, so two replicas agree on it exactly when they hold the same state.
// Encodings are canonical (vclock), so equal Sets hash equal.
func entryHash(db int, key, encoded []byte) uint64 {
	var d xxhash.Digest
	d.Reset()
	var hdr [1 + binary.MaxVarintLen64]byte
	hdr[0] = byte(db)
	n := binary.PutUvarint(hdr[1:], uint64(len(key)))
	_, _ = d.Write(hdr[:1+n])
	_, _ = d.Write(key)
	_, _ = d.Write(encoded)
	return d.Sum64()
}

// HashTrees holds one hash tree per partition for the keys of the local
// store. Observe keeps them current from store.Options.OnChange; Build
// fills them once from a scan. Safe for concurrent use.
type HashTrees struct {
	partitions int

	// mu guards everything below. Observe computes its hashes before
	// taking it, so the critical section is a few XORs.
	mu sync.Mutex
	// live: changes are applied. Off until Build's scan takes its
	// snapshot: a change before that is in the scan already.
	live  bool
	ready bool // Build completed: the trees describe the store
	trees []*hashTree
	// buildTime is how long the last successful Build took.
	buildTime time.Duration
	keys      int64 // keys hashed into the trees
}

// NewHashTrees returns empty, not yet ready trees for a ring of partitions.
func NewHashTrees(partitions int) *HashTrees {
	return &HashTrees{partitions: partitions, trees: make([]*hashTree, partitions)}
}

// Partitions is the ring's partition count the trees are cut by.
func (h *HashTrees) Partitions() int { return h.partitions }

// Observe is store.Options.OnChange: it moves the key's contribution from
// before to after. Changes before Build's snapshot are ignored.
func (h *HashTrees) Observe(db int, key, before, after []byte) {
	ph := placeHash(db, key)
	var delta uint64
	if before != nil {
		delta ^= entryHash(db, key, before)
	}
	if after != nil {
		delta ^= entryHash(db, key, after)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.live {
		return
	}
	switch {
	case before == nil && after != nil:
		h.keys++
	case before != nil && after == nil:
		h.keys--
	}
	h.tree(partitionOfHash(ph, h.partitions)).flip(bucketOfHash(ph), delta)
}

func (h *HashTrees) tree(p int) *hashTree {
	t := h.trees[p]
	if t == nil {
		// Every node stale: an empty tree must hash like one whose keys
		// all went away again, not as zeros.
		t = &hashTree{dirty: ^uint32(0), rootDirty: true}
		h.trees[p] = t
	}
	return t
}

// Build (re)fills the trees from one scan of st (store.ScanMarkedEncoded);
// the store must report its changes to Observe. Changes racing with the scan are counted exactly once
// (store.ScanMarked). Until it returns nil the trees are not Ready. Ending
// ctx stops the scan (a node shutting down does not wait for it).
func (h *HashTrees) Build(ctx context.Context, st *store.Store) error {
	start := time.Now()
	for attempt := 0; ; attempt++ {
		h.mu.Lock()
		h.live, h.ready, h.keys = false, false, 0
		clear(h.trees)
		h.mu.Unlock()
		// The stored encodings, undecoded: a record that does not decode
		// is hashed as stored, exactly as the store reports it to Observe
		// (before) when a read or a scan moves it aside, so the trees stay
		// exact; the exchange then repairs the key from a peer.
		err := st.ScanMarkedEncoded(func() {
			h.mu.Lock()
			h.live = true
			h.mu.Unlock()
		}, func(db int, key, encoded []byte) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			ph := placeHash(db, key)
			eh := entryHash(db, key, encoded)
			h.mu.Lock()
			h.keys++
			h.tree(partitionOfHash(ph, h.partitions)).flip(bucketOfHash(ph), eh)
			h.mu.Unlock()
			return nil
		})
		if (errors.Is(err, store.ErrScanInterrupted) || errors.Is(err, store.ErrScanPending)) && attempt < 5 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(attempt+1) * 200 * time.Millisecond):
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("replication: building anti-entropy trees: %w", err)
		}
		break
	}
	h.mu.Lock()
	h.ready = true
	h.buildTime = time.Since(start)
	h.mu.Unlock()
	return nil
}

// Ready reports whether Build has completed.
func (h *HashTrees) Ready() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ready
}

// Keys is the number of keys hashed into the trees.
func (h *HashTrees) Keys() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.keys
}

// BuildStats returns how long the last completed Build took and the keys
// the trees hold now.
func (h *HashTrees) BuildStats() (time.Duration, int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.buildTime, h.keys
}

// Summary returns partition p's tree; an empty partition has all-zero
// leaves. Not Ready (and no hashes) before Build completes.
func (h *HashTrees) Summary(p int) (TreeSummary, error) {
	if p < 0 || p >= h.partitions {
		return TreeSummary{}, fmt.Errorf("replication: partition %d out of range 0..%d: %w", p, h.partitions-1, rpc.ErrBadRequest)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.ready {
		return TreeSummary{}, nil
	}
	t := h.tree(p)
	t.refresh()
	return TreeSummary{Ready: true, Root: t.root, Inner: t.inner, Leaves: t.leaves}, nil
}

// TreeRoots is every partition's root hash, partition 0 first, as
// anti-entropy compares them before fetching any tree. Ready is false while
// the node is still building its trees (Roots is empty then).
type TreeRoots struct {
	Ready bool
	Roots []uint64
}

// emptyRoot is the root of a partition holding no keys, the same on every
// node: Roots reports it for partitions never touched, without allocating
// their trees.
var emptyRoot = sync.OnceValue(func() uint64 {
	t := &hashTree{dirty: ^uint32(0), rootDirty: true}
	t.refresh()
	return t.root
})

// Roots returns every partition's root, refreshing only trees changed
// since they were last hashed: one call costs 8 bytes per partition on the
// wire and little CPU, so a round can compare all partitions with a peer.
func (h *HashTrees) Roots() TreeRoots {
	empty := emptyRoot()
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.ready {
		return TreeRoots{}
	}
	roots := make([]uint64, h.partitions)
	for p, t := range h.trees {
		if t == nil {
			roots[p] = empty
			continue
		}
		t.refresh()
		roots[p] = t.root
	}
	return TreeRoots{Ready: true, Roots: roots}
}

// DiffLeaves returns the leaf buckets in which a and b differ, in order,
// walking down only from inner nodes that differ.
func DiffLeaves(a, b *TreeSummary) []int {
	if a.Root == b.Root {
		return nil
	}
	var out []int
	for i := range TreeInner {
		if a.Inner[i] == b.Inner[i] {
			continue
		}
		for j := i * leavesPerInn; j < (i+1)*leavesPerInn; j++ {
			if a.Leaves[j] != b.Leaves[j] {
				out = append(out, j)
			}
		}
	}
	return out
}

// keyDiff is one key whose states differ between two replicas.
type keyDiff struct {
	DB         int
	Key        []byte
	Local      bool // this replica holds the key
	Remote     bool // the peer holds the key
	RemoteHash uint64
}

// diffKeys compares two replicas' key listings of the same buckets and
// returns the keys missing on one side or hashed differently, sorted by
// (db, key).
func diffKeys(local, remote []KeyHash) []keyDiff {
	type id struct {
		db  int
		key string
	}
	theirs := make(map[id]uint64, len(remote))
	for _, k := range remote {
		theirs[id{k.DB, string(k.Key)}] = k.Hash
	}
	var out []keyDiff
	for _, k := range local {
		i := id{k.DB, string(k.Key)}
		rh, ok := theirs[i]
		delete(theirs, i)
		if ok && rh == k.Hash {
			continue
		}
		out = append(out, keyDiff{DB: k.DB, Key: k.Key, Local: true, Remote: ok, RemoteHash: rh})
	}
	for _, k := range remote {
		if _, ok := theirs[id{k.DB, string(k.Key)}]; ok {
			out = append(out, keyDiff{DB: k.DB, Key: k.Key, Remote: true, RemoteHash: k.Hash})
		}
	}
	sortKeyDiffs(out)
	return out
}

func sortKeyDiffs(d []keyDiff) {
	slices.SortFunc(d, func(a, b keyDiff) int {
		if a.DB != b.DB {
			return a.DB - b.DB
		}
		return bytes.Compare(a.Key, b.Key)
	})
}

// bucketKeys lists the keys st holds in the given buckets of partition p,
// with their entry hashes. It scans the whole store: an index per bucket
// would cost memory per key on every node all the time, while a scan costs
// only when a partition differs, and exchanges are rate-bounded.
func bucketKeys(st *store.Store, partitions, p int, buckets []int) ([]KeyHash, error) {
	var want [TreeLeaves / 64]uint64
	for _, b := range buckets {
		want[b/64] |= 1 << (b % 64)
	}
	var out []KeyHash
	// The stored encodings, undecoded, as Build hashes them: the trees and
	// the key lists then agree by construction, and a listing no longer
	// decodes and re-encodes every record of the store to keep the few of
	// one partition's buckets (it was 7% of a node's CPU under writes). A
	// record that does not decode is listed by its stored bytes; the repair
	// that follows reads it, which quarantines it.
	err := st.ScanMarkedEncoded(nil, func(db int, key, encoded []byte) error {
		ph := placeHash(db, key)
		if partitionOfHash(ph, partitions) != p {
			return nil
		}
		b := bucketOfHash(ph)
		if want[b/64]&(1<<(b%64)) == 0 {
			return nil
		}
		out = append(out, KeyHash{DB: db, Key: key, Hash: entryHash(db, key, encoded)})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("replication: listing keys of partition %d: %w", p, err)
	}
	return out, nil
}
