package chaos

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// FaultKind is what a fault does to its targets.
type FaultKind string

// Fault kinds.
const (
	Kill      FaultKind = "kill"      // SIGKILL, restart after Duration
	Pause     FaultKind = "pause"     // SIGSTOP, SIGCONT after Duration
	Partition FaultKind = "partition" // cut Sides apart, heal after Duration
	// Bridge cuts Sides apart while Targets (on no side) reaches all:
	// memberlist's indirect probes through the bridge keep every node
	// alive in gossip, so only the coordinators' own calls see the cut.
	Bridge FaultKind = "bridge"
)

// Fault is one step of a schedule: apply, hold for Duration, revert, then
// wait Gap before the next.
type Fault struct {
	Kind     FaultKind
	Targets  []int   // nodes killed or paused; for a partition, the minority side
	Sides    [][]int // partition only: the groups that cannot reach each other
	Duration time.Duration
	Gap      time.Duration
}

func (f Fault) String() string {
	switch f.Kind {
	case Partition:
		return fmt.Sprintf("partition %v for %v", f.Sides, f.Duration)
	case Bridge:
		return fmt.Sprintf("bridge %v between %v for %v", f.Targets, f.Sides, f.Duration)
	}
	return fmt.Sprintf("%s %v for %v", f.Kind, f.Targets, f.Duration)
}

// ScheduleOptions bound a schedule.
type ScheduleOptions struct {
	Nodes int
	Total time.Duration // the faults and gaps add up to at most this
	Kinds []FaultKind   // the kinds to draw from
	// MinHold and MaxHold bound how long a fault holds; MaxGap bounds the
	// healthy time after it.
	MinHold, MaxHold, MaxGap time.Duration
}

// Schedule draws a fault sequence from rng: a pure function of its inputs,
// so a seed replays it. At most two nodes are faulted at once (a kill or
// pause of one or two nodes, a partition isolating one node or splitting
// two from the rest), so on 5 nodes with N=3, W=2 most preference lists
// keep a quorum of reachable replicas.
func Schedule(rng *rand.Rand, o ScheduleOptions) []Fault {
	if o.Nodes < 3 || len(o.Kinds) == 0 || o.MaxHold < o.MinHold || o.MinHold <= 0 {
		return nil
	}
	var out []Fault
	var used time.Duration
	for {
		hold := o.MinHold + time.Duration(rng.Int64N(int64(o.MaxHold-o.MinHold)+1))
		gap := time.Duration(rng.Int64N(int64(o.MaxGap) + 1))
		if used+hold+gap > o.Total {
			return out
		}
		used += hold + gap
		f := Fault{Kind: o.Kinds[rng.IntN(len(o.Kinds))], Duration: hold, Gap: gap}
		if f.Kind == Bridge {
			// Two sides of (n-1)/2 nodes each that cannot reach each
			// other, and the rest (one node on 5) reaching both.
			perm, k := rng.Perm(o.Nodes), (o.Nodes-1)/2
			f.Sides = [][]int{slices.Sorted(slices.Values(perm[:k])), slices.Sorted(slices.Values(perm[k : 2*k]))}
			f.Targets = slices.Sorted(slices.Values(perm[2*k:]))
			out = append(out, f)
			continue
		}
		// One node three times out of four, two otherwise.
		k := 1
		if rng.IntN(4) == 0 {
			k = 2
		}
		f.Targets = rng.Perm(o.Nodes)[:k]
		slices.Sort(f.Targets)
		if f.Kind == Partition {
			var rest []int
			for i := range o.Nodes {
				if !slices.Contains(f.Targets, i) {
					rest = append(rest, i)
				}
			}
			f.Sides = [][]int{f.Targets, rest}
		}
		out = append(out, f)
	}
}
