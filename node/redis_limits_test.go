package node

import (
	"bytes"
	"strings"
	"testing"
)

func TestRESPInlineQuotingEndToEnd(t *testing.T) {
	tn := startRESPNode(t, nil)
	r := dialRaw(t, tn)
	r.Send("SET \"a b\" \"c\\x41d\"\r\nGET \"a b\"\r\nGET 'a b'\r\nSET k 'x\"\r\nPING\r\n")
	for _, want := range []string{"OK", "cAd", "cAd"} {
		if got := r.Reply(); got != want {
			t.Fatalf("reply %q, want %q", got, want)
		}
	}
	if got := r.Line(); got != "-ERR Protocol error: unbalanced quotes in request" {
		t.Fatalf("unbalanced quotes = %q", got)
	}
	if !bytes.Equal([]byte(tn.get(keyPath("a b"), nil).body), []byte("cAd")) {
		t.Fatal("the inline SET did not store cAd under the key \"a b\" (HTTP)")
	}
}

func TestRESPMaxBufferBytesMustHoldTheLargestCommand(t *testing.T) {
	cfg := DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("the default config: %v", err)
	}
	cfg.MaxValueBytes = 64 << 20 // the largest command is 257 MiB
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "--resp-max-buffer-bytes") || !strings.Contains(err.Error(), "--max-value-bytes") {
		t.Fatalf("a budget below the largest command: %v, want an error naming both flags", err)
	}
	cfg.RESPMaxBufferBytes = 4*cfg.MaxValueBytes + 1<<20 // 4 × --max-value-bytes + 1 MiB, as the docs say
	if err := cfg.Validate(); err != nil {
		t.Fatalf("a budget of exactly the largest command: %v", err)
	}
}
