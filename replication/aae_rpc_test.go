package replication

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
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
	keys := []KeyHash{{0, []byte("a"), 1}, {255, bytes.Repeat([]byte("k"), MaxKeyLen), ^uint64(0)}}
	b, err := encodeAAEKeysResponse(keys)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := decodeAAEKeysResponse(b); err != nil || !reflect.DeepEqual(got, keys) {
		t.Fatalf("keys response: %v", err)
	}
}

func TestAAEDecodersRejectBadFrames(t *testing.T) {
	cases := map[string]func() error{
		"bucket out of range": func() error {
			_, err := decodeAAEKeysRequest([]byte{frameVersion, kindAAEKeysRequest, 0, 1, 0x80, 0x08})
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
			_, err := decodeAAETreeResponse([]byte{frameVersion, kindAAETreeResponse, 2})
			return err
		},
		"key count beyond the frame": func() error {
			_, err := decodeAAEKeysResponse([]byte{frameVersion, kindAAEKeysResponse, 100, 0, 1, 'k'})
			return err
		},
		"wrong kind": func() error {
			_, err := decodeAAETreeRequest([]byte{frameVersion, kindGetRequest, 0})
			return err
		},
	}
	for name, f := range cases {
		if err := f(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err %v, want ErrMalformed", name, err)
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
