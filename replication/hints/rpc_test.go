package hints

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/dynkv/dynkv/replication/internal/rpctest"
	"github.com/dynkv/dynkv/replication/rpc"
	"github.com/dynkv/dynkv/vclock"
)

func TestHintCallStoresAHintNotData(t *testing.T) {
	checkLeaks(t)
	st := openStore(t)
	srv := &rpc.Server{Store: st}
	Register(srv, st)
	p := struct{ addr string }{rpctest.Serve(t, srv)}
	c := rpctest.NewClient(t, rpc.ClientConfig{})
	ctx := ctxTimeout(t)

	in := sampleSet("v1")
	for i := 0; i < 2; i++ { // a retried hint merges into the same one
		if err := Send(ctx, c, p.addr, "owner-3", 2, []byte("k"), in); err != nil {
			t.Fatalf("Hint: %v", err)
		}
	}
	if st.HintStats()["owner-3"].Count != 1 {
		t.Fatalf("hint stats %v, want one hint for owner-3", st.HintStats())
	}
	var got []vclock.Set
	if err := st.ScanHints("owner-3", func(db int, key []byte, s vclock.Set, _ time.Time) error {
		if db != 2 || string(key) != "k" {
			t.Errorf("hint for db %d key %q, want db 2 key k", db, key)
		}
		got = append(got, s)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !got[0].Equal(in) {
		t.Errorf("hints %v, want %v", got, in)
	}
	if _, found, err := c.Get(ctx, p.addr, 2, []byte("k")); err != nil || found {
		t.Errorf("a hint is visible as data: found=%v err=%v", found, err)
	}
}

func TestReplicasHintLocallyForSelf(t *testing.T) {
	st := openStore(t)
	r := Replicas{&rpc.Replicas{Self: "me", Store: st}}
	if err := r.Hint(ctxTimeout(t), "me", "other", 0, []byte("k"), sampleSet("v")); err != nil {
		t.Fatalf("Hint to self: %v", err)
	}
	if st.HintStats()["other"].Count != 1 {
		t.Errorf("local hint not stored: %v", st.HintStats())
	}
	if err := r.Hint(ctxTimeout(t), "ghost", "other", 0, []byte("k"), sampleSet("v")); !errors.Is(err, rpc.ErrUnknownNode) {
		t.Errorf("Hint to an unknown node: %v, want rpc.ErrUnknownNode", err)
	}
}

func TestHintRequestRejectsMalformedFrames(t *testing.T) {
	good := encodeHintRequest(hintRequest{Owner: "n2", DB: 1, Key: []byte("k"), Set: sampleSet("v")})
	cases := map[string][]byte{
		"empty":        {},
		"wrong kind":   append([]byte{rpc.FrameVersion, rpc.KindMergeRequest}, good[2:]...),
		"empty owner":  encodeHintRequest(hintRequest{Owner: "", DB: 1, Key: []byte("k")}),
		"empty key":    encodeHintRequest(hintRequest{Owner: "n2", DB: 1}),
		"trailing":     append(append([]byte(nil), good...), 0),
		"truncated":    good[:len(good)-1],
		"owner at 256": encodeHintRequest(hintRequest{Owner: string(make([]byte, 256)), DB: 1, Key: []byte("k")}),
	}
	for name, b := range cases {
		if _, err := decodeHintRequest(b); !errors.Is(err, rpc.ErrMalformed) {
			t.Errorf("%s: err %v, want rpc.ErrMalformed", name, err)
		}
	}
}

// FuzzDecodeHintRequest: the decoder never panics and what it accepts
// re-encodes to the same bytes (one encoding per value).
func FuzzDecodeHintRequest(f *testing.F) {
	f.Add(encodeHintRequest(hintRequest{Owner: "n2", DB: 1, Key: []byte("k"), Set: sampleSet("v")}))
	f.Add(encodeHintRequest(hintRequest{Owner: "a-long-owner-id", DB: 255, Key: []byte{0}, Set: vclock.Set{}}))
	f.Add([]byte{rpc.FrameVersion, rpc.KindHintRequest})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeHintRequest(b)
		if err != nil {
			if !errors.Is(err, rpc.ErrMalformed) {
				t.Fatalf("error %v does not wrap rpc.ErrMalformed", err)
			}
			return
		}
		if again := encodeHintRequest(r); !bytes.Equal(again, b) {
			t.Fatalf("re-encoding changed the frame:\n in %x\nout %x", b, again)
		}
	})
}
