package antientropy

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/dynkv/dynkv/replication/rpc"
)

func sampleTree() *TreeSummary {
	t := &TreeSummary{Ready: true, Root: 0xdeadbeef}
	for i := range t.Inner {
		t.Inner[i] = uint64(i) * 0x9E3779B97F4A7C15
	}
	for i := range t.Leaves {
		t.Leaves[i] = uint64(i) << 7
	}
	return t
}

func TestAAEFramesRoundTrip(t *testing.T) {
	if p, err := decodeAAETreeRequest(encodeAAETreeRequest(255)); err != nil || p != 255 {
		t.Fatalf("tree request: %d, %v", p, err)
	}
	for _, in := range []*TreeSummary{{}, sampleTree()} {
		out, err := decodeAAETreeResponse(encodeAAETreeResponse(in))
		if err != nil || !reflect.DeepEqual(out, in) {
			t.Fatalf("tree response: %v, equal %v", err, reflect.DeepEqual(out, in))
		}
	}
	req := aaeKeysRequest{Partition: 3, Buckets: []int{0, 5, 1023}}
	if got, err := decodeAAEKeysRequest(encodeAAEKeysRequest(req)); err != nil || !reflect.DeepEqual(got, req) {
		t.Fatalf("keys request: %+v, %v", got, err)
	}
	keys := []KeyHash{{0, []byte("a"), 1}, {255, bytes.Repeat([]byte("k"), rpc.MaxKeyLen), ^uint64(0)}}
	b, err := encodeAAEKeysResponse(keys)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := decodeAAEKeysResponse(b); err != nil || !reflect.DeepEqual(got, keys) {
		t.Fatalf("keys response: %v", err)
	}
}

func TestAAERootsFramesRoundTrip(t *testing.T) {
	if err := decodeAAERootsRequest(encodeAAERootsRequest()); err != nil {
		t.Fatalf("roots request: %v", err)
	}
	for _, in := range []TreeRoots{{}, {Ready: true, Roots: []uint64{}}, {Ready: true, Roots: []uint64{0, 1, ^uint64(0), 0x9E3779B97F4A7C15}}} {
		b := encodeAAERootsResponse(in)
		out, err := decodeAAERootsResponse(b)
		if err != nil || !reflect.DeepEqual(out, in) {
			t.Fatalf("roots response %+v: decoded %+v, %v", in, out, err)
		}
	}
	big := TreeRoots{Ready: true, Roots: make([]uint64, 256)}
	if b := encodeAAERootsResponse(big); len(b) != 3+2+8*256 {
		t.Fatalf("roots of 256 partitions take %d bytes on the wire, want %d", len(b), 3+2+8*256)
	}
}

func TestAAERootsDecodersRejectBadFrames(t *testing.T) {
	cases := map[string]func() error{
		"request with trailing bytes": func() error {
			return decodeAAERootsRequest([]byte{rpc.FrameVersion, rpc.KindAAERootsRequest, 0})
		},
		"request of another kind": func() error {
			return decodeAAERootsRequest([]byte{rpc.FrameVersion, rpc.KindAAETreeRequest})
		},
		"bad ready flag": func() error {
			_, err := decodeAAERootsResponse([]byte{rpc.FrameVersion, rpc.KindAAERootsResponse, 2})
			return err
		},
		"not ready with roots": func() error {
			_, err := decodeAAERootsResponse([]byte{rpc.FrameVersion, rpc.KindAAERootsResponse, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0})
			return err
		},
		"count beyond the frame": func() error {
			_, err := decodeAAERootsResponse([]byte{rpc.FrameVersion, rpc.KindAAERootsResponse, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0})
			return err
		},
		"short root": func() error {
			b := encodeAAERootsResponse(TreeRoots{Ready: true, Roots: []uint64{1, 2}})
			_, err := decodeAAERootsResponse(b[:len(b)-1])
			return err
		},
		"missing count": func() error {
			_, err := decodeAAERootsResponse([]byte{rpc.FrameVersion, rpc.KindAAERootsResponse, 1})
			return err
		},
	}
	for name, f := range cases {
		if err := f(); !errors.Is(err, rpc.ErrMalformed) {
			t.Errorf("%s: err %v, want rpc.ErrMalformed", name, err)
		}
	}
}

func TestAAEDecodersRejectBadFrames(t *testing.T) {
	cases := map[string]func() error{
		"bucket out of range": func() error {
			_, err := decodeAAEKeysRequest([]byte{rpc.FrameVersion, rpc.KindAAEKeysRequest, 0, 1, 0x80, 0x08})
			return err
		},
		"buckets not increasing": func() error {
			_, err := decodeAAEKeysRequest(encodeAAEKeysRequest(aaeKeysRequest{Buckets: []int{5, 5}}))
			return err
		},
		"short tree": func() error {
			b := encodeAAETreeResponse(sampleTree())
			_, err := decodeAAETreeResponse(b[:len(b)-1])
			return err
		},
		"bad ready flag": func() error {
			_, err := decodeAAETreeResponse([]byte{rpc.FrameVersion, rpc.KindAAETreeResponse, 2})
			return err
		},
		"key count beyond the frame": func() error {
			_, err := decodeAAEKeysResponse([]byte{rpc.FrameVersion, rpc.KindAAEKeysResponse, 100, 0, 1, 'k'})
			return err
		},
		"wrong kind": func() error {
			_, err := decodeAAETreeRequest([]byte{rpc.FrameVersion, rpc.KindGetRequest, 0})
			return err
		},
	}
	for name, f := range cases {
		if err := f(); !errors.Is(err, rpc.ErrMalformed) {
			t.Errorf("%s: err %v, want rpc.ErrMalformed", name, err)
		}
	}
}

func FuzzDecodeAAETreeRequest(f *testing.F) {
	f.Add(encodeAAETreeRequest(0))
	f.Add(encodeAAETreeRequest(1 << 19))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := decodeAAETreeRequest(b)
		if err == nil && !bytes.Equal(encodeAAETreeRequest(p), b) {
			t.Fatalf("decoded %d re-encodes differently", p)
		}
	})
}

func FuzzDecodeAAETreeResponse(f *testing.F) {
	f.Add(encodeAAETreeResponse(&TreeSummary{}))
	f.Add(encodeAAETreeResponse(sampleTree()))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decodeAAETreeResponse(b)
		if err == nil && !bytes.Equal(encodeAAETreeResponse(s), b) {
			t.Fatal("decoded tree re-encodes differently")
		}
	})
}

func FuzzDecodeAAEKeysRequest(f *testing.F) {
	f.Add(encodeAAEKeysRequest(aaeKeysRequest{Partition: 7, Buckets: []int{1, 2, 1000}}))
	f.Add(encodeAAEKeysRequest(aaeKeysRequest{}))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeAAEKeysRequest(b)
		if err == nil && !bytes.Equal(encodeAAEKeysRequest(r), b) {
			t.Fatalf("decoded %+v re-encodes differently", r)
		}
	})
}

func FuzzDecodeAAEKeysResponse(f *testing.F) {
	b, _ := encodeAAEKeysResponse([]KeyHash{{1, []byte("key"), 42}, {0, []byte("x"), 0}})
	f.Add(b)
	b, _ = encodeAAEKeysResponse(nil)
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		keys, err := decodeAAEKeysResponse(b)
		if err != nil {
			return
		}
		again, err := encodeAAEKeysResponse(keys)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("decoded %d keys re-encode differently (%v)", len(keys), err)
		}
	})
}

func FuzzDecodeAAERootsRequest(f *testing.F) {
	f.Add(encodeAAERootsRequest())
	f.Add([]byte{rpc.FrameVersion, rpc.KindAAERootsRequest, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := decodeAAERootsRequest(b); err == nil && !bytes.Equal(encodeAAERootsRequest(), b) {
			t.Fatalf("accepted %x, which is not the one roots request", b)
		}
	})
}

func FuzzDecodeAAERootsResponse(f *testing.F) {
	f.Add(encodeAAERootsResponse(TreeRoots{}))
	f.Add(encodeAAERootsResponse(TreeRoots{Ready: true}))
	f.Add(encodeAAERootsResponse(TreeRoots{Ready: true, Roots: []uint64{7, 0, ^uint64(0)}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeAAERootsResponse(b)
		if err != nil {
			return
		}
		if !r.Ready && len(r.Roots) != 0 {
			t.Fatalf("a not-ready response decoded with %d roots", len(r.Roots))
		}
		if !bytes.Equal(encodeAAERootsResponse(r), b) {
			t.Fatalf("decoded %d roots re-encode differently", len(r.Roots))
		}
	})
}
