package chaos

import (
	"fmt"
	"strings"
	"time"
)

// serverRequestTimeout is the nodes' --request-timeout (its default): no
// client should wait longer for an answer.
const serverRequestTimeout = 5 * time.Second

// Summary is the figures of one run, printed at its end.
type Summary struct {
	Seed     uint64
	Network  string // "netns" or "loopback (no partitions: ...)"
	Nodes    int
	N, R, W  int
	Duration time.Duration // of the fault phase

	Ops, Acked, Failed int64
	Faults             map[FaultKind]int
	AckedKeys          int // distinct keys with an obligation at the end
	AckedElements      int // set-append elements acknowledged
	Lost               int // acknowledged writes (or deletes) not readable as acknowledged at the end
	Reads, StaleReads  int64

	// Seconds for replicas to agree after healing; negative when they did
	// not within the deadline; zero when not measured.
	ConvergeChaos, HintsDelivered, ConvergeHints, ConvergeAAE time.Duration
	ConvergeFailures                                          []string

	// Availability is per fault kind of the fault phase (availability.go);
	// Longest the longest any client waited, OverTimeout how many waited
	// longer than the nodes' request timeout.
	Availability []AvailabilityRow
	Longest      time.Duration
	OverTimeout  int
}

func secs(d time.Duration) string {
	switch {
	case d < 0:
		return "not converged"
	case d == 0:
		return "not measured"
	}
	return fmt.Sprintf("%.1fs", d.Seconds())
}

// String is the table a run prints.
func (s Summary) String() string {
	var b strings.Builder
	row := func(k, v string, args ...any) { fmt.Fprintf(&b, "  %-40s "+v+"\n", append([]any{k}, args...)...) }
	fmt.Fprintf(&b, "chaos summary (seed %d, replay with DYNKV_CHAOS_SEED=%d)\n", s.Seed, s.Seed)
	row("cluster", "%d nodes, N=%d R=%d W=%d, network %s", s.Nodes, s.N, s.R, s.W, s.Network)
	row("fault phase", "%v", s.Duration.Round(time.Second))
	row("operations", "%d (failed or timed out: %d)", s.Ops, s.Failed)
	row("acknowledged writes", "%d (keys checked %d, set elements %d)", s.Acked, s.AckedKeys, s.AckedElements)
	row("faults", "kill %d, pause %d, partition %d, bridge %d", s.Faults[Kill], s.Faults[Pause], s.Faults[Partition], s.Faults[Bridge])
	for _, a := range s.Availability {
		row("availability, "+string(a.Kind), "%s", a)
	}
	row("longest request", "%v (%d longer than the %v request timeout)", s.Longest.Round(time.Millisecond), s.OverTimeout, serverRequestTimeout)
	row("writes lost", "%d", s.Lost)
	row("stale or missing reads during faults", "%d of %d", s.StaleReads, s.Reads)
	row("converge after chaos", "%s", secs(s.ConvergeChaos))
	row("hints delivered to a restarted node", "%s", secs(s.HintsDelivered))
	row("converge after hint delivery", "%s", secs(s.ConvergeHints))
	row("converge, anti-entropy path (no hints)", "%s", secs(s.ConvergeAAE))
	for _, f := range s.ConvergeFailures {
		row("convergence failure", "%s", f)
	}
	return b.String()
}
