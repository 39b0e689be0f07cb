package cluster

import (
	"fmt"
	"net/http"
	"slices"
	"testing"

	"github.com/dynkv/dynkv/test/testnode"
)

func TestConcurrentContextWritesBecomeSiblingsAndResolve(t *testing.T) {
	c := testnode.Start(t, 3, testnode.Options{})
	n0, n1, n2 := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	const key = "siblings/shared"

	mustPut(t, n0, key, []byte("base"), testnode.KV{})
	_, base, err := readValues(n0, key, testnode.KV{})
	if err != nil {
		t.Fatal(err)
	}
	if base.Status != http.StatusOK || base.Context == "" {
		t.Fatalf("GET %q via %s: got %s with context %q, want 200 \"base\" with a context", key, n0.ID(), base, base.Context)
	}
	// Two clients both hold the context of "base" and write through
	// different coordinators: neither has seen the other.
	mustPut(t, n1, key, []byte("from-a"), testnode.KV{Context: base.Context})
	mustPut(t, n2, key, []byte("from-b"), testnode.KV{Context: base.Context})
	vals, r, err := readValues(n0, key, testnode.KV{})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"from-a", "from-b"}; r.Status != http.StatusMultipleChoices || !slices.Equal(vals, want) {
		t.Fatalf("GET after two writes with the same context: got %d %q, want 300 %q", r.Status, vals, want)
	}
	mustPut(t, n1, key, []byte("resolved"), testnode.KV{Context: r.Context})
	for _, nd := range c.Nodes {
		vals, r, err := readValues(nd, key, testnode.KV{})
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != http.StatusOK || !slices.Equal(vals, []string{"resolved"}) {
			t.Fatalf("GET via %s after a write with the siblings' context: got %d %q, want 200 [\"resolved\"]", nd.ID(), r.Status, vals)
		}
	}

	// Two writers, each reusing the context its own previous PUT returned,
	// interleaved through different nodes: Dynamo's sibling explosion
	// case, which dotted version vectors bound to one sibling per writer.
	_, resolved, err := readValues(n2, key, testnode.KV{})
	if err != nil {
		t.Fatal(err)
	}
	ctxA, ctxB := resolved.Context, resolved.Context
	const rounds = 20
	var lastA, lastB string
	maxSiblings := 0
	for i := range rounds {
		lastA, lastB = fmt.Sprintf("a-%02d", i), fmt.Sprintf("b-%02d", i)
		ctxA = mustPut(t, c.Nodes[i%3], key, []byte(lastA), testnode.KV{Context: ctxA})
		ctxB = mustPut(t, c.Nodes[(i+1)%3], key, []byte(lastB), testnode.KV{Context: ctxB})
		reader := c.Nodes[(i+2)%3]
		vals, r, err := readValues(reader, key, testnode.KV{})
		if err != nil {
			t.Fatal(err)
		}
		maxSiblings = max(maxSiblings, len(vals))
		if want := []string{lastA, lastB}; r.Status != http.StatusMultipleChoices || !slices.Equal(vals, want) {
			t.Fatalf("round %d, GET via %s: got %d %q, want 300 %q (each writer's latest, nothing older)", i, reader.ID(), r.Status, vals, want)
		}
	}
	for _, nd := range c.Nodes {
		vals, r, err := readValues(nd, key, testnode.KV{})
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{lastA, lastB}; r.Status != http.StatusMultipleChoices || !slices.Equal(vals, want) {
			t.Errorf("after %d rounds, GET via %s: got %d %q, want 300 %q", rounds, nd.ID(), r.Status, vals, want)
		}
	}
	t.Logf("%d rounds of two writers: at most %d siblings seen", rounds, maxSiblings)
}
