package chaos

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dynkv/dynkv/membership"
	"github.com/dynkv/dynkv/test/testnode"
)

// Placement names the replicas of a key the way every node computes them:
// the preference list of the key's partition on the ring of all members.
type Placement struct {
	ring *membership.Ring
	n    int
}

// NewPlacement is the placement of a settled ring of members.
func NewPlacement(members []string, partitions, n int) Placement {
	return Placement{ring: membership.NewRing(members, partitions), n: n}
}

// Replicas lists the ids of the nodes that must hold key (database 0).
func (p Placement) Replicas(key string) []string {
	return p.ring.PreferenceList(p.ring.Partition(0, []byte(key)), p.n)
}

// Divergence is a key whose replicas disagree, for failure messages.
type Divergence struct {
	Key      string
	Replicas map[string]string // node id -> DescribeReplica, or the read error
}

func (d Divergence) String() string {
	ids := make([]string, 0, len(d.Replicas))
	for id := range d.Replicas {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var b strings.Builder
	fmt.Fprintf(&b, "%q:", d.Key)
	for _, id := range ids {
		fmt.Fprintf(&b, " %s=%s", id, d.Replicas[id])
	}
	return b.String()
}

// compareReplicas reads key from each of its replicas' own stores and
// returns nil when all hold the same version set.
func compareReplicas(nodes map[string]*testnode.Node, key string, replicas []string) *Divergence {
	d := &Divergence{Key: key, Replicas: map[string]string{}}
	var first *testnode.LocalSet
	same := true
	for _, id := range replicas {
		nd := nodes[id]
		if nd == nil {
			d.Replicas[id] = "unknown node"
			same = false
			continue
		}
		l, err := nd.LocalGet(0, key)
		if err != nil {
			d.Replicas[id] = "error: " + err.Error()
			same = false
			continue
		}
		d.Replicas[id] = DescribeReplica(l)
		if first == nil {
			first = &l
		} else if !SameReplica(*first, l) {
			same = false
		}
	}
	if same {
		return nil
	}
	return d
}

// WaitConverged polls the replicas of every key, reading each replica's
// local copy (no coordinator, so no read repair), until all replicas of
// all keys agree, and returns how long that took. A key once seen
// converged is not read again: without client traffic nothing makes
// replicas diverge, and tombstone collection, which removes a converged
// tombstone from one replica before another, would otherwise look like
// divergence. After timeout it returns the keys still divergent (up to
// max) and an error.
func WaitConverged(nodes map[string]*testnode.Node, p Placement, keys []string, timeout time.Duration, max int) (time.Duration, []Divergence, error) {
	start := time.Now()
	remaining := slices.Clone(keys)
	var last []Divergence
	for {
		last = nil
		var mu sync.Mutex
		var wg sync.WaitGroup
		work := make(chan string)
		for range 8 {
			wg.Go(func() {
				for k := range work {
					if d := compareReplicas(nodes, k, p.Replicas(k)); d != nil {
						mu.Lock()
						last = append(last, *d)
						mu.Unlock()
					}
				}
			})
		}
		for _, k := range remaining {
			work <- k
		}
		close(work)
		wg.Wait()
		if len(last) == 0 {
			return time.Since(start), nil, nil
		}
		remaining = remaining[:0]
		for _, d := range last {
			remaining = append(remaining, d.Key)
		}
		if time.Since(start) > timeout {
			slices.SortFunc(last, func(a, b Divergence) int { return strings.Compare(a.Key, b.Key) })
			n := len(last)
			if len(last) > max {
				last = last[:max]
			}
			return time.Since(start), last, fmt.Errorf("%d of %d keys still differ between their replicas after %v", n, len(keys), timeout)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
