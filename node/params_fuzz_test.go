package node

import (
	"encoding/base64"
	"strings"
	"testing"
)

// FuzzGossipKeys: --gossip-key (a comma-separated list of base64 AES keys)
// either fails with a message or yields one key per list item, each of an
// AES key's length and decoding from that item.
func FuzzGossipKeys(f *testing.F) {
	k16 := base64.StdEncoding.EncodeToString(make([]byte, 16))
	k32 := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	for _, s := range []string{k16, k32 + "," + k16, k16 + ", " + k32, k16 + ",", "not base64", base64.StdEncoding.EncodeToString([]byte("short")), ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		keys, err := Config{GossipKey: s}.GossipKeys()
		if err != nil {
			if !strings.HasPrefix(err.Error(), "--gossip-key: ") {
				t.Fatalf("error %q does not name the flag", err)
			}
			return
		}
		if s == "" {
			if keys != nil {
				t.Fatalf("empty --gossip-key gave %d keys", len(keys))
			}
			return
		}
		items := strings.Split(s, ",")
		if len(keys) != len(items) {
			t.Fatalf("%d list items gave %d keys", len(items), len(keys))
		}
		for i, k := range keys {
			if l := len(k); l != 16 && l != 24 && l != 32 {
				t.Fatalf("key %d is %d bytes, not an AES key", i+1, l)
			}
			want, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(items[i]))
			if string(k) != string(want) {
				t.Fatalf("key %d does not decode from %q", i+1, items[i])
			}
		}
	})
}
