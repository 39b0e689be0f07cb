package antientropy

import (
	"testing"

	"github.com/dynkv/dynkv/replication/internal/rpctest"
	"github.com/dynkv/dynkv/replication/rpc"
)

// aaeCalls are the anti-entropy calls as rpctest.CheckServe knows them,
// in the order FuzzServeAAE picks them by a byte. aae-tree and aae-keys
// refuse a partition the node does not have, which their decoders accept.
var aaeCalls = []rpctest.CallFrames{
	{Call: rpc.CallAAETree, RefusesDecodable: true, SameResponse: true,
		Request:  func(b []byte) error { _, err := decodeAAETreeRequest(b); return err },
		Response: func(b []byte) error { _, err := decodeAAETreeResponse(b); return err }},
	{Call: rpc.CallAAEKeys, RefusesDecodable: true, SameResponse: true,
		Request:  func(b []byte) error { _, err := decodeAAEKeysRequest(b); return err },
		Response: func(b []byte) error { _, err := decodeAAEKeysResponse(b); return err }},
	{Call: rpc.CallAAERoots, SameResponse: true,
		Request:  decodeAAERootsRequest,
		Response: func(b []byte) error { _, err := decodeAAERootsResponse(b); return err }},
}

// FuzzServeAAE posts arbitrary frames to the anti-entropy calls of a
// server that registered them (Register) over a real store and hash
// trees, both ways in, as a peer (or a stranger that got past
// authentication) would: the checks of replication/rpc's FuzzServeRPC
// and FuzzServeCall (rpctest.CheckServe).
func FuzzServeAAE(f *testing.F) {
	seeds := [][][]byte{
		{encodeAAETreeRequest(3), encodeAAETreeRequest(testPartitions)},
		{encodeAAEKeysRequest(aaeKeysRequest{Partition: 3, Buckets: []int{0, 1, 2}})},
		{encodeAAERootsRequest()},
	}
	for i := range aaeCalls {
		for _, b := range seeds[i] {
			f.Add(byte(i), b)
		}
		f.Add(byte(i), []byte{})
		f.Add(byte(i), []byte{rpc.FrameVersion})
	}
	s, trees := openTreeStore(f, f.TempDir())
	srv := &rpc.Server{Store: s}
	Register(srv, s, trees)
	f.Fuzz(func(t *testing.T, which byte, body []byte) {
		rpctest.CheckServe(t, srv, aaeCalls[int(which)%len(aaeCalls)], body)
	})
}
