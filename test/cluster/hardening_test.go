package cluster

import (
	"encoding/base64"
	"encoding/binary"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/dynkv/dynkv/test/testnode"
)

// forgedContext encodes, as a client could, a context claiming the top
// counter for every node: the vclock encoding is version 1, the vector's
// entries (actor length, actor, counter) sorted by actor, then no dots.
func forgedContext(ids []string) string {
	ids = slices.Sorted(slices.Values(ids))
	b := []byte{1}
	b = binary.AppendUvarint(b, uint64(len(ids)))
	for _, id := range ids {
		b = binary.AppendUvarint(b, uint64(len(id)))
		b = append(b, id...)
		b = binary.AppendUvarint(b, ^uint64(0))
	}
	b = binary.AppendUvarint(b, 0)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Issue 16: a forged X-Context with the top counter of every node made
// every later acknowledged write vanish (204, then 404 on every replica),
// and two honest writers with one read context overwrite each other. The
// coordinator clamps a context to what the replicas hold, so the forged
// write supersedes only what exists, and every later write is kept.
func TestAForgedContextDoesNotSwallowLaterWrites(t *testing.T) {
	c := testnode.Start(t, 3, testnode.Options{})
	forged := forgedContext(c.IDs())
	const key = "forged"
	mustPut(t, c.Nodes[0], key, []byte("v0"), testnode.KV{W: 3})
	_, read, err := readValues(c.Nodes[1], key, testnode.KV{R: 3})
	if err != nil {
		t.Fatal(err)
	}
	for i, nd := range c.Nodes {
		got := mustPut(t, nd, key, []byte("forged"), testnode.KV{Context: forged, W: 3})
		if got == forged {
			t.Fatalf("forged write %d via %s returned the forged context unchanged", i, nd.ID())
		}
	}
	// Two honest clients that read v0 write through different nodes:
	// siblings of each other and of the forged writes.
	mustPut(t, c.Nodes[1], key, []byte("alice"), testnode.KV{Context: read.Context, W: 3})
	mustPut(t, c.Nodes[2], key, []byte("bob"), testnode.KV{Context: read.Context, W: 3})
	for _, nd := range c.Nodes {
		vals, _, err := readValues(nd, key, testnode.KV{R: 3})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(vals, "alice") || !slices.Contains(vals, "bob") || slices.Contains(vals, "v0") {
			t.Fatalf("read via %s: %v, want alice and bob as siblings and v0 superseded", nd.ID(), vals)
		}
	}
	// Later writes of every kind stay readable on every replica.
	for i, nd := range c.Nodes {
		mustPut(t, nd, key, []byte("blind"), testnode.KV{W: 3})
		for _, other := range c.Nodes {
			if err := checkExact(other, key, []byte("blind"), testnode.KV{R: 3}); err != nil {
				t.Fatalf("after blind write %d via %s: %v", i, nd.ID(), err)
			}
		}
		for _, id := range c.IDs() {
			local, err := c.Node(id).LocalGet(0, key)
			if err != nil {
				t.Fatal(err)
			}
			if vals := local.Values(); len(vals) != 1 || string(vals[0]) != "blind" {
				t.Fatalf("replica %s holds %q after blind write %d, want only blind", id, vals, i)
			}
		}
	}
}

// Issue 16: a Content-Type of exactly 256 bytes was accepted by the HTTP
// check while the stored encoding allows 255, so the write was stored in a
// form no replica could read back: GET 503, PUT and DELETE 500, background
// work failing forever. The limit is now one constant, checked on the way
// in: 255 bytes work end to end, 256 get a 400 and change nothing.
func TestALongContentTypeIsRefusedBeforeItIsStored(t *testing.T) {
	c := testnode.Start(t, 3, testnode.Options{})
	const key = "ct"
	mustPut(t, c.Nodes[0], key, []byte("acknowledged"), testnode.KV{W: 3})
	for _, n := range []int{256, 300, 4096} {
		h := http.Header{"Content-Type": {strings.Repeat("a", n)}}
		r, err := c.Nodes[1].Do(testnode.Request{Method: http.MethodPut, Path: "/kv/" + key, Body: []byte("poison"), Header: h})
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "Content-Type") {
			t.Fatalf("PUT with a %d-byte Content-Type: %s, want 400 naming Content-Type", n, r)
		}
	}
	for _, nd := range c.Nodes {
		if err := checkExact(nd, key, []byte("acknowledged"), testnode.KV{R: 3}); err != nil {
			t.Fatalf("the earlier acknowledged value after the refused writes: %v", err)
		}
	}
	long := strings.Repeat("b", 255)
	r, err := c.Nodes[2].Do(testnode.Request{Method: http.MethodPut, Path: "/kv/" + key + "?w=3", Body: []byte("long type"),
		Header: http.Header{"Content-Type": {long}}})
	if err != nil || r.Status != http.StatusNoContent {
		t.Fatalf("PUT with a 255-byte Content-Type: %v %v, want 204", r, err)
	}
	for _, nd := range c.Nodes {
		r, err := nd.Get(key, testnode.KV{R: 3})
		if err != nil || r.Status != http.StatusOK || r.Header.Get("Content-Type") != long {
			t.Fatalf("GET via %s after the 255-byte Content-Type: %v %v, want 200 with it", nd.ID(), r, err)
		}
	}
	// The key and the node's background work carry on: delete and write.
	mustPut(t, c.Nodes[0], key, []byte("after"), testnode.KV{W: 3})
	if r, err := c.Nodes[1].Delete(key, testnode.KV{W: 3}); err != nil || r.Status != http.StatusNoContent {
		t.Fatalf("DELETE: %v %v", r, err)
	}
}
