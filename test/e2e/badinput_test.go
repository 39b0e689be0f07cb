package e2e

import (
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dynkv/dynkv/test/testnode"
)

// TestBadInputGetsSpecStatusAndNodeStaysUp is SPEC section 3: malformed
// requests get the documented status with a JSON error, and no request can
// crash a node or corrupt its data.
func TestBadInputGetsSpecStatusAndNodeStaysUp(t *testing.T) {
	t.Parallel()
	const maxValue = 1024
	n := startNode(t, testnode.NodeOptions{Args: []string{fmt.Sprintf("--max-value-bytes=%d", maxValue)}})
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 1))

	// Data that must survive everything below.
	baseline := map[string][]byte{}
	for i := range 20 {
		k := fmt.Sprintf("baseline/%02d", i)
		baseline[k] = []byte(fmt.Sprintf("value %d %x", i, rng.Uint64()))
		n.put(t, -1, k, baseline[k], "")
	}
	ctx := n.put(t, -1, "x", []byte("x-value"), "")
	baseline["x"] = []byte("x-value")

	t.Run("EmptyKeyIs400", func(t *testing.T) {
		for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
			r := n.must(t, request{method: m, path: "/kv/", body: []byte("v")})
			expectJSONError(t, m+" /kv/", r, http.StatusBadRequest)
		}
	})

	t.Run("KeyOf1025BytesIs400And1024IsAccepted", func(t *testing.T) {
		long := strings.Repeat("k", 1025)
		r := n.must(t, request{method: http.MethodPut, path: kvPath(-1, long), body: []byte("v")})
		expectJSONError(t, "PUT 1025-byte key", r, http.StatusBadRequest)
		r = n.must(t, request{method: http.MethodGet, path: kvPath(-1, long)})
		expectJSONError(t, "GET 1025-byte key", r, http.StatusBadRequest)

		// 1024 bytes that each need percent-encoding: the limit is on the decoded key.
		max := strings.Repeat("\xff", 1024)
		n.put(t, -1, max, []byte("longest key"), "")
		n.expectValue(t, -1, max, []byte("longest key"))
	})

	t.Run("BadPercentEncodingIs400", func(t *testing.T) {
		// net/http cannot even build these, so they go out as raw bytes.
		for _, path := range []string{"/kv/%zz", "/kv/a%2", "/kv/%", "/db/0/kv/%G0"} {
			for _, m := range []string{"GET", "PUT"} {
				raw := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: e2e\r\nContent-Length: 1\r\nConnection: close\r\n\r\nv", m, path)
				r, err := n.rawExchange(raw)
				if err != nil {
					t.Errorf("%s %s: %v (want a 400 response)", m, path, err)
					continue
				}
				t.Logf("%s %s: server answered %d, Content-Type %q, body %q", m, path, r.Status, r.Header.Get("Content-Type"), clip(r.Body))
				if r.Status != http.StatusBadRequest {
					t.Errorf("%s %s: got %s, want 400", m, path, r)
				}
			}
		}
	})

	t.Run("ValueOverMaxIs413", func(t *testing.T) {
		r := n.must(t, request{method: http.MethodPut, path: kvPath(-1, "big"), body: make([]byte, maxValue+1)})
		expectJSONError(t, fmt.Sprintf("PUT %d-byte value with --max-value-bytes=%d", maxValue+1, maxValue), r, http.StatusRequestEntityTooLarge)
		n.expectAbsent(t, -1, "big")

		// Without a Content-Length (chunked) the limit must hold while reading.
		hr, err := http.NewRequest(http.MethodPut, n.URL()+kvPath(-1, "big-chunked"), io.NopCloser(strings.NewReader(strings.Repeat("b", 64*maxValue))))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := n.HTTPClient().Do(hr)
		if err != nil {
			t.Fatalf("chunked PUT of %d bytes: %v (want 413)", 64*maxValue, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		expectJSONError(t, "chunked PUT over the limit", &response{Status: resp.StatusCode, Header: resp.Header, Body: body}, http.StatusRequestEntityTooLarge)
		n.expectAbsent(t, -1, "big-chunked")

		exact := make([]byte, maxValue)
		n.put(t, -1, "exactly-max", exact, "")
		n.expectValue(t, -1, "exactly-max", exact)
	})

	t.Run("MalformedContextIs400", func(t *testing.T) {
		bad := []string{
			"not base64!",
			base64.RawURLEncoding.EncodeToString([]byte("\xff\xfe garbage that is no context")),
			base64.StdEncoding.EncodeToString([]byte{0, 0, 0}) + "==",
			ctx[:len(ctx)/2] + "!" + ctx[len(ctx)/2:],
		}
		for _, c := range bad {
			for _, m := range []string{http.MethodPut, http.MethodDelete} {
				r := n.must(t, request{method: m, path: kvPath(-1, "x"), body: []byte("must not land"), context: c})
				expectJSONError(t, fmt.Sprintf("%s /kv/x with X-Context %q", m, c), r, http.StatusBadRequest)
			}
		}
	})

	t.Run("BadTTLIs400", func(t *testing.T) {
		for _, ttl := range []string{"abc", "-5s", "0", "0s", "-1", "1x", "99999999999999999999", "1e9999"} {
			p := kvPath(-1, "ttl-bad") + "?ttl=" + ttl
			r := n.must(t, request{method: http.MethodPut, path: p, body: []byte("v")})
			expectJSONError(t, "PUT "+p, r, http.StatusBadRequest)
		}
		n.expectAbsent(t, -1, "ttl-bad")
	})

	t.Run("BadQuorumQueryIs400", func(t *testing.T) {
		for _, q := range []string{"w=abc", "w=-1"} {
			r := n.must(t, request{method: http.MethodPut, path: kvPath(-1, "q-bad") + "?" + q, body: []byte("v")})
			expectJSONError(t, "PUT ?"+q, r, http.StatusBadRequest)
		}
		r := n.must(t, request{method: http.MethodGet, path: kvPath(-1, "x") + "?r=abc"})
		expectJSONError(t, "GET ?r=abc", r, http.StatusBadRequest)
		n.expectAbsent(t, -1, "q-bad")
	})

	t.Run("QuorumAboveMembersIsCapped", func(t *testing.T) {
		// SPEC section 5: on fewer nodes than N, R and W are capped at the
		// member count, so w=3 and r=3 work on one node.
		for _, w := range []string{"1", "2", "3"} {
			p := kvPath(-1, "q-ok") + "?w=" + w
			if r := n.must(t, request{method: http.MethodPut, path: p, body: []byte("w" + w)}); r.Status != http.StatusNoContent {
				t.Errorf("PUT %s on one node: got %s, want 204", p, r)
			}
		}
		for _, q := range []string{"1", "2", "3"} {
			p := kvPath(-1, "q-ok") + "?r=" + q
			if r := n.must(t, request{method: http.MethodGet, path: p}); r.Status != http.StatusOK || string(r.Body) != "w3" {
				t.Errorf("GET %s on one node: got %s, want 200 \"w3\"", p, r)
			}
		}
	})

	t.Run("BadDatabaseIs400Or404", func(t *testing.T) {
		for _, db := range []string{"99", "16", "-1", "abc", "1.5", "0x1"} {
			for _, m := range []string{http.MethodGet, http.MethodPut} {
				p := "/db/" + db + "/kv/x"
				r := n.must(t, request{method: m, path: p, body: []byte("v")})
				expectJSONError(t, m+" "+p, r, http.StatusBadRequest, http.StatusNotFound)
			}
		}
	})

	t.Run("WrongMethodIs405", func(t *testing.T) {
		for _, m := range []string{http.MethodPost, http.MethodPatch} {
			r := n.must(t, request{method: m, path: kvPath(-1, "x"), body: []byte("v")})
			expectJSONError(t, m+" /kv/x", r, http.StatusMethodNotAllowed)
		}
	})

	t.Run("GarbageOnTheSocketDoesNotHurt", func(t *testing.T) {
		for i := range 8 {
			junk := make([]byte, 1+rng.IntN(8192))
			for j := range junk {
				junk[j] = byte(rng.Uint32())
			}
			if i%2 == 0 {
				junk = append(junk, "\r\n\r\n"...)
			}
			testnode.SendAndClose(t, n.Addr(), junk, 300*time.Millisecond)
		}
		// An oversized header and a bogus protocol version.
		testnode.SendAndClose(t, n.Addr(), []byte("GET /kv/x HTTP/1.1\r\nHost: e2e\r\nX-Big: "+strings.Repeat("a", 2<<20)+"\r\n\r\n"), 300*time.Millisecond)
		testnode.SendAndClose(t, n.Addr(), []byte("GET /kv/x HTTP/9.9\r\n\r\n"), 300*time.Millisecond)
	})

	t.Run("HalfWrittenRequestIsNotApplied", func(t *testing.T) {
		testnode.SendAndClose(t, n.Addr(), []byte("PUT /kv/half HTTP/1.1\r\nHost: e2e\r\nContent-Length: 1000\r\n\r\n"+strings.Repeat("h", 500)), 300*time.Millisecond)
		// A truncated chunked body, too.
		testnode.SendAndClose(t, n.Addr(), []byte("PUT /kv/half-chunked HTTP/1.1\r\nHost: e2e\r\nTransfer-Encoding: chunked\r\n\r\n100\r\n"+strings.Repeat("h", 40)), 300*time.Millisecond)
	})

	n.expectHealthy(t)
	// The HTTP layer recovers handler panics into a 500; none may have happened.
	for _, p := range []string{"panic in HTTP handler", "panic:"} {
		if n.LogContains(p) {
			t.Errorf("node output contains %q after the bad input, want no panic", p)
		}
	}
	for k, v := range baseline {
		n.expectValue(t, -1, k, v)
	}
	// By now the server has long seen the closed connections.
	n.expectAbsent(t, -1, "half")
	n.expectAbsent(t, -1, "half-chunked")
}
