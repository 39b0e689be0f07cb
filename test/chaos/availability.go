package chaos

import (
	"fmt"
	"slices"
	"time"
)

// Availability: what share of the clients' requests a fault let through,
// and how long they took. Only figures, never an assertion: the machines
// are shared and noisy, and what matters is that nothing acknowledged is
// lost (the checker); these say what a fault costs a client.

// Observation is one client request's outcome.
type Observation struct {
	Node  int // index of the node the request was sent to
	Write bool
	OK    bool // a write acknowledged, a read answered 2xx or 404
	Start time.Time
	Took  time.Duration
}

// Window is when a fault held: from the moment it was applied to the
// moment it was reverted.
type Window struct {
	Fault      Fault
	Start, End time.Time
}

// unaffected reports whether a client of node i is outside the fault's
// reach: a node not killed or paused, one on the larger side of a
// partition; any node of a bridge (every node is up and the clients reach
// all of them; only links between nodes are cut).
func (w Window) unaffected(i int) bool {
	switch w.Fault.Kind {
	case Partition:
		larger := -1
		for s, side := range w.Fault.Sides {
			if larger < 0 || len(side) > len(w.Fault.Sides[larger]) {
				larger = s
			}
		}
		return larger >= 0 && slices.Contains(w.Fault.Sides[larger], i)
	case Bridge:
		return true
	}
	return !slices.Contains(w.Fault.Targets, i)
}

// AvailabilityRow is the figures of one fault kind (or of the time with
// no fault, Kind "none").
type AvailabilityRow struct {
	Kind FaultKind
	// Writes and WritesOK count the writes started while such a fault
	// held; Clear and ClearOK those sent to nodes it left unaffected
	// (Window.unaffected): the majority side of a partition.
	Writes, WritesOK, Clear, ClearOK int
	Reads, ReadsOK                   int
	// P99 and Max are the latencies of every request of the kind, failed
	// ones included (a timeout is the longest wait a client had);
	// ClearP99 and ClearMax those of the requests to unaffected nodes.
	P99, Max, ClearP99, ClearMax time.Duration
}

func pct(ok, n int) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(ok)/float64(n))
}

func (r AvailabilityRow) String() string {
	ms := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	return fmt.Sprintf("writes %s of %d, reads %s of %d, p99 %v, max %v; via unaffected nodes: writes %s of %d, p99 %v, max %v",
		pct(r.WritesOK, r.Writes), r.Writes, pct(r.ReadsOK, r.Reads), r.Reads, ms(r.P99), ms(r.Max),
		pct(r.ClearOK, r.Clear), r.Clear, ms(r.ClearP99), ms(r.ClearMax))
}

// Availability sorts every observation into the fault window it started
// in (or none) and sums each fault kind's figures, in the order kinds.
func Availability(obs []Observation, windows []Window, kinds []FaultKind) []AvailabilityRow {
	rows := map[FaultKind]*AvailabilityRow{}
	lat, clearLat := map[FaultKind][]time.Duration{}, map[FaultKind][]time.Duration{}
	for _, o := range obs {
		kind, clear := FaultKind("none"), true
		for _, w := range windows {
			if !o.Start.Before(w.Start) && o.Start.Before(w.End) {
				kind, clear = w.Fault.Kind, w.unaffected(o.Node)
				break
			}
		}
		r := rows[kind]
		if r == nil {
			r = &AvailabilityRow{Kind: kind}
			rows[kind] = r
		}
		ok := 0
		if o.OK {
			ok = 1
		}
		if o.Write {
			r.Writes, r.WritesOK = r.Writes+1, r.WritesOK+ok
			if clear {
				r.Clear, r.ClearOK = r.Clear+1, r.ClearOK+ok
			}
		} else {
			r.Reads, r.ReadsOK = r.Reads+1, r.ReadsOK+ok
		}
		lat[kind] = append(lat[kind], o.Took)
		r.Max = max(r.Max, o.Took)
		if clear {
			clearLat[kind] = append(clearLat[kind], o.Took)
			r.ClearMax = max(r.ClearMax, o.Took)
		}
	}
	var out []AvailabilityRow
	for _, k := range append([]FaultKind{"none"}, kinds...) {
		r := rows[k]
		if r == nil {
			continue
		}
		r.P99, r.ClearP99 = p99(lat[k]), p99(clearLat[k])
		out = append(out, *r)
	}
	return out
}

func p99(l []time.Duration) time.Duration {
	if len(l) == 0 {
		return 0
	}
	slices.Sort(l)
	return l[(len(l)*99)/100]
}

// Observe records one client request.
func (h *History) Observe(o Observation) {
	h.mu.Lock()
	h.obs = append(h.obs, o)
	h.mu.Unlock()
}

// Observations returns every request recorded so far.
func (h *History) Observations() []Observation {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.obs)
}
