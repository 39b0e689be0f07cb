package httpapi

import (
	"bytes"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/dynkv/dynkv/store"
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
		got, err := ParseKey(raw)
		if err != nil || string(got) != want {
			t.Errorf("ParseKey(%q) = %q, %v; want %q", raw, got, err, want)
		}
	}
	for _, raw := range []string{"", "%zz", "%", "a%2", strings.Repeat("a", 1025), strings.Repeat("%41", 1025)} {
		if _, err := ParseKey(raw); err == nil {
			t.Errorf("ParseKey(%.20q...) succeeded, want an error", raw)
		}
	}
	if k, err := ParseKey(strings.Repeat("%41", 1024)); err != nil || len(k) != 1024 {
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
	got, err := DecodeContext(EncodeContext(c))
	if err != nil || !got.Equal(c) {
		t.Fatalf("DecodeContext(EncodeContext(%v)) = %v, %v", c, got, err)
	}
	if z, err := DecodeContext(""); err != nil || !z.IsZero() {
		t.Fatalf("DecodeContext(\"\") = %v, %v; want the zero context", z, err)
	}
}

// FuzzParseKey checks that any escaped path either is rejected or yields a
// key of 1..1024 bytes that the canonical escaping maps back to.
func FuzzParseKey(f *testing.F) {
	for _, s := range []string{"a", "a%2Fb", "%00", "%zz", "%", "", "%E2%9C%93", strings.Repeat("%41", 1024), "a/b/../c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		key, err := ParseKey(raw)
		if err != nil {
			return
		}
		if len(key) < 1 || len(key) > store.MaxKeyLen {
			t.Fatalf("ParseKey(%q) accepted a %d-byte key", raw, len(key))
		}
		again, err := ParseKey(url.PathEscape(string(key)))
		if err != nil || !bytes.Equal(again, key) {
			t.Fatalf("key %q does not survive escaping: %q, %v", key, again, err)
		}
	})
}

// FuzzParseContext checks that no X-Context header panics the node and that
// an accepted one re-encodes to a header naming the same context.
func FuzzParseContext(f *testing.F) {
	c := vclock.Context{}.Add(vclock.Dot{Actor: "n1", Counter: 1}).Add(vclock.Dot{Actor: "n2", Counter: 5})
	for _, s := range []string{"", EncodeContext(c), EncodeContext(vclock.Context{}.Add(vclock.Dot{Actor: "a", Counter: 1})), "!!", "AA", "AQ", "AQA=", EncodeContext(c) + "=="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		ctx, err := DecodeContext(h)
		if err != nil {
			return
		}
		again, err := DecodeContext(EncodeContext(ctx))
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
