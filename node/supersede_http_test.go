package node

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/dynkv/dynkv/node/httpapi"
	"github.com/dynkv/dynkv/vclock"
)

// SPEC section 3: every GET answers with an X-Context, a 404 included; for
// a key never written it is the empty context, a valid token that covers
// nothing, and two clients that both read 404 and both write with that
// context leave two siblings (SPEC section 5). Without the header the
// write stays blind.
func TestA404sContextMakesConcurrentCreatesSiblings(t *testing.T) {
	tn := startNode(t, nil, nil)
	r := tn.get("/kv/fresh", nil)
	if r.status != http.StatusNotFound || r.context() == "" {
		t.Fatalf("GET of a key never written = %d with X-Context %q, want 404 with the empty context", r.status, r.context())
	}
	empty := r.context()
	if c, err := httpapi.DecodeContext(empty); err != nil || !c.IsZero() {
		t.Fatalf("the 404's context %q decodes to %v, %v; want the empty context", empty, c, err)
	}
	// Both clients read 404, then both write back with its context.
	tn.mustPut("/kv/fresh", "first", empty)
	tn.mustPut("/kv/fresh", "second", empty)
	if got := siblingValues(t, tn.get("/kv/fresh", nil)); !slices.Equal(got, []string{"first", "second"}) {
		t.Fatalf("after two creates with the empty context: %v, want both as siblings", got)
	}

	// Blind writes (no header) still overwrite: the last one is left.
	tn.mustPut("/kv/blind", "first", "")
	tn.mustPut("/kv/blind", "second", "")
	tn.mustGet("/kv/blind", "second")

	// A deleted key's 404 carries a context that covers the tombstone, so
	// a write with it supersedes the delete instead of living beside it.
	ctx := tn.mustPut("/kv/gone", "v", "")
	if r := tn.do(http.MethodDelete, "/kv/gone", nil, map[string]string{ContextHeader: ctx}); r.status != http.StatusNoContent {
		t.Fatalf("DELETE = %d %q", r.status, r.body)
	}
	r = tn.get("/kv/gone", nil)
	if r.status != http.StatusNotFound || r.context() == "" || r.context() == empty {
		t.Fatalf("GET of a deleted key = %d with X-Context %q, want 404 with a context covering the delete", r.status, r.context())
	}
	tn.mustPut("/kv/gone", "back", r.context())
	tn.mustGet("/kv/gone", "back")
}

func siblingValues(t *testing.T, r response) []string {
	t.Helper()
	if r.status != http.StatusMultipleChoices {
		if r.status == http.StatusOK {
			return []string{string(r.body)}
		}
		t.Fatalf("GET = %d %q, want 200 or 300", r.status, r.body)
	}
	var body httpapi.SiblingsBody
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatalf("300 body %q: %v", r.body, err)
	}
	var out []string
	for _, s := range body.Siblings {
		out = append(out, string(s.Value))
	}
	slices.Sort(out)
	return out
}

// Issue 16: a parameter or an X-Context given twice is a 400, not silently
// the first one (?w=1&w=3 could weaken a quorum without the client knowing).
func TestRepeatedParametersAndContextsAre400(t *testing.T) {
	tn := startNode(t, nil, nil)
	ctx := tn.mustPut("/kv/k", "v", "")
	for _, target := range []string{"/kv/k?w=1&w=1", "/kv/k?ttl=10&ttl=20", "/kv/k?x=1&x=2"} {
		if r := tn.put(target, "v2", nil); r.status != http.StatusBadRequest || !strings.Contains(r.jsonError(t), "times") {
			t.Errorf("PUT %s = %d %q, want 400 naming the repeated parameter", target, r.status, r.body)
		}
	}
	if r := tn.get("/kv/k?r=1&r=1", nil); r.status != http.StatusBadRequest {
		t.Errorf("GET with r twice = %d %q, want 400", r.status, r.body)
	}
	for _, method := range []string{http.MethodPut, http.MethodDelete} {
		req, err := http.NewRequest(method, tn.base+"/kv/k", strings.NewReader("v3"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Add(ContextHeader, ctx)
		req.Header.Add(ContextHeader, ctx)
		resp, err := tn.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s with two X-Context headers = %d, want 400", method, resp.StatusCode)
		}
	}
	tn.mustGet("/kv/k", "v")
}

// Issue 16: a Content-Type of 256 bytes was accepted while the stored
// encoding allows 255, which made the key unreadable. The limit is one
// constant, the encoding's, checked where the request comes in.
func TestContentTypeLimitIsTheStoredEncodingsLimit(t *testing.T) {
	tn := startNode(t, nil, nil)
	ok := strings.Repeat("a", vclock.MaxContentTypeLen)
	tn.mustPut("/kv/ct", "v", "")
	if r := tn.put("/kv/ct", "long", map[string]string{"Content-Type": ok}); r.status != http.StatusNoContent {
		t.Fatalf("PUT with a %d-byte Content-Type = %d %q, want 204", len(ok), r.status, r.body)
	}
	if g := tn.mustGet("/kv/ct", "long"); g.header.Get("Content-Type") != ok {
		t.Fatalf("Content-Type read back is %d bytes, want the %d written", len(g.header.Get("Content-Type")), len(ok))
	}
	if r := tn.put("/kv/ct", "longer", map[string]string{"Content-Type": ok + "a"}); r.status != http.StatusBadRequest {
		t.Fatalf("PUT with a %d-byte Content-Type = %d %q, want 400", len(ok)+1, r.status, r.body)
	}
	tn.mustGet("/kv/ct", "long")
	tn.mustPut("/kv/ct", "after", "")
	tn.mustGet("/kv/ct", "after")
}
