package cluster

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dynkv/dynkv/test/testnode"
)

// gcArgs make tombstones reapable within the test: a short grace, and a
// reclaimer that looks often.
var gcArgs = []string{"--tombstone-grace", "2s", "--reclaim-interval", "200ms"}

// convergeTimeout bounds how long hints or anti-entropy may take to bring
// a returning replica up to date; it only stops a broken test.
const convergeTimeout = 90 * time.Second

// localState describes what a node holds for key: "gone", "tombstone" or
// the live values.
func localState(nd *testnode.Node, key string) (string, error) {
	l, err := nd.LocalGet(0, key)
	if err != nil {
		return "", err
	}
	if !l.Found {
		return "gone", nil
	}
	if vals := l.Values(); len(vals) > 0 {
		s := make([]string, len(vals))
		for i, v := range vals {
			s[i] = string(v)
		}
		return "values " + strings.Join(s, ","), nil
	}
	return "tombstone", nil
}

// waitLocal polls every node's own copy of every key until ok accepts all
// of them, and returns how long that took; it fails with what each node
// holds.
func waitLocal(t *testing.T, nodes []*testnode.Node, keys []string, what string, ok func(state string) bool) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(convergeTimeout)
	for {
		var bad []string
		for _, nd := range nodes {
			for _, k := range keys {
				st, err := localState(nd, k)
				if err != nil {
					bad = append(bad, fmt.Sprintf("%s %s: %v", nd.ID(), k, err))
				} else if !ok(st) {
					bad = append(bad, fmt.Sprintf("%s %s: %s", nd.ID(), k, st))
				}
			}
		}
		if len(bad) == 0 {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting %v for %s, still: %s", convergeTimeout, what, strings.Join(bad, "; "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// mustBeAbsent reads every key through every node at r=3 and r=1 and
// requires 404 each time.
func mustBeAbsent(t *testing.T, nodes []*testnode.Node, keys []string, when string) {
	t.Helper()
	for _, nd := range nodes {
		for _, k := range keys {
			for _, r := range []int{3, 1} {
				resp, err := nd.Get(k, testnode.KV{R: r})
				if err != nil {
					t.Fatalf("%s: GET %q r=%d via %s: %v (want 404)", when, k, r, nd.ID(), err)
				}
				if resp.Status != http.StatusNotFound {
					t.Fatalf("%s: GET %q r=%d via %s: got %s, want 404: the deleted key came back", when, k, r, nd.ID(), resp)
				}
			}
		}
	}
}

// TestDeletedKeyDoesNotReappearWhenStaleReplicaReturns: a replica X is down
// while keys are deleted; it comes back with the old values. Nothing reads
// the keys until X has caught up through hints or anti-entropy (its own
// copy is a tombstone); from then on every read through every node, at
// r=3 and r=1, is 404, and with a 2s grace the tombstones are reaped on
// every replica (which the tombstone GC allows only once X holds them) and
// the keys stay absent.
func TestDeletedKeyDoesNotReappearWhenStaleReplicaReturns(t *testing.T) {
	c := testnode.Start(t, 3, testnode.Options{Args: gcArgs})
	n0, x := c.Nodes[0], c.Nodes[2]
	keys := make([]string, 5)
	for i := range keys {
		keys[i] = fmt.Sprintf("delete/stale/%d", i)
		mustPut(t, c.Nodes[i%2], keys[i], []byte("old "+keys[i]), testnode.KV{W: 3})
	}
	waitLocal(t, c.Nodes, keys, "every node to hold the old values", func(st string) bool { return strings.HasPrefix(st, "values old ") })

	x.MustKill()
	for i, k := range keys {
		nd := c.Nodes[i%2]
		r, err := nd.Delete(k, testnode.KV{W: 2})
		if err != nil || r.Status != http.StatusNoContent {
			t.Fatalf("DELETE %q w=2 via %s with %s down: %v %s, want 204", k, nd.ID(), x.ID(), err, r)
		}
	}
	// Past the grace while X is away: the others must keep their tombstones.
	time.Sleep(3 * time.Second)
	waitLocal(t, c.Nodes[:2], keys, "the live nodes to keep the tombstones while "+x.ID()+" is down", func(st string) bool { return st == "tombstone" })

	restarted := time.Now()
	x.Restart()
	var stale int
	for _, k := range keys {
		if st, err := localState(x, k); err == nil && strings.HasPrefix(st, "values") {
			stale++
		}
	}
	t.Logf("%s restarted holding the old value of %d of %d keys", x.ID(), stale, len(keys))

	caughtUp := waitLocal(t, []*testnode.Node{x}, keys, x.ID()+" to receive the deletes without client reads", func(st string) bool { return st == "tombstone" || st == "gone" })
	t.Logf("%s caught up with the deletes %.1fs after its restart (hints or anti-entropy, no reads)", x.ID(), caughtUp.Seconds())

	for range 5 {
		mustBeAbsent(t, c.Nodes, keys, "after "+x.ID()+" returned")
	}
	waitLocal(t, c.Nodes, keys, "every replica to reap the tombstones", func(st string) bool { return st == "gone" })
	t.Logf("tombstones reaped on every replica %.1fs after %s restarted (grace 2s)", time.Since(restarted).Seconds(), x.ID())
	for range 5 {
		mustBeAbsent(t, c.Nodes, keys, "after the tombstones were reaped")
	}
	// Reaped keys stay reaped: no replica brings a copy back through
	// anti-entropy or hints once the tombstones are gone.
	time.Sleep(3 * time.Second)
	waitLocal(t, c.Nodes, keys, "the keys to stay reaped", func(st string) bool { return st == "gone" })
	mustBeAbsent(t, []*testnode.Node{n0, x}, keys, "a while after the reaping")
}

// TestExpiredValueIsReclaimedOnEveryReplica: a value written with a TTL
// reads as absent once it expires and is then reclaimed (buried as a
// tombstone, then reaped after the grace) on every replica.
func TestExpiredValueIsReclaimedOnEveryReplica(t *testing.T) {
	c := testnode.Start(t, 3, testnode.Options{Args: gcArgs})
	key := "ttl/everywhere"
	mustPut(t, c.Nodes[0], key, []byte("short-lived"), testnode.KV{W: 3, TTL: 2 * time.Second})
	waitLocal(t, c.Nodes, []string{key}, "every replica to hold the value", func(st string) bool { return st == "values short-lived" })
	took := waitLocal(t, c.Nodes, []string{key}, "every replica to reclaim the expired value", func(st string) bool { return st == "gone" })
	t.Logf("expired value reclaimed on every replica %.1fs after the write's acknowledgement (TTL 2s, grace 2s)", took.Seconds())
	mustBeAbsent(t, c.Nodes, []string{key}, "after the reclaim")
}
