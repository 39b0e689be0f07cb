package e2e

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/dynkv/dynkv/test/testnode"
)

// TestDeleteIsDurable: a DELETE answered 204 stays deleted across SIGKILL and
// restart, and the 404 carries the tombstone's X-Context (SPEC section 3).
func TestDeleteIsDurable(t *testing.T) {
	t.Parallel()
	n := startNode(t, testnode.NodeOptions{})
	n.put(t, -1, "gone", []byte("soon deleted"), "")
	n.put(t, -1, "kept", []byte("stays"), "")
	r := n.must(t, request{method: http.MethodDelete, path: kvPath(-1, "gone")})
	if r.Status != http.StatusNoContent {
		t.Fatalf("DELETE /kv/gone: got %s, want 204", r)
	}
	if r := n.expectAbsent(t, -1, "gone"); r.Header.Get("X-Context") == "" {
		t.Errorf("GET /kv/gone after DELETE: 404 without X-Context, want the tombstone's context")
	}
	// Deleting what does not exist is not an error.
	if r := n.must(t, request{method: http.MethodDelete, path: kvPath(-1, "never-written")}); r.Status != http.StatusNoContent {
		t.Errorf("DELETE /kv/never-written: got %s, want 204", r)
	}

	n.MustKill()
	n.Restart()
	n.expectAbsent(t, -1, "gone")
	n.expectValue(t, -1, "kept", []byte("stays"))

	// A write after the delete brings the key back, also after a restart.
	n.put(t, -1, "gone", []byte("back"), "")
	n.MustKill()
	n.Restart()
	n.expectValue(t, -1, "gone", []byte("back"))
}

// TestDatabasesAreIsolated: /db/{n}/kv/k and /kv/k are different keys, and
// /kv/ is database 0.
func TestDatabasesAreIsolated(t *testing.T) {
	t.Parallel()
	n := startNode(t, testnode.NodeOptions{})
	n.put(t, -1, "k", []byte("zero"), "")
	n.put(t, 3, "k", []byte("three"), "")
	n.put(t, 15, "k", []byte("fifteen"), "")
	n.expectValue(t, -1, "k", []byte("zero"))
	n.expectValue(t, 0, "k", []byte("zero"))
	n.expectValue(t, 3, "k", []byte("three"))
	n.expectValue(t, 15, "k", []byte("fifteen"))
	n.expectAbsent(t, 4, "k")

	if r := n.must(t, request{method: http.MethodDelete, path: kvPath(3, "k")}); r.Status != http.StatusNoContent {
		t.Fatalf("DELETE /db/3/kv/k: got %s, want 204", r)
	}
	n.expectAbsent(t, 3, "k")
	n.expectValue(t, -1, "k", []byte("zero"))
	n.expectValue(t, 15, "k", []byte("fifteen"))

	n.MustKill()
	n.Restart()
	n.expectAbsent(t, 3, "k")
	n.expectValue(t, 0, "k", []byte("zero"))
	n.expectValue(t, 15, "k", []byte("fifteen"))
}

// TestContentTypeRoundTrips: the Content-Type of a PUT comes back on GET,
// also after a restart.
func TestContentTypeRoundTrips(t *testing.T) {
	t.Parallel()
	n := startNode(t, testnode.NodeOptions{})
	const ct = "application/vnd.dynkv-e2e+json; charset=utf-8"
	r := n.must(t, request{method: http.MethodPut, path: kvPath(-1, "typed"), body: []byte(`{"a":1}`), contentType: ct})
	if r.Status != http.StatusNoContent {
		t.Fatalf("PUT /kv/typed: got %s, want 204", r)
	}
	check := func(when string) {
		t.Helper()
		r := n.must(t, request{method: http.MethodGet, path: kvPath(-1, "typed")})
		if r.Status != http.StatusOK || r.Header.Get("Content-Type") != ct {
			t.Errorf("%s: GET /kv/typed: got %s with Content-Type %q, want 200 with %q", when, r, r.Header.Get("Content-Type"), ct)
		}
	}
	check("before restart")
	n.MustKill()
	n.Restart()
	check("after restart")

	r = n.must(t, request{method: http.MethodPut, path: kvPath(-1, "untyped"), body: []byte("raw")})
	if r.Status != http.StatusNoContent {
		t.Fatalf("PUT /kv/untyped: got %s, want 204", r)
	}
	r = n.must(t, request{method: http.MethodGet, path: kvPath(-1, "untyped")})
	t.Logf("GET of a value PUT without Content-Type answers Content-Type %q", r.Header.Get("Content-Type"))
}

// TestSequentialBlindOverwritesLeaveLastValue is SPEC section 5: writes with
// no context, each acknowledged before the next, leave exactly the last value
// (no siblings).
func TestSequentialBlindOverwritesLeaveLastValue(t *testing.T) {
	t.Parallel()
	n := startNode(t, testnode.NodeOptions{})
	var last []byte
	for i := range 50 {
		last = []byte(fmt.Sprintf("version %02d", i))
		n.put(t, -1, "overwritten", last, "")
	}
	n.expectValue(t, -1, "overwritten", last)
	n.MustKill()
	n.Restart()
	n.expectValue(t, -1, "overwritten", last)
}

// TestKeysAreAnyByteStringPercentDecoded is SPEC section 3: a key is the
// rest of the path, percent-decoded, any bytes.
func TestKeysAreAnyByteStringPercentDecoded(t *testing.T) {
	t.Parallel()
	n := startNode(t, testnode.NodeOptions{})
	keys := []string{"a/b", "a%2Fb", "sp ace", "?#&=", "\x00\x01\xff", "ünï", "..", "a/../b", "trailing/"}
	for i, k := range keys {
		n.put(t, -1, k, []byte(fmt.Sprintf("value %d", i)), "")
	}
	for i, k := range keys {
		n.expectValue(t, -1, k, []byte(fmt.Sprintf("value %d", i)))
	}
	// A slash may also travel unencoded: /kv/a/b is the key "a/b".
	r := n.must(t, request{method: http.MethodGet, path: "/kv/a/b"})
	if r.Status != http.StatusOK || string(r.Body) != "value 0" {
		t.Errorf("GET /kv/a/b (unencoded slash): got %s, want 200 %q (the key \"a/b\")", r, "value 0")
	}
}

// TestSIGTERMShutsDownCleanlyAndKeepsEverything: SIGTERM exits 0 and a
// restart serves every acknowledged write.
func TestSIGTERMShutsDownCleanlyAndKeepsEverything(t *testing.T) {
	t.Parallel()
	n := startNode(t, testnode.NodeOptions{})
	want := map[string][]byte{}
	for i := range 100 {
		k := fmt.Sprintf("term/%03d", i)
		want[k] = []byte(fmt.Sprintf("value of %s", k))
		n.put(t, i%16, k, want[k], "")
	}
	n.Stop()
	n.Restart()
	n.expectHealthy(t)
	for i := range 100 {
		k := fmt.Sprintf("term/%03d", i)
		n.expectValue(t, i%16, k, want[k])
	}
	n.Stop()
}

// TestDatabasesFlagBoundsTheRange: --databases=N allows /db/0 to /db/N-1 only.
func TestDatabasesFlagBoundsTheRange(t *testing.T) {
	t.Parallel()
	n := startNode(t, testnode.NodeOptions{Args: []string{"--databases=4"}})
	n.put(t, 3, "k", []byte("last database"), "")
	n.expectValue(t, 3, "k", []byte("last database"))
	for _, m := range []string{http.MethodPut, http.MethodGet} {
		r := n.must(t, request{method: m, path: kvPath(4, "k"), body: []byte("v")})
		expectJSONError(t, m+" /db/4/kv/k with --databases=4", r, http.StatusBadRequest, http.StatusNotFound)
	}
}
