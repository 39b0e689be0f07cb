package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/dynkv/dynkv/test/testnode"
)

// TestConcurrentStaleWritesBecomeSiblingsAndResolve is SPEC section 5:
// concurrent writes become siblings (300 with every value), a PUT with the
// 300's context resolves them, and two clients that each keep writing with
// the context of their own previous PUT leave exactly two siblings.
func TestConcurrentStaleWritesBecomeSiblingsAndResolve(t *testing.T) {
	t.Parallel()
	n := startNode(t, testnode.NodeOptions{})

	t.Run("StaleContextMakesSiblingsAndTheirContextResolvesThem", func(t *testing.T) {
		stale := n.put(t, -1, "s", []byte("v0"), "")
		n.put(t, -1, "s", []byte("a"), stale)
		n.put(t, -1, "s", []byte("b"), stale)

		r := n.must(t, request{method: http.MethodGet, path: kvPath(-1, "s")})
		if r.Status != http.StatusMultipleChoices {
			t.Fatalf("GET /kv/s after two PUTs with the same context: got %s, want 300 with siblings a and b", r)
		}
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("GET /kv/s 300: Content-Type %q, want application/json", ct)
		}
		got := siblingValues(t, "GET /kv/s", r)
		slices.Sort(got)
		if want := []string{"a", "b"}; !slices.Equal(got, want) {
			t.Fatalf("GET /kv/s: siblings %q, want %q", got, want)
		}
		resolve := r.Header.Get("X-Context")
		if resolve == "" {
			t.Fatalf("GET /kv/s: 300 without an X-Context header, want one")
		}

		n.put(t, -1, "s", []byte("c"), resolve)
		n.expectValue(t, -1, "s", []byte("c"))
	})

	t.Run("TwoWritersKeepExactlyTwoSiblings", func(t *testing.T) {
		const rounds = 20
		start := n.put(t, -1, "pair", []byte("init"), "")
		ctxA, ctxB := start, start
		var lastA, lastB string
		for i := range rounds {
			lastA = fmt.Sprintf("a%02d", i)
			ctxA = n.put(t, -1, "pair", []byte(lastA), ctxA)
			if i > 0 {
				expectSiblings(t, n, "pair", fmt.Sprintf("round %d after A", i), lastA, lastB)
			}
			lastB = fmt.Sprintf("b%02d", i)
			ctxB = n.put(t, -1, "pair", []byte(lastB), ctxB)
			expectSiblings(t, n, "pair", fmt.Sprintf("round %d after B", i), lastA, lastB)
		}
	})
}

// expectSiblings requires GET key to be a 300 with exactly the values want.
func expectSiblings(t *testing.T, n *node, key, when string, want ...string) {
	t.Helper()
	r := n.must(t, request{method: http.MethodGet, path: kvPath(-1, key)})
	if r.Status != http.StatusMultipleChoices {
		t.Fatalf("%s: GET %s: got %s, want 300 with siblings %q", when, kvPath(-1, key), r, want)
	}
	got := siblingValues(t, when, r)
	slices.Sort(got)
	want = slices.Clone(want)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("%s: GET %s: siblings %q, want exactly %q", when, kvPath(-1, key), got, want)
	}
}
