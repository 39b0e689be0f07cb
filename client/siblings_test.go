package client

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"
)

func TestDecodeSiblingsRejectsMalformedBodies(t *testing.T) {
	for _, body := range []string{``, `{}`, `{"siblings":[]}`, `{"siblings":[{"value":"!!"}]}`, `{"siblings":[{"value":"","last_modified":"yesterday"}]}`, `[1]`} {
		if _, err := decodeSiblings([]byte(body)); err == nil {
			t.Errorf("decodeSiblings(%q) succeeded, want an error", body)
		}
	}
}

func TestDecodeSiblingsAcceptsUnpaddedBase64(t *testing.T) {
	s, err := decodeSiblings([]byte(`{"siblings":[{"value":"YQ","content_type":"t"},{"value":"-_8"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if string(s[0].Value) != "a" || s[0].ContentType != "t" || !bytes.Equal(s[1].Value, []byte{0xfb, 0xff}) {
		t.Fatalf("decoded %+v", s)
	}
}

// FuzzDecodeSiblings: the 300 decoder never panics, and what it accepts
// survives a round trip through the wire format.
func FuzzDecodeSiblings(f *testing.F) {
	f.Add([]byte(`{"siblings":[{"value":"YQ==","content_type":"text/plain","last_modified":"2026-11-25T11:00:00Z"}]}`))
	f.Add([]byte(`{"siblings":[{"value":""},{"value":"AAEC","last_modified":"2026-11-25T11:00:00.123456789+01:00"}]}`))
	f.Add([]byte(`{"siblings":null}`))
	f.Add([]byte(`{"siblings":[{"value":1}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		sibs, err := decodeSiblings(body)
		if err != nil {
			return
		}
		var doc struct {
			Siblings []wireSibling `json:"siblings"`
		}
		for _, s := range sibs {
			w := wireSibling{Value: base64.StdEncoding.EncodeToString(s.Value), ContentType: s.ContentType}
			if !s.LastModified.IsZero() {
				w.LastModified = s.LastModified.Format(time.RFC3339Nano)
			}
			doc.Siblings = append(doc.Siblings, w)
		}
		again, err := json.Marshal(doc)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		sibs2, err := decodeSiblings(again)
		if err != nil {
			t.Fatalf("re-decode of %s: %v", again, err)
		}
		if len(sibs2) != len(sibs) {
			t.Fatalf("round trip changed the sibling count: %d -> %d", len(sibs), len(sibs2))
		}
		for i := range sibs {
			a, b := sibs[i], sibs2[i]
			if !bytes.Equal(a.Value, b.Value) || a.ContentType != b.ContentType || !a.LastModified.Equal(b.LastModified) {
				t.Fatalf("sibling %d: %+v -> %+v", i, a, b)
			}
		}
	})
}
