package cluster

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/dynkv/dynkv/test/testnode"
)

func TestQuorumSurvivesOneKilledNodeAndFailsCleanlyWithTwo(t *testing.T) {
	c := testnode.Start(t, 3, testnode.Options{})
	n0, n1, n2 := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	q := testnode.KV{R: 2, W: 2}
	var acked []write

	for i := range 30 {
		w := write{key: fmt.Sprintf("quorum/before/%03d", i), value: fmt.Appendf(nil, "before the kill %d", i)}
		mustPut(t, c.Nodes[i%3], w.key, w.value, q)
		acked = append(acked, w)
	}

	n2.MustKill()
	alive := []*testnode.Node{n0, n1}
	for i := range 100 {
		nd := alive[i%2]
		w := write{key: fmt.Sprintf("quorum/one-down/%03d", i), value: fmt.Appendf(nil, "with %s dead %d", n2.ID(), i)}
		mustPut(t, nd, w.key, w.value, q)
		acked = append(acked, w)
		// Read through the other live node: the read must find the write
		// among the two replicas left.
		if err := checkExact(alive[(i+1)%2], w.key, w.value, q); err != nil {
			t.Fatalf("with %s killed, r=2 read of a w=2 write: %v", n2.ID(), err)
		}
	}
	for _, w := range acked[:30] {
		if err := checkExact(n0, w.key, w.value, q); err != nil {
			t.Fatalf("with %s killed, r=2 read of a write from before the kill: %v", n2.ID(), err)
		}
	}

	n1.MustKill()
	for i := range 3 {
		key := fmt.Sprintf("quorum/two-down/%d", i)
		r, err := n0.Put(key, []byte("cannot reach w=2"), q)
		if err != nil {
			t.Fatalf("PUT %q w=2 with two of three nodes killed: %v (want 503)", key, err)
		}
		checkQuorumError(t, "PUT "+key+" w=2", r, 2)
		r, err = n0.Get(acked[i].key, q)
		if err != nil {
			t.Fatalf("GET %q r=2 with two of three nodes killed: %v (want 503)", acked[i].key, err)
		}
		checkQuorumError(t, "GET "+acked[i].key+" r=2", r, 2)
	}

	n1.Restart()
	n2.Restart()
	c.WaitConverged(testnode.ConvergeTimeout, c.IDs()...)
	bad := 0
	for _, w := range acked {
		for _, nd := range c.Nodes {
			if err := checkExact(nd, w.key, w.value, testnode.KV{}); err != nil {
				if bad++; bad <= 10 {
					t.Errorf("after both killed nodes restarted, an acknowledged write: %v", err)
				}
			}
		}
	}
	t.Logf("%d acknowledged writes (30 before any kill, 100 with one node dead) checked through 3 nodes: %d wrong", len(acked), bad)
}

// checkQuorumError requires a 503 with {"error", "needed", "acked"} where
// needed is want and acked is below it.
func checkQuorumError(t *testing.T, what string, r testnode.Response, want int) {
	t.Helper()
	qe, err := r.Quorum()
	if err != nil {
		t.Fatalf("%s: %v; got %s, want 503 {error, needed: %d, acked < %d}", what, err, r, want, want)
	}
	if *qe.Needed != want || *qe.Acked >= want || *qe.Acked < 0 {
		t.Fatalf("%s: got needed %d acked %d, want needed %d and acked below it", what, *qe.Needed, *qe.Acked, want)
	}
	if r.Status != http.StatusServiceUnavailable {
		t.Fatalf("%s: got status %d, want 503", what, r.Status)
	}
}

// A paused process (SIGSTOP) keeps its sockets open but answers nothing,
// as a node behind a partition or in a stall: unlike a killed one, calls to
// it hang until their timeout instead of failing at once.
func TestPausedNodeDoesNotBlockQuorumAndCatchesUp(t *testing.T) {
	// A short RPC timeout makes callers give up on the paused node quickly.
	// Their requests still wait in its socket buffers, so it may apply them
	// when it resumes; whatever it misses, read repair must bring.
	c := testnode.Start(t, 3, testnode.Options{Args: []string{"--rpc-timeout", "250ms"}})
	n0, n1, n2 := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	if err := n2.Pause(); err != nil {
		t.Fatal(err)
	}
	resumed := false
	defer func() {
		if !resumed {
			_ = n2.Resume()
		}
	}()
	alive := []*testnode.Node{n0, n1}
	var writes []write
	var slowest time.Duration
	writeRound := func(phase string, count int) {
		t.Helper()
		for i := range count {
			w := write{key: fmt.Sprintf("paused/%s/%02d", phase, i), value: fmt.Appendf(nil, "while %s is paused (%s) %d", n2.ID(), phase, i)}
			start := time.Now()
			mustPut(t, alive[i%2], w.key, w.value, testnode.KV{})
			if err := checkExact(alive[(i+1)%2], w.key, w.value, testnode.KV{}); err != nil {
				t.Fatalf("with %s paused (%s), default-R read of a default-W write: %v", n2.ID(), phase, err)
			}
			slowest = max(slowest, time.Since(start))
			writes = append(writes, w)
		}
	}
	// At once: the others still believe n2 alive, so calls to it hang
	// until they time out rather than fail.
	writeRound("unnoticed", 40)
	pausedAt := time.Now()
	c.WaitStatus(testnode.ConvergeTimeout, alive, func(s map[string]testnode.Status) error {
		for id, st := range s {
			if m, _ := st.Member(n2.ID()); m.State != testnode.StateDead {
				return fmt.Errorf("node %s sees paused %s as %q, want dead: %s", id, n2.ID(), m.State, st.Summary())
			}
		}
		return nil
	})
	t.Logf("the others declared %s dead %.1fs after the pause", n2.ID(), time.Since(pausedAt).Seconds())
	writeRound("noticed", 20)
	t.Logf("with %s paused: %d writes each read back through the other node, slowest write+read %v", n2.ID(), len(writes), slowest.Round(time.Millisecond))
	if err := n2.Resume(); err != nil {
		t.Fatal(err)
	}
	resumed = true
	c.WaitStatus(testnode.ConvergeTimeout, nil, func(s map[string]testnode.Status) error {
		if err := testnode.Agreed(s, c.IDs()); err != nil {
			return err
		}
		for id, st := range s {
			for _, m := range st.Members {
				if m.State != testnode.StateAlive {
					return fmt.Errorf("node %s sees %s as %q after the resume, want alive: %s", id, m.ID, m.State, st.Summary())
				}
			}
		}
		return nil
	})
	// Some copies may reach the resumed node by replication calls still in
	// flight; the rest must come from read repair of the reads below.
	hist, _, err := replicaCounts([]*testnode.Node{n2}, writes, 1)
	if err != nil {
		t.Fatal(err)
	}
	before := hist[1]
	for _, w := range writes {
		if err := checkExact(n2, w.key, w.value, testnode.KV{}); err != nil {
			t.Errorf("after %s resumed, reading through it a write made while it was paused: %v", n2.ID(), err)
		}
	}
	hist, took, err := waitReplicas([]*testnode.Node{n2}, writes, 1, 30*time.Second)
	if err != nil {
		t.Fatalf("read repair: reads through %s saw its stale copies, yet: %v", n2.ID(), err)
	}
	t.Logf("%s held %d of the %d writes made while it was paused when it resumed, all %d of them %.1fs after reads through it (%s)",
		n2.ID(), before, len(writes), len(writes), took.Seconds(), fmtHist(hist))
}
