package cluster

import (
	"fmt"
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/dynkv/dynkv/test/testnode"
)

func TestThreeAndFiveNodeClustersServeEveryKeyFromEveryNode(t *testing.T) {
	for _, size := range []int{3, 5} {
		t.Run(fmt.Sprintf("%d-nodes", size), func(t *testing.T) {
			start := time.Now()
			c := testnode.Start(t, size, testnode.Options{})
			t.Logf("%d nodes started and agreed on the ring in %.1fs", size, time.Since(start).Seconds())
			// The ring comes by push-pull; each node's failure detector
			// learns of the others by gossip, which may take a few more
			// rounds on a loaded machine: poll until every node sees every
			// member alive, for at most 30s, then check everything.
			var statuses map[string]testnode.Status
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				var err error
				if statuses, err = testnode.Statuses(c.Nodes); err != nil {
					t.Fatal(err)
				}
				if allAlive(statuses, c.Nodes) || time.Now().After(deadline) {
					break
				}
			}
			for id, s := range statuses {
				if s.Node != id {
					t.Errorf("status of %s names itself %q", id, s.Node)
				}
				if s.N != 3 || s.R != 2 || s.W != 2 {
					t.Errorf("status of %s: n/r/w %d/%d/%d, want 3/2/2", id, s.N, s.R, s.W)
				}
				var sum float64
				for _, nd := range c.Nodes {
					m, ok := s.Member(nd.ID())
					switch {
					case !ok:
						t.Errorf("status of %s lacks member %s: %s", id, nd.ID(), s.Summary())
					case m.State != testnode.StateAlive:
						t.Errorf("status of %s: member %s is %q, want alive: %s", id, nd.ID(), m.State, s.Summary())
					case m.HTTPAddr != nd.Addr() || m.GossipAddr != nd.GossipAddr():
						t.Errorf("status of %s: member %s at http %q gossip %q, want %q and %q", id, nd.ID(), m.HTTPAddr, m.GossipAddr, nd.Addr(), nd.GossipAddr())
					}
					sum += m.RingShare
				}
				if math.Abs(sum-1) > 0.01 {
					t.Errorf("status of %s: ring shares sum to %v, want 1: %s", id, sum, s.Summary())
				}
			}

			const keys = 200
			writes := make([]write, keys)
			for i := range writes {
				writes[i] = write{key: fmt.Sprintf("serve/%d/%03d", size, i), value: fmt.Appendf(nil, "value %d of a %d-node cluster", i, size)}
				mustPut(t, c.Nodes[i%size], writes[i].key, writes[i].value, testnode.KV{})
			}
			bad := 0
			for i, w := range writes {
				for _, nd := range c.Nodes {
					if err := checkExact(nd, w.key, w.value, testnode.KV{}); err != nil {
						if bad++; bad <= 10 {
							t.Errorf("written through %s, read at default R: %v", c.Nodes[i%size].ID(), err)
						}
					}
				}
			}
			t.Logf("%d keys written round-robin, %d reads through %d nodes, %d wrong", keys, keys*size, size, bad)
			if bad > 0 {
				t.Fatalf("%d of %d reads did not return the written value with 200", bad, keys*size)
			}
		})
	}
}

func TestSequentialBlindWritesLeaveLastValue(t *testing.T) {
	c := testnode.Start(t, 3, testnode.Options{})
	const key, writes = "sequential/blind", 50
	var last []byte
	for i := range writes {
		last = fmt.Appendf(nil, "write %02d through %s", i, c.Nodes[i%3].ID())
		mustPut(t, c.Nodes[i%3], key, last, testnode.KV{})
	}
	for _, nd := range c.Nodes {
		vals, r, err := readValues(nd, key, testnode.KV{})
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != http.StatusOK || len(vals) != 1 || vals[0] != string(last) {
			t.Errorf("after %d sequential blind writes, GET via %s: got %d %q, want 200 [%q]", writes, nd.ID(), r.Status, vals, last)
		}
	}
}

// allAlive reports whether every status shows every node alive.
func allAlive(statuses map[string]testnode.Status, nodes []*testnode.Node) bool {
	for _, s := range statuses {
		for _, nd := range nodes {
			if m, ok := s.Member(nd.ID()); !ok || m.State != testnode.StateAlive {
				return false
			}
		}
	}
	return true
}
