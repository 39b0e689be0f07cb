package cluster

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dynkv/dynkv/test/testnode"
)

// handoffTimeout bounds how long the remaining nodes may take to hold every
// key N times after a ring change committed.
const handoffTimeout = 60 * time.Second

// loader writes distinct keys continuously through a changing set of
// nodes and remembers every write that was acknowledged.
type loader struct {
	targets atomic.Pointer[[]*testnode.Node]
	stop    chan struct{}
	wg      sync.WaitGroup

	mu       sync.Mutex
	acked    []write
	failed   int // answered with an error status or a transport error: indeterminate
	lastFail string
}

func startLoader(rng *rand.Rand, writers, perWriter int, targets []*testnode.Node) *loader {
	l := &loader{stop: make(chan struct{})}
	l.setTargets(targets)
	for w := range writers {
		seed := rng.Uint64()
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(w)))
			for i := range perWriter {
				select {
				case <-l.stop:
					return
				default:
				}
				ts := *l.targets.Load()
				nd := ts[r.IntN(len(ts))]
				wr := write{key: fmt.Sprintf("load/w%d/%05d", w, i), value: fmt.Appendf(nil, "writer %d write %d via %s", w, i, nd.ID())}
				resp, err := nd.Put(wr.key, wr.value, testnode.KV{})
				l.mu.Lock()
				switch {
				case err == nil && resp.Status == http.StatusNoContent:
					l.acked = append(l.acked, wr)
				case err != nil:
					l.failed++
					l.lastFail = err.Error()
				default:
					l.failed++
					l.lastFail = fmt.Sprintf("PUT %q via %s: %s", wr.key, nd.ID(), resp)
				}
				l.mu.Unlock()
				// Pacing keeps the key count, and so the checks at the
				// end, bounded while the ring changes take their time.
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}
	return l
}

func (l *loader) setTargets(ts []*testnode.Node) { l.targets.Store(&ts) }

func (l *loader) count() (acked, failed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked), l.failed
}

// finish stops the writers and returns the acknowledged writes.
func (l *loader) finish() []write {
	close(l.stop)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.acked)
}

func TestJoinAndLeaveUnderLoadLoseNoAcknowledgedWrite(t *testing.T) {
	rng := seeded(t)
	c := testnode.Start(t, 3, testnode.Options{})
	n0, n1, n2 := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	ld := startLoader(rng, 3, 1500, []*testnode.Node{n0, n1, n2})
	stopped := false
	defer func() {
		if !stopped {
			ld.finish()
		}
	}()
	waitAcks(t, ld, 50)

	joinStart := time.Now()
	n3 := c.NewNode()
	n3.Start()
	c.WaitConverged(3*testnode.ConvergeTimeout, c.IDs()...)
	joinTook := time.Since(joinStart)
	ld.setTargets([]*testnode.Node{n0, n1, n2, n3})
	a, _ := ld.count()
	waitAcks(t, ld, a+50)

	leaveStart := time.Now()
	r, err := n1.Leave()
	if err != nil || r.Status != http.StatusAccepted {
		t.Fatalf("POST /cluster/leave on %s: got %v %v, want 202", n1.ID(), r, err)
	}
	remaining := []*testnode.Node{n0, n2, n3}
	c.WaitStatus(3*testnode.ConvergeTimeout, remaining, func(s map[string]testnode.Status) error {
		if err := testnode.Agreed(s, ids(remaining)); err != nil {
			return err
		}
		for id, st := range s {
			if m, ok := st.Member(n1.ID()); ok && m.State != testnode.StateLeft {
				return fmt.Errorf("node %s: %s is %q, want left: %s", id, n1.ID(), m.State, st.Summary())
			}
		}
		return nil
	})
	leaveTook := time.Since(leaveStart)
	ld.setTargets(remaining)
	a, _ = ld.count()
	waitAcks(t, ld, a+20)
	writes := ld.finish()
	stopped = true
	_, failed := ld.count()
	t.Logf("load: %d writes acked, %d failed or indeterminate (last: %s); join committed in %.1fs, leave in %.1fs",
		len(writes), failed, ld.lastFail, joinTook.Seconds(), leaveTook.Seconds())

	// Copies first: a quorum read would repair what handoff missed.
	hist, took, err := waitReplicas(remaining, writes, 3, handoffTimeout)
	t.Logf("replica count histogram over %s after %.1fs: %s", ids(remaining), took.Seconds(), fmtHist(hist))
	if err != nil {
		t.Errorf("after %s joined and %s left, not every acknowledged key is on N=3 remaining nodes: %v", n3.ID(), n1.ID(), err)
	}
	bad := 0
	for _, w := range writes {
		for _, nd := range remaining {
			if err := checkExact(nd, w.key, w.value, testnode.KV{}); err != nil {
				if bad++; bad <= 10 {
					t.Errorf("acknowledged during join and leave: %v", err)
				}
			}
		}
	}
	t.Logf("%d keys checked through %d nodes: %d reads wrong", len(writes), len(remaining), bad)
}

// waitAcks waits until the loader has at least n acknowledged writes.
func waitAcks(t *testing.T, ld *loader, n int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		a, f := ld.count()
		if a >= n {
			return
		}
		if time.Now().After(deadline) {
			ld.mu.Lock()
			last := ld.lastFail
			ld.mu.Unlock()
			t.Fatalf("loader: %d writes acked within 60s, want %d (%d failed; last failure: %s)", a, n, f, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRestartKeepsIdentityAndRingPosition(t *testing.T) {
	c := testnode.Start(t, 3, testnode.Options{})
	nd := c.Nodes[1]
	var writes []write
	for i := range 30 {
		w := write{key: fmt.Sprintf("restart/%02d", i), value: fmt.Appendf(nil, "before restart %d", i)}
		mustPut(t, c.Nodes[i%3], w.key, w.value, testnode.KV{})
		writes = append(writes, w)
	}
	before, err := nd.Status()
	if err != nil {
		t.Fatal(err)
	}
	nd.Stop()
	nd.Restart()
	after := c.WaitStatus(testnode.ConvergeTimeout, nil, func(s map[string]testnode.Status) error {
		return testnode.Agreed(s, c.IDs())
	})[nd.ID()]
	if after.Node != nd.ID() {
		t.Errorf("restarted node calls itself %q, want %q", after.Node, nd.ID())
	}
	if after.Epoch != before.Epoch || string(after.RingFingerprint) != string(before.RingFingerprint) {
		t.Errorf("restart changed the ring: before %s, after %s", before.Summary(), after.Summary())
	}
	if after.Transition != nil {
		t.Errorf("restart started a ring transition: %s", after.Summary())
	}
	for _, m := range before.Members {
		if am, ok := after.Member(m.ID); !ok || am.RingShare != m.RingShare {
			t.Errorf("member %s: ring share %v before the restart, %v after (present %t)", m.ID, m.RingShare, am.RingShare, ok)
		}
	}
	for _, w := range writes {
		if err := checkExact(nd, w.key, w.value, testnode.KV{}); err != nil {
			t.Errorf("after restart of %s: %v", nd.ID(), err)
		}
	}
}

func TestRemoveDeadNodeRebuildsReplicas(t *testing.T) {
	c := testnode.Start(t, 4, testnode.Options{})
	var writes []write
	for i := range 200 {
		w := write{key: fmt.Sprintf("remove/%03d", i), value: fmt.Appendf(nil, "written to 4 nodes %d", i)}
		mustPut(t, c.Nodes[i%4], w.key, w.value, testnode.KV{})
		writes = append(writes, w)
	}
	dead := c.Nodes[3]
	dead.MustKill()
	remaining := c.Nodes[:3]
	start := time.Now()
	r, err := c.Nodes[0].Remove(dead.ID())
	if err != nil || r.Status != http.StatusAccepted {
		t.Fatalf("POST /cluster/leave?node=%s on %s: got %v %v, want 202", dead.ID(), c.Nodes[0].ID(), r, err)
	}
	c.WaitStatus(testnode.ConvergeTimeout, remaining, func(s map[string]testnode.Status) error {
		return testnode.Agreed(s, ids(remaining))
	})
	committed := time.Since(start)
	hist, took, err := waitReplicas(remaining, writes, 3, handoffTimeout)
	t.Logf("removal of %s committed in %.1fs; replica count histogram over %s after %.1fs more: %s",
		dead.ID(), committed.Seconds(), ids(remaining), took.Seconds(), fmtHist(hist))
	if err != nil {
		t.Fatalf("after removing dead %s, replicas not rebuilt: %v", dead.ID(), err)
	}
	for _, w := range writes {
		if err := checkExact(remaining[1], w.key, w.value, testnode.KV{}); err != nil {
			t.Errorf("after removing dead %s: %v", dead.ID(), err)
		}
	}
}
