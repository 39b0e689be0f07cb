package rpc

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/dynkv/dynkv/vclock"
)

// sampleSet returns a set with two concurrent siblings (one a tombstone
// with an expiry), as two replicas writing without seeing each other make.
func sampleContext() vclock.Context {
	return sampleSet("x").Context.Add(vclock.Dot{Actor: "node-c", Counter: 7})
}

func sampleWrite() WriteRequest {
	return WriteRequest{
		DB: 3, Key: []byte("user/42"), Context: sampleContext(), W: 2,
		Sibling: vclock.Sibling{
			Dot: vclock.Dot{Actor: "ignored", Counter: 9}, Value: []byte("hello"),
			ContentType: "application/json", LastModified: 123, Expires: 456,
		},
	}
}

func sameSibling(a, b vclock.Sibling) bool {
	return a.Dot == b.Dot && bytes.Equal(a.Value, b.Value) && a.ContentType == b.ContentType &&
		a.LastModified == b.LastModified && a.Expires == b.Expires && a.Tombstone == b.Tombstone
}

func TestFramesRoundTrip(t *testing.T) {
	set := sampleSet("v1")
	longKey := bytes.Repeat([]byte{0xff}, MaxKeyLen)

	for _, g := range []getRequest{{DB: 0, Key: []byte("k")}, {DB: 255, Key: longKey}} {
		got, err := decodeGetRequest(encodeGetRequest(g))
		if err != nil || got.DB != g.DB || !bytes.Equal(got.Key, g.Key) {
			t.Fatalf("get request %+v: decoded %+v, %v", g, got, err)
		}
	}
	for _, g := range []getResponse{{}, {Found: true, Set: set}, {Found: true}} {
		got, err := decodeGetResponse(encodeGetResponse(g))
		if err != nil || got.Found != g.Found || !got.Set.Equal(g.Set) {
			t.Fatalf("get response %+v: decoded %+v, %v", g, got, err)
		}
	}
	m := mergeRequest{DB: 15, Key: []byte("k/ü"), Set: set}
	if got, err := decodeMergeRequest(encodeMergeRequest(m)); err != nil || got.DB != m.DB ||
		!bytes.Equal(got.Key, m.Key) || !got.Set.Equal(m.Set) {
		t.Fatalf("merge request: decoded %+v, %v", got, err)
	}
	if got, err := decodeCoverRequest(encodeCoverRequest(m)); err != nil || got.DB != m.DB ||
		!bytes.Equal(got.Key, m.Key) || !got.Set.Equal(m.Set) {
		t.Fatalf("merge-covering request: decoded %+v, %v", got, err)
	}
	for _, r := range []coverResult{{Covered: true}, {Held: set.Context}, {}} {
		if got, err := decodeCoverResult(encodeCoverResult(r)); err != nil || got.Covered != r.Covered || !got.Held.Equal(r.Held) {
			t.Fatalf("merge-covering result %+v: decoded %+v, %v", r, got, err)
		}
	}
	if err := DecodeAck(ackFrame); err != nil {
		t.Fatalf("ack: %v", err)
	}

	items := []Item{{DB: 1, Key: []byte("a"), Set: set}, {DB: 2, Key: longKey, Set: sampleSet("v2")}, {DB: 0, Key: []byte("e")}}
	b, err := encodeMergeBatchRequest(items)
	if err != nil {
		t.Fatal(err)
	}
	gotItems, err := decodeMergeBatchRequest(b)
	if err != nil || len(gotItems) != len(items) {
		t.Fatalf("merge batch: decoded %d items, %v", len(gotItems), err)
	}
	for i := range items {
		if gotItems[i].DB != items[i].DB || !bytes.Equal(gotItems[i].Key, items[i].Key) || !gotItems[i].Set.Equal(items[i].Set) {
			t.Fatalf("merge batch item %d: got %+v, want %+v", i, gotItems[i], items[i])
		}
	}

	for _, w := range []WriteRequest{sampleWrite(), {DB: 0, Key: []byte("k"), Sibling: vclock.Sibling{Tombstone: true}},
		{Key: []byte("blind"), Blind: true, W: 2}, {Key: []byte("n"), Counter: true, Delta: -1 << 63, W: 1},
		{Key: []byte("n"), Counter: true, Delta: 7}} {
		got, err := decodeCoordinateRequest(encodeCoordinateRequest(w))
		if err != nil || got.DB != w.DB || !bytes.Equal(got.Key, w.Key) || !got.Context.Equal(w.Context) ||
			!sameSibling(got.Sibling, w.Sibling) || got.W != w.W || got.Blind != w.Blind ||
			got.Counter != w.Counter || got.Delta != w.Delta {
			t.Fatalf("coordinate request %+v: decoded %+v, %v", w, got, err)
		}
	}
	for _, res := range []WriteResult{{Context: sampleContext()}, {Value: -42}, {Value: 1<<63 - 1}} {
		if got, err := decodeCoordinateResult(encodeCoordinateResult(res)); err != nil || !got.Context.Equal(res.Context) || got.Value != res.Value {
			t.Fatalf("coordinate result %+v: decoded %+v, %v", res, got, err)
		}
	}

	for _, f := range []errorFrame{
		{Code: CodeQuorum, Message: "quorum not reached", Needed: 2, Acked: 1, Index: -1},
		{Code: CodeDiskFull, Message: "disk full", Index: 4095},
		{Code: CodeInternal, Index: -1},
	} {
		got, err := decodeError(encodeError(f))
		if err != nil || got != f {
			t.Fatalf("error frame %+v: decoded %+v, %v", f, got, err)
		}
	}
}

func TestErrorFrameCutsLongMessages(t *testing.T) {
	f := errorFrame{Code: CodeInternal, Message: strings.Repeat("x", maxMessageLen+10), Index: -1}
	got, err := decodeError(encodeError(f))
	if err != nil || len(got.Message) != maxMessageLen {
		t.Fatalf("decoded message of %d bytes, %v; want %d bytes", len(got.Message), err, maxMessageLen)
	}
}

func TestMergeBatchEncoderRefusesOversizedBatches(t *testing.T) {
	items := make([]Item, MaxBatchItems+1)
	for i := range items {
		items[i] = Item{Key: []byte("k")}
	}
	if _, err := encodeMergeBatchRequest(items); err == nil {
		t.Fatalf("a batch of %d items encoded; want an error", len(items))
	}
	big := vclock.Set{}
	big, _ = big.Update("a", vclock.Context{}, vclock.Sibling{Value: make([]byte, 40<<20)})
	if _, err := encodeMergeBatchRequest([]Item{{Key: []byte("a"), Set: big}, {Key: []byte("b"), Set: big}}); err == nil {
		t.Fatal("an 80 MiB batch encoded; want an error")
	}
}

func TestDecodersRejectMalformedFrames(t *testing.T) {
	get := encodeGetRequest(getRequest{DB: 1, Key: []byte("k")})
	batch, _ := encodeMergeBatchRequest([]Item{{DB: 1, Key: []byte("k"), Set: sampleSet("v")}})
	coord := encodeCoordinateRequest(sampleWrite())
	cases := []struct {
		name   string
		decode func([]byte) error
		in     []byte
	}{
		{"empty get request", decodeGet, nil},
		{"get request of another version", decodeGet, append([]byte{2}, get[1:]...)},
		{"merge request sent to get", decodeGet, encodeMergeRequest(mergeRequest{DB: 1, Key: []byte("k")})},
		{"merge request sent to merge-covering", func(b []byte) error { _, err := decodeCoverRequest(b); return err },
			encodeMergeRequest(mergeRequest{DB: 1, Key: []byte("k")})},
		{"merge-covering request sent to merge", func(b []byte) error { _, err := decodeMergeRequest(b); return err },
			encodeCoverRequest(mergeRequest{DB: 1, Key: []byte("k")})},
		{"covered flag 2", func(b []byte) error { _, err := decodeCoverResult(b); return err }, []byte{FrameVersion, KindCoverResult, 2}},
		{"covered result with a context", func(b []byte) error { _, err := decodeCoverResult(b); return err }, []byte{FrameVersion, KindCoverResult, 1, 0}},
		{"refused result without its context", func(b []byte) error { _, err := decodeCoverResult(b); return err }, []byte{FrameVersion, KindCoverResult, 0}},
		{"get request with trailing byte", decodeGet, append(append([]byte{}, get...), 0)},
		{"get request truncated", decodeGet, get[:len(get)-1]},
		{"empty key", decodeGet, []byte{FrameVersion, KindGetRequest, 1, 0}},
		{"key too long", decodeGet, append([]byte{FrameVersion, KindGetRequest, 1, 0x81, 0x08}, make([]byte, 1025)...)},
		{"database above 255", decodeGet, []byte{FrameVersion, KindGetRequest, 0x80, 0x02, 1, 'k'}},
		{"non-minimal varint", decodeGet, []byte{FrameVersion, KindGetRequest, 0x81, 0x00, 1, 'k'}},
		{"found flag 2", func(b []byte) error { _, err := decodeGetResponse(b); return err }, []byte{FrameVersion, KindGetResponse, 2}},
		{"batch count beyond the bytes", func(b []byte) error { _, err := decodeMergeBatchRequest(b); return err },
			[]byte{FrameVersion, KindMergeBatchRequest, 0xff, 0xff, 0x03}},
		{"batch count above the limit", func(b []byte) error { _, err := decodeMergeBatchRequest(b); return err },
			append([]byte{FrameVersion, KindMergeBatchRequest, 0x81, 0x20}, make([]byte, 4*4097)...)},
		{"batch with a corrupt set", func(b []byte) error { _, err := decodeMergeBatchRequest(b); return err },
			append(append([]byte{}, batch[:len(batch)-1]...), 0xee)},
		{"coordinate with unknown sibling flags", func(b []byte) error { _, err := decodeCoordinateRequest(b); return err },
			flipSiblingFlags(coord)},
		{"coordinate with w above 255", func(b []byte) error { _, err := decodeCoordinateRequest(b); return err },
			append(append([]byte{}, coord[:len(coord)-2]...), 0x80, 0x02, 0)},
		{"coordinate with unknown flags", func(b []byte) error { _, err := decodeCoordinateRequest(b); return err },
			append(append([]byte{}, coord[:len(coord)-1]...), 4)},
		{"counter coordinate without its delta", func(b []byte) error { _, err := decodeCoordinateRequest(b); return err },
			append(append([]byte{}, coord[:len(coord)-1]...), 2)},
		{"coordinate result with an explicit zero value", func(b []byte) error { _, err := decodeCoordinateResult(b); return err },
			append(encodeCoordinateResult(WriteResult{}), 0)},
		{"coordinate with a byte after the flags", func(b []byte) error { _, err := decodeCoordinateRequest(b); return err },
			append(append([]byte{}, coord...), 0)},
		{"error with code 0", func(b []byte) error { _, err := decodeError(b); return err }, []byte{FrameVersion, KindError, 0, 0, 0, 0, 0}},
		{"error with unknown code", func(b []byte) error { _, err := decodeError(b); return err }, []byte{FrameVersion, KindError, 99, 0, 0, 0, 0}},
		{"ack with a trailing byte", DecodeAck, []byte{FrameVersion, KindAck, 0}},
	}
	for _, c := range cases {
		err := c.decode(c.in)
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: decode(%x) = %v, want an error wrapping ErrMalformed", c.name, c.in, err)
		}
	}
}

func decodeGet(b []byte) error { _, err := decodeGetRequest(b); return err }

// flipSiblingFlags sets an unknown flag bit in the sibling of an encoded
// sampleWrite, found by re-encoding the prefix.
func flipSiblingFlags(frame []byte) []byte {
	w := sampleWrite()
	ctx := w.Context.Encode()
	at := 2 + uvarintLen(uint64(w.DB)) + bytesLen(len(w.Key)) + bytesLen(len(ctx))
	out := append([]byte{}, frame...)
	out[at] |= 0x80
	return out
}

// Fuzz targets: every Decoder must not panic, and whatever it accepts must
// re-encode to exactly its input (one accepted encoding per value).

func FuzzDecodeGetRequest(f *testing.F) {
	f.Add(encodeGetRequest(getRequest{DB: 1, Key: []byte("key")}))
	f.Add([]byte{FrameVersion, KindGetRequest, 0x80, 0x02, 1, 'k'})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeGetRequest(b)
		if err == nil && !bytes.Equal(encodeGetRequest(r), b) {
			t.Fatalf("decoded %+v re-encodes differently", r)
		}
	})
}

func FuzzDecodeGetResponse(f *testing.F) {
	f.Add(encodeGetResponse(getResponse{}))
	f.Add(encodeGetResponse(getResponse{Found: true, Set: sampleSet("v")}))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeGetResponse(b)
		if err == nil && !bytes.Equal(encodeGetResponse(r), b) {
			t.Fatalf("decoded %+v re-encodes differently", r)
		}
	})
}

func FuzzDecodeMergeRequest(f *testing.F) {
	f.Add(encodeMergeRequest(mergeRequest{DB: 2, Key: []byte("k"), Set: sampleSet("v")}))
	f.Add(encodeMergeRequest(mergeRequest{DB: 0, Key: []byte("k")}))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeMergeRequest(b)
		if err == nil && !bytes.Equal(encodeMergeRequest(r), b) {
			t.Fatalf("decoded %+v re-encodes differently", r)
		}
	})
}

func FuzzDecodeMergeBatchRequest(f *testing.F) {
	b, _ := encodeMergeBatchRequest([]Item{{DB: 1, Key: []byte("a"), Set: sampleSet("v")}, {DB: 2, Key: []byte("b")}})
	f.Add(b)
	b, _ = encodeMergeBatchRequest(nil)
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		items, err := decodeMergeBatchRequest(b)
		if err != nil {
			return
		}
		again, err := encodeMergeBatchRequest(items)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("decoded %d items re-encode differently (%v)", len(items), err)
		}
	})
}

func FuzzDecodeCoordinateRequest(f *testing.F) {
	f.Add(encodeCoordinateRequest(sampleWrite()))
	f.Add(encodeCoordinateRequest(WriteRequest{Key: []byte("k"), Sibling: vclock.Sibling{Tombstone: true}}))
	f.Add(encodeCoordinateRequest(WriteRequest{Key: []byte("k"), Blind: true}))
	f.Add(encodeCoordinateRequest(WriteRequest{Key: []byte("k"), Counter: true, Delta: -3}))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeCoordinateRequest(b)
		if err != nil {
			return
		}
		again := encodeCoordinateRequest(r)
		// A frame from before the flags byte re-encodes with one: the
		// flag it gets says what the old frame meant.
		if len(again) == len(b)+1 && bytes.Equal(again[:len(b)], b) {
			if r.Blind != r.Context.IsZero() {
				t.Fatalf("a frame without flags decoded as blind=%v with context %s", r.Blind, r.Context)
			}
			return
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("decoded %+v re-encodes differently", r)
		}
	})
}

func FuzzDecodeCoordinateResult(f *testing.F) {
	f.Add(encodeCoordinateResult(WriteResult{Context: sampleContext()}))
	f.Add(encodeCoordinateResult(WriteResult{}))
	f.Add(encodeCoordinateResult(WriteResult{Value: 99}))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeCoordinateResult(b)
		if err == nil && !bytes.Equal(encodeCoordinateResult(r), b) {
			t.Fatalf("decoded %+v re-encodes differently", r)
		}
	})
}

func FuzzDecodeError(f *testing.F) {
	f.Add(encodeError(errorFrame{Code: CodeQuorum, Message: "quorum", Needed: 3, Acked: 1, Index: -1}))
	f.Add(encodeError(errorFrame{Code: CodeBadKey, Message: "bad key", Index: 17}))
	f.Add(ackFrame)
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeError(b)
		if err == nil && !bytes.Equal(encodeError(e), b) {
			t.Fatalf("decoded %+v re-encodes differently", e)
		}
		_ = DecodeAck(b)
	})
}
