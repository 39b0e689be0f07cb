package e2e

import (
	"net/http"
	"testing"
	"time"

	"github.com/dynkv/dynkv/test/testnode"
)

// TestTTLExpiresAlsoAfterRestart is SPEC section 5: a TTL is an absolute
// expiry time; an expired value reads as absent, before and after a restart,
// and a restart neither drops a live TTL value early nor revives an expired one.
//
// Nothing here asserts how fast the server is: "readable at once" is only
// checked while the clock says the TTL cannot have run out yet.
func TestTTLExpiresAlsoAfterRestart(t *testing.T) {
	t.Parallel()
	n := startNode(t, testnode.NodeOptions{})

	t.Run("ExpiresWithin10s", func(t *testing.T) {
		for _, c := range []struct {
			key, ttl string
			d        time.Duration
		}{
			{"ttl/go-duration", "1s", time.Second},
			{"ttl/seconds", "1", time.Second},
		} {
			before := time.Now()
			r := n.must(t, request{method: http.MethodPut, path: kvPath(-1, c.key) + "?ttl=" + c.ttl, body: []byte("short-lived")})
			if r.Status != http.StatusNoContent {
				t.Fatalf("PUT %s?ttl=%s: got %s, want 204", c.key, c.ttl, r)
			}
			expectLiveUntil(t, n, c.key, []byte("short-lived"), before.Add(c.d))
			expectGoneWithin(t, n, c.key, 10*time.Second)
		}
	})

	t.Run("SurvivesRestartThenExpires", func(t *testing.T) {
		const key = "ttl/restart"
		before := time.Now()
		r := n.must(t, request{method: http.MethodPut, path: kvPath(-1, key) + "?ttl=3s", body: []byte("three seconds")})
		if r.Status != http.StatusNoContent {
			t.Fatalf("PUT %s?ttl=3s: got %s, want 204", key, r)
		}
		n.put(t, -1, "ttl/forever", []byte("no ttl"), "")
		n.MustKill()
		n.Restart()
		expectLiveUntil(t, n, key, []byte("three seconds"), before.Add(3*time.Second))
		expectGoneWithin(t, n, key, 10*time.Second)

		// Replaying the WAL must not bring the expired value back.
		n.Stop()
		n.Restart()
		n.expectAbsent(t, -1, key)
		n.expectValue(t, -1, "ttl/forever", []byte("no ttl"))
	})
}

// expectLiveUntil requires key to read as want, unless expiry has already
// passed by the time the answer arrives (then nothing can be concluded).
func expectLiveUntil(t *testing.T, n *node, key string, want []byte, expiry time.Time) {
	t.Helper()
	r := n.must(t, request{method: http.MethodGet, path: kvPath(-1, key)})
	if time.Now().After(expiry) {
		t.Logf("GET %s answered after its expiry; not judging %s", key, r)
		return
	}
	if r.Status != http.StatusOK || string(r.Body) != string(want) {
		t.Errorf("GET %s before its TTL ran out: got %s, want 200 %q", key, r, want)
	}
}

// expectGoneWithin polls until key reads 404, at most d.
func expectGoneWithin(t *testing.T, n *node, key string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		r := n.must(t, request{method: http.MethodGet, path: kvPath(-1, key)})
		if r.Status == http.StatusNotFound {
			return
		}
		if r.Status != http.StatusOK {
			t.Fatalf("GET %s while waiting for expiry: got %s, want 200 or 404", key, r)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: still %s %v after the TTL was set, want 404 (expired)", key, r, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestOverwriteWithoutTTLOutlivesTheOldTTL: a blind write without a TTL
// replaces a value that had one; the old expiry (and its reclaim) must not
// take the new value with it.
func TestOverwriteWithoutTTLOutlivesTheOldTTL(t *testing.T) {
	t.Parallel()
	n := startNode(t, testnode.NodeOptions{Args: []string{"--reclaim-interval=100ms"}})
	for _, k := range []string{"ttl/overwritten", "ttl/control"} {
		r := n.must(t, request{method: http.MethodPut, path: kvPath(-1, k) + "?ttl=1s", body: []byte("short")})
		if r.Status != http.StatusNoContent {
			t.Fatalf("PUT %s?ttl=1s: got %s, want 204", k, r)
		}
	}
	n.put(t, -1, "ttl/overwritten", []byte("forever"), "")
	// Once the control key is gone the old expiry has passed; then give the
	// reclaimer several rounds.
	expectGoneWithin(t, n, "ttl/control", 10*time.Second)
	time.Sleep(time.Second)
	n.expectValue(t, -1, "ttl/overwritten", []byte("forever"))
	n.MustKill()
	n.Restart()
	time.Sleep(500 * time.Millisecond)
	n.expectValue(t, -1, "ttl/overwritten", []byte("forever"))
}

// TestRewriteAfterDeleteSurvivesTombstoneReclaim: reclaiming a tombstone
// after --tombstone-grace must not drop a value written after the delete,
// and a reclaimed delete stays deleted.
func TestRewriteAfterDeleteSurvivesTombstoneReclaim(t *testing.T) {
	t.Parallel()
	n := startNode(t, testnode.NodeOptions{Args: []string{"--tombstone-grace=1s", "--reclaim-interval=100ms"}})
	for _, k := range []string{"tomb/rewritten", "tomb/deleted"} {
		n.put(t, -1, k, []byte("first"), "")
		if r := n.must(t, request{method: http.MethodDelete, path: kvPath(-1, k)}); r.Status != http.StatusNoContent {
			t.Fatalf("DELETE %s: got %s, want 204", k, r)
		}
	}
	n.put(t, -1, "tomb/rewritten", []byte("second"), "")
	time.Sleep(2500 * time.Millisecond) // the grace plus many reclaim rounds
	n.expectValue(t, -1, "tomb/rewritten", []byte("second"))
	n.expectAbsent(t, -1, "tomb/deleted")
	n.MustKill()
	n.Restart()
	time.Sleep(500 * time.Millisecond)
	n.expectValue(t, -1, "tomb/rewritten", []byte("second"))
	n.expectAbsent(t, -1, "tomb/deleted")
}

// TestExpiredSiblingDropsOut: when one of two siblings expires, a read
// returns the other alone.
func TestExpiredSiblingDropsOut(t *testing.T) {
	t.Parallel()
	n := startNode(t, testnode.NodeOptions{})
	stale := n.put(t, -1, "ttl/sib", []byte("base"), "")
	n.put(t, -1, "ttl/sib", []byte("stays"), stale)
	r := n.must(t, request{method: http.MethodPut, path: kvPath(-1, "ttl/sib") + "?ttl=1s", body: []byte("expires"), context: stale})
	if r.Status != http.StatusNoContent {
		t.Fatalf("PUT /kv/ttl/sib?ttl=1s with a stale context: got %s, want 204", r)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := n.must(t, request{method: http.MethodGet, path: kvPath(-1, "ttl/sib")})
		if r.Status == http.StatusOK {
			if string(r.Body) != "stays" {
				t.Fatalf("GET /kv/ttl/sib after one sibling expired: got %s, want 200 \"stays\"", r)
			}
			return
		}
		if r.Status != http.StatusMultipleChoices || time.Now().After(deadline) {
			t.Fatalf("GET /kv/ttl/sib: got %s, want 300 until the TTL sibling expires, then 200 \"stays\" (within 10s)", r)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
