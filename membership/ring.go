package membership

import (
	"encoding/binary"
	"math/bits"
	"slices"

	"github.com/cespare/xxhash/v2"
)

// DefaultPartitions is the partition count when none is configured.
const DefaultPartitions = 256

// MaxPartitions bounds the partition count a State may carry, so a decoder
// never allocates a ring from a hostile length.
const MaxPartitions = 1 << 16

// Ring assigns every partition one owner. It is immutable once built and safe
// for concurrent use.
type Ring struct {
	partitions int
	members    []string // sorted, distinct
	owners     []int32  // partition -> index into members; -1 when members is empty
	counts     []int    // partitions owned per member index
}

// NewRing builds the ring of members (any order, duplicates ignored) over
// partitions partitions.
//
// The assignment is a capped rendezvous hash: every (partition, member) pair
// gets a score xxhash(member || partition) and pairs are walked by
// descending score; a partition goes to the first member still under its
// cap. Plain rendezvous hashing moves only the partitions a changed member
// wins or loses; the cap keeps ownership balanced. The walk runs twice: first
// with the cap floor(P/M) for everyone, then the P mod M partitions left over
// go, by the same order, to members holding floor(P/M), at most one each. So
// every member owns floor(P/M) or ceil(P/M) partitions (max - min <= 1).
func NewRing(members []string, partitions int) *Ring {
	if partitions <= 0 {
		partitions = DefaultPartitions
	}
	ms := slices.Clone(members)
	slices.Sort(ms)
	ms = slices.Compact(ms)
	r := &Ring{
		partitions: partitions,
		members:    ms,
		owners:     make([]int32, partitions),
		counts:     make([]int, len(ms)),
	}
	for p := range r.owners {
		r.owners[p] = -1
	}
	if len(ms) == 0 {
		return r
	}

	type pair struct {
		score  uint64
		part   int32
		member int32
	}
	pairs := make([]pair, 0, partitions*len(ms))
	var buf []byte
	for mi, m := range ms {
		buf = append(buf[:0], m...)
		buf = append(buf, 0, 0, 0, 0)
		for p := 0; p < partitions; p++ {
			binary.BigEndian.PutUint32(buf[len(m):], uint32(p))
			pairs = append(pairs, pair{score: xxhash.Sum64(buf), part: int32(p), member: int32(mi)})
		}
	}
	slices.SortFunc(pairs, func(a, b pair) int {
		if a.score != b.score {
			if a.score > b.score {
				return -1
			}
			return 1
		}
		if a.part != b.part {
			return int(a.part - b.part)
		}
		return int(a.member - b.member)
	})

	floor := partitions / len(ms)
	assigned := 0
	walk := func(limit int) {
		for _, pr := range pairs {
			if assigned == partitions {
				return
			}
			if r.owners[pr.part] >= 0 || r.counts[pr.member] >= limit {
				continue
			}
			r.owners[pr.part] = pr.member
			r.counts[pr.member]++
			assigned++
		}
	}
	walk(floor)
	if assigned < partitions {
		// Second pass: each member takes at most one of the leftovers.
		extra := make([]bool, len(ms))
		for _, pr := range pairs {
			if assigned == partitions {
				break
			}
			if r.owners[pr.part] >= 0 || extra[pr.member] {
				continue
			}
			extra[pr.member] = true
			r.owners[pr.part] = pr.member
			r.counts[pr.member]++
			assigned++
		}
	}
	return r
}

// Partitions is the number of partitions of the ring.
func (r *Ring) Partitions() int { return r.partitions }

// Members returns the ring's members, sorted. The caller must not modify it.
func (r *Ring) Members() []string { return r.members }

// Len is the number of members.
func (r *Ring) Len() int { return len(r.members) }

// Contains reports whether id is a member of the ring.
func (r *Ring) Contains(id string) bool {
	_, ok := slices.BinarySearch(r.members, id)
	return ok
}

// Owner returns the owner of partition, or "" on an empty ring or a
// partition out of range.
func (r *Ring) Owner(partition int) string {
	if partition < 0 || partition >= r.partitions || len(r.members) == 0 {
		return ""
	}
	return r.members[r.owners[partition]]
}

// PreferenceList returns the first n distinct owners walking clockwise from
// partition (partition's own owner first). n is capped at the member count;
// an empty ring or a partition out of range gives nil.
func (r *Ring) PreferenceList(partition, n int) []string {
	if partition < 0 || partition >= r.partitions || len(r.members) == 0 || n <= 0 {
		return nil
	}
	n = min(n, len(r.members))
	out := make([]string, 0, n)
	// A member set is small (tens), so a linear "seen" check on out beats a map.
	for i := 0; i < r.partitions && len(out) < n; i++ {
		m := r.members[r.owners[(partition+i)%r.partitions]]
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

// Share returns the fraction of partitions id owns (0 if not a member).
func (r *Ring) Share(id string) float64 {
	i, ok := slices.BinarySearch(r.members, id)
	if !ok {
		return 0
	}
	return float64(r.counts[i]) / float64(r.partitions)
}

// Owned returns how many partitions id owns.
func (r *Ring) Owned(id string) int {
	i, ok := slices.BinarySearch(r.members, id)
	if !ok {
		return 0
	}
	return r.counts[i]
}

// Partition returns the partition of key in database db on this ring.
func (r *Ring) Partition(db int, key []byte) int { return PartitionOf(db, key, r.partitions) }

// PartitionOf maps (db, key) to one of partitions contiguous ranges of the
// 64-bit hash space: hash = xxhash64(db byte || key), partition =
// floor(hash * partitions / 2^64), which is hash / (2^64/partitions) when
// partitions is a power of two (Riak's ring). Changing this moves every key,
// so the golden test pins it.
func PartitionOf(db int, key []byte, partitions int) int {
	if partitions <= 0 {
		partitions = DefaultPartitions
	}
	var d xxhash.Digest // on the stack: no allocation per request
	d.Reset()
	_, _ = d.Write([]byte{byte(db)})
	_, _ = d.Write(key)
	hi, _ := bits.Mul64(d.Sum64(), uint64(partitions))
	return int(hi)
}

// Placement is an immutable snapshot of where keys live, cheap to take per
// request.
type Placement struct {
	// Committed is the ring in force; never nil (empty, with no members, until
	// a joining node has seen its cluster).
	Committed *Ring
	// Target is the ring being moved to, nil when no transition is pending.
	Target *Ring
}

// Partition returns the partition of key in database db.
func (p Placement) Partition(db int, key []byte) int {
	n := DefaultPartitions
	if p.Committed != nil {
		n = p.Committed.partitions
	}
	return PartitionOf(db, key, n)
}
