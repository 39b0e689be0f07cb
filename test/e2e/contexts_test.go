package e2e

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/dynkv/dynkv/test/testnode"
)

// TestContextsStayValidAcrossRestart: a context handed out before a crash
// still means the same versions after it, so a dot minted after the restart
// never collides with one minted before (which would silently drop a write).
func TestContextsStayValidAcrossRestart(t *testing.T) {
	t.Parallel()
	n := startNode(t, testnode.NodeOptions{})

	c1 := n.put(t, -1, "ctx/resolve", []byte("v1"), "")
	stale := n.put(t, -1, "ctx/stale", []byte("v0"), "")
	n.put(t, -1, "ctx/stale", []byte("before crash"), stale)
	n.MustKill()
	n.Restart()

	// A context from before the crash still supersedes what it saw.
	n.put(t, -1, "ctx/resolve", []byte("v2"), c1)
	n.expectValue(t, -1, "ctx/resolve", []byte("v2"))

	// A stale context from before the crash makes a sibling, not a loss.
	n.put(t, -1, "ctx/stale", []byte("after crash"), stale)
	expectSiblings(t, n, "ctx/stale", "stale context after a restart", "before crash", "after crash")

	// And the 300's context still resolves after another restart.
	r := n.must(t, request{method: http.MethodGet, path: kvPath(-1, "ctx/stale")})
	resolve := r.Header.Get("X-Context")
	n.Stop()
	n.Restart()
	n.put(t, -1, "ctx/stale", []byte("resolved"), resolve)
	n.expectValue(t, -1, "ctx/stale", []byte("resolved"))
}

// TestConcurrentBlindWritesLeaveOneValue is SPEC section 5: a write with no
// context supersedes what the replica has, so racing blind writers leave a
// single value, one that some writer wrote, never siblings.
func TestConcurrentBlindWritesLeaveOneValue(t *testing.T) {
	t.Parallel()
	const writers, each = 8, 25
	n := startNode(t, testnode.NodeOptions{})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				v := fmt.Sprintf("writer %d write %02d", w, i)
				r, err := n.do(request{method: http.MethodPut, path: kvPath(-1, "blind"), body: []byte(v)})
				if err != nil {
					t.Errorf("%v", err)
					return
				}
				if r.Status != http.StatusNoContent {
					t.Errorf("PUT /kv/blind %q: got %s, want 204", v, r)
					return
				}
			}
		}()
	}
	wg.Wait()
	r := n.must(t, request{method: http.MethodGet, path: kvPath(-1, "blind")})
	if r.Status != http.StatusOK {
		t.Fatalf("GET /kv/blind after %d concurrent blind writers: got %s, want 200 with one value", writers, r)
	}
	var w, i int
	if _, err := fmt.Sscanf(string(r.Body), "writer %d write %d", &w, &i); err != nil || i != each-1 {
		// Each writer's own writes are sequential, so the survivor is some writer's last.
		t.Errorf("GET /kv/blind: got %q, want the last write of one of the writers (\"writer N write %02d\")", r.Body, each-1)
	}
}

// TestConcurrentWritersWithOneStaleContextAllBecomeSiblings is SPEC section
// 5: no acknowledged write is lost while it is not superseded. Writers that
// all hold the same context race; every value they wrote comes back.
func TestConcurrentWritersWithOneStaleContextAllBecomeSiblings(t *testing.T) {
	t.Parallel()
	const writers = 8
	n := startNode(t, testnode.NodeOptions{})
	stale := n.put(t, -1, "race", []byte("base"), "")
	var (
		wg   sync.WaitGroup
		want = make([]string, writers)
		ok   atomic.Int32
	)
	for w := range writers {
		want[w] = fmt.Sprintf("writer %d", w)
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := n.do(request{method: http.MethodPut, path: kvPath(-1, "race"), body: []byte(want[w]), context: stale})
			if err != nil {
				t.Errorf("%v", err)
				return
			}
			if r.Status != http.StatusNoContent {
				t.Errorf("PUT /kv/race %q: got %s, want 204", want[w], r)
				return
			}
			ok.Add(1)
		}()
	}
	wg.Wait()
	if ok.Load() != writers {
		t.FailNow()
	}
	expectSiblings(t, n, "race", fmt.Sprintf("%d writers with one stale context", writers), want...)
	n.MustKill()
	n.Restart()
	expectSiblings(t, n, "race", "after a restart", want...)
}

// TestDeleteWithStaleContextKeepsConcurrentWrite: a DELETE supersedes only
// what its context covers; a concurrent write survives it, and a DELETE with
// a 300's context removes every sibling.
func TestDeleteWithStaleContextKeepsConcurrentWrite(t *testing.T) {
	t.Parallel()
	n := startNode(t, testnode.NodeOptions{})
	stale := n.put(t, -1, "del", []byte("base"), "")
	n.put(t, -1, "del", []byte("concurrent"), stale)
	r := n.must(t, request{method: http.MethodDelete, path: kvPath(-1, "del"), context: stale})
	if r.Status != http.StatusNoContent {
		t.Fatalf("DELETE /kv/del with a stale context: got %s, want 204", r)
	}
	n.expectValue(t, -1, "del", []byte("concurrent"))

	s0 := n.put(t, -1, "del2", []byte("base"), "")
	n.put(t, -1, "del2", []byte("a"), s0)
	n.put(t, -1, "del2", []byte("b"), s0)
	expectSiblings(t, n, "del2", "two writes with one stale context", "a", "b")
	r = n.must(t, request{method: http.MethodGet, path: kvPath(-1, "del2")})
	r = n.must(t, request{method: http.MethodDelete, path: kvPath(-1, "del2"), context: r.Header.Get("X-Context")})
	if r.Status != http.StatusNoContent {
		t.Fatalf("DELETE /kv/del2 with the read's context: got %s, want 204", r)
	}
	n.expectAbsent(t, -1, "del2")
	n.MustKill()
	n.Restart()
	n.expectAbsent(t, -1, "del2")
	n.expectValue(t, -1, "del", []byte("concurrent"))
}

// TestSIGTERMDuringLoadExitsZeroAndKeepsEveryAcknowledgedWrite: shutdown
// drains in-flight requests, exits 0, and a restart serves every write that
// got a 204.
func TestSIGTERMDuringLoadExitsZeroAndKeepsEveryAcknowledgedWrite(t *testing.T) {
	t.Parallel()
	const clients, perClient, stopAt = 16, 200, 300
	n := startNode(t, testnode.NodeOptions{})
	var (
		mu      sync.Mutex
		acked   []write
		indet   []write
		acks    atomic.Int64
		stopNow = make(chan struct{})
		once    sync.Once
		wg      sync.WaitGroup
	)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perClient {
				w := write{key: fmt.Sprintf("term-load/c%02d/%04d", c, i), value: []byte(fmt.Sprintf("client %d write %d", c, i))}
				r, err := n.do(request{method: http.MethodPut, path: kvPath(-1, w.key), body: w.value})
				if err != nil || r.Status != http.StatusNoContent {
					// Refused or cut off by the shutdown: indeterminate.
					mu.Lock()
					indet = append(indet, w)
					mu.Unlock()
					return
				}
				mu.Lock()
				acked = append(acked, w)
				mu.Unlock()
				if acks.Add(1) == stopAt {
					once.Do(func() { close(stopNow) })
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-stopNow:
	case <-done:
	}
	n.Stop() // fails the test unless the exit status is 0
	<-done
	n.Restart()
	lost, wrong := verifyWrites(t, n, acked, true)
	present, wrongIndet := verifyWrites(t, n, indet, false)
	t.Logf("SIGTERM after %d acks: acknowledged %d, lost %d (wrong %d); cut off %d, of which present %d (wrong %d)",
		stopAt, len(acked), lost, wrong, len(indet), present, wrongIndet)
	if lost+wrong+wrongIndet != 0 {
		t.Fatalf("after SIGTERM during load: %d acknowledged writes lost, %d read back wrong, %d cut-off writes wrong; want 0", lost, wrong, wrongIndet)
	}
}

// TestShedLoadGets429AndAppliesNothing is SPEC section 3: beyond
// --max-inflight the node answers 429 with a JSON error; a shed write is not
// applied, an accepted one is.
func TestShedLoadGets429AndAppliesNothing(t *testing.T) {
	t.Parallel()
	const clients, each = 16, 20
	n := startNode(t, testnode.NodeOptions{Args: []string{"--max-inflight=1"}})
	var (
		mu       sync.Mutex
		accepted []write
		shed     []write
		wg       sync.WaitGroup
	)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				w := write{key: fmt.Sprintf("shed/c%02d/%02d", c, i), value: []byte(fmt.Sprintf("client %d write %d", c, i))}
				r, err := n.do(request{method: http.MethodPut, path: kvPath(-1, w.key), body: w.value})
				if err != nil {
					t.Errorf("%v", err)
					return
				}
				mu.Lock()
				switch r.Status {
				case http.StatusNoContent:
					accepted = append(accepted, w)
				case http.StatusTooManyRequests:
					shed = append(shed, w)
					expectJSONError(t, "shed PUT "+w.key, r, http.StatusTooManyRequests)
				default:
					t.Errorf("PUT %s with --max-inflight=1: got %s, want 204 or 429", w.key, r)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	t.Logf("%d clients x %d writes with --max-inflight=1: %d accepted, %d shed with 429", clients, each, len(accepted), len(shed))
	if len(accepted) == 0 {
		t.Fatalf("every write was shed, want at least one accepted")
	}
	for _, w := range accepted {
		n.expectValue(t, -1, w.key, w.value)
	}
	for _, w := range shed {
		n.expectAbsent(t, -1, w.key)
	}
}
