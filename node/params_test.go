package node

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/dynkv/dynkv/vclock"
)

func TestSplitKVPath(t *testing.T) {
	cases := []struct {
		in   string
		want kvPath
		ok   bool
	}{
		{"/kv/a", kvPath{rawKey: "a"}, true},
		{"/kv/", kvPath{}, true},
		{"/kv/a/b%2F", kvPath{rawKey: "a/b%2F"}, true},
		{"/db/3/kv/a", kvPath{db: "3", hasDB: true, rawKey: "a"}, true},
		{"/db/3/kv/", kvPath{db: "3", hasDB: true}, true},
		{"/db//kv/a", kvPath{hasDB: true, rawKey: "a"}, true},
		{"/db/3/kv", kvPath{}, false},
		{"/db/3", kvPath{}, false},
		{"/kv", kvPath{}, false},
		{"/other/a", kvPath{}, false},
	}
	for _, c := range cases {
		got, ok := splitKVPath(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("splitKVPath(%q) = %+v, %v; want %+v, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestParseKeyDecodesOnceAndBoundsLength(t *testing.T) {
	for raw, want := range map[string]string{
		"a":         "a",
		"a%2Fb":     "a/b",
		"%00":       "\x00",
		"%252F":     "%2F",
		"a+b":       "a+b", // path encoding: + is a plus, not a space
		"%E2%9C%93": "\u2713",
	} {
		got, err := parseKey(raw)
		if err != nil || string(got) != want {
			t.Errorf("parseKey(%q) = %q, %v; want %q", raw, got, err, want)
		}
	}
	for _, raw := range []string{"", "%zz", "%", "a%2", strings.Repeat("a", 1025), strings.Repeat("%41", 1025)} {
		if _, err := parseKey(raw); err == nil {
			t.Errorf("parseKey(%.20q...) succeeded, want an error", raw)
		}
	}
	if k, err := parseKey(strings.Repeat("%41", 1024)); err != nil || len(k) != 1024 {
		t.Errorf("1024 escaped bytes: %d bytes, %v; want 1024, nil", len(k), err)
	}
}

func TestParseTTL(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"30": 30 * time.Second, "30s": 30 * time.Second, "1h30m": 90 * time.Minute, "1ns": 1, "876000h": maxTTL,
	} {
		got, err := parseTTL(in)
		if err != nil || got != want {
			t.Errorf("parseTTL(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "0s", "-1", "-1s", "x", "1.5", "876001h", "3153600001", "+3", " 3"} {
		if d, err := parseTTL(in); err == nil {
			t.Errorf("parseTTL(%q) = %v, want an error", in, d)
		}
	}
}

func TestParseQuorumCapsToMembersAndReplicas(t *testing.T) {
	cases := []struct {
		in         string
		n, members int
		want       int
	}{
		{"one", 3, 5, 1},
		{"quorum", 3, 5, 2},
		{"quorum", 5, 5, 3},
		{"all", 3, 5, 3},
		{"all", 3, 1, 1},
		{"2", 3, 1, 1},
		{"2", 3, 3, 2},
		{"9", 3, 5, 3},
	}
	for _, c := range cases {
		got, err := parseQuorum("w", c.in, c.n, c.members)
		if err != nil || got != c.want {
			t.Errorf("parseQuorum(%q, n=%d, members=%d) = %d, %v; want %d", c.in, c.n, c.members, got, err, c.want)
		}
	}
	for _, in := range []string{"", "0", "-1", "+1", "ONE", "1.0", "two"} {
		if _, err := parseQuorum("w", in, 3, 3); err == nil {
			t.Errorf("parseQuorum(%q) succeeded, want an error", in)
		}
	}
}

func TestContextRoundTripsThroughTheHeader(t *testing.T) {
	c := vclock.Context{}.Add(vclock.Dot{Actor: "n1", Counter: 1}).Add(vclock.Dot{Actor: "n2", Counter: 3})
	got, err := decodeContext(encodeContext(c))
	if err != nil || !got.Equal(c) {
		t.Fatalf("decodeContext(encodeContext(%v)) = %v, %v", c, got, err)
	}
	if z, err := decodeContext(""); err != nil || !z.IsZero() {
		t.Fatalf("decodeContext(\"\") = %v, %v; want the zero context", z, err)
	}
}

// FuzzParseKey checks that any escaped path either is rejected or yields a
// key of 1..1024 bytes that the canonical escaping maps back to.
func FuzzParseKey(f *testing.F) {
	for _, s := range []string{"a", "a%2Fb", "%00", "%zz", "%", "", "%E2%9C%93", strings.Repeat("%41", 1024), "a/b/../c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		key, err := parseKey(raw)
		if err != nil {
			return
		}
		if len(key) < 1 || len(key) > MaxKeyBytes {
			t.Fatalf("parseKey(%q) accepted a %d-byte key", raw, len(key))
		}
		again, err := parseKey(url.PathEscape(string(key)))
		if err != nil || !bytes.Equal(again, key) {
			t.Fatalf("key %q does not survive escaping: %q, %v", key, again, err)
		}
	})
}

// FuzzParseContext checks that no X-Context header panics the node and that
// an accepted one re-encodes to a header naming the same context.
func FuzzParseContext(f *testing.F) {
	c := vclock.Context{}.Add(vclock.Dot{Actor: "n1", Counter: 1}).Add(vclock.Dot{Actor: "n2", Counter: 5})
	for _, s := range []string{"", encodeContext(c), encodeContext(vclock.Context{}.Add(vclock.Dot{Actor: "a", Counter: 1})), "!!", "AA", "AQ", "AQA=", encodeContext(c) + "=="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		ctx, err := decodeContext(h)
		if err != nil {
			return
		}
		again, err := decodeContext(encodeContext(ctx))
		if err != nil || !again.Equal(ctx) {
			t.Fatalf("context %v from %q does not round-trip: %v, %v", ctx, h, again, err)
		}
	})
}

// FuzzParseTTL checks that an accepted ttl is positive and bounded, so that
// now+ttl cannot overflow.
func FuzzParseTTL(f *testing.F) {
	for _, s := range []string{"30", "30s", "1h", "-1", "0", "9223372036854775807", "876000h", "1e3s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseTTL(s)
		if err == nil && (d <= 0 || d > maxTTL) {
			t.Fatalf("parseTTL(%q) = %v, outside (0, %v]", s, d, maxTTL)
		}
	})
}

// FuzzHTTPKey drives the whole handler stack with arbitrary request targets
// and X-Context headers: a request is answered with a JSON error or
// succeeds, never panics or 500s, and a stored key reads back.
func FuzzHTTPKey(f *testing.F) {
	for _, s := range []string{"/kv/a", "/kv/a%2Fb", "/kv/%00", "/db/3/kv/x", "/db/99/kv/x", "/kv/", "/kv/a?ttl=5s&w=all", "/kv/a?w=0", "/db/x/kv/k", "/kv/\xff"} {
		f.Add(s, "")
	}
	f.Add("/kv/a", "AQ")
	cfg := testConfig(f)
	cfg.Fsync = "100ms" // durability is not what this explores
	n, err := New(cfg, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { n.Shutdown(f.Context()) })
	// The data handlers go through the coordinator, which Start brings up.
	if err := n.Start(); err != nil {
		f.Fatal(err)
	}
	h := n.Handler()

	f.Fuzz(func(t *testing.T, target, xcontext string) {
		u, err := url.ParseRequestURI(target)
		if err != nil || !strings.HasPrefix(target, "/") {
			return // Go's server answers these itself (see doc.go)
		}
		put := httptest.NewRequest(http.MethodPut, "/", strings.NewReader("v"))
		put.URL = u
		put.RequestURI = target
		if xcontext != "" {
			put.Header.Set(ContextHeader, xcontext)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, put)
		switch w.Code {
		case http.StatusNoContent:
		case http.StatusBadRequest, http.StatusNotFound, http.StatusMethodNotAllowed:
			if ct := w.Header().Get("Content-Type"); ct != "application/json" {
				t.Fatalf("PUT %q: %d with Content-Type %q, want JSON", target, w.Code, ct)
			}
			return
		default:
			t.Fatalf("PUT %q X-Context %q: unexpected %d %q", target, xcontext, w.Code, w.Body)
		}
		get := httptest.NewRequest(http.MethodGet, "/", nil)
		get.URL = u
		w = httptest.NewRecorder()
		h.ServeHTTP(w, get)
		expired := w.Code == http.StatusNotFound && u.Query().Has("ttl") // a ttl of 1ns is legal
		if w.Code != http.StatusOK && w.Code != http.StatusMultipleChoices && !expired {
			t.Fatalf("GET %q after a successful PUT = %d %q", target, w.Code, w.Body)
		}
	})
}
