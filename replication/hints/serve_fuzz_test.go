package hints

import (
	"testing"

	"github.com/dynkv/dynkv/replication/internal/rpctest"
	"github.com/dynkv/dynkv/replication/rpc"
)

// FuzzServeHint posts arbitrary frames to the hint call of a server that
// registered it (Register) over a real store, both ways in: the checks of
// replication/rpc's FuzzServeRPC and FuzzServeCall (rpctest.CheckServe).
func FuzzServeHint(f *testing.F) {
	f.Add(encodeHintRequest(hintRequest{Owner: "n2", DB: 1, Key: []byte("k"), Set: sampleSet("v")}))
	f.Add([]byte{})
	f.Add([]byte{rpc.FrameVersion})
	st := openStore(f)
	srv := &rpc.Server{Store: st}
	Register(srv, st)
	cf := rpctest.CallFrames{
		Call:     rpc.CallHint,
		Request:  func(b []byte) error { _, err := decodeHintRequest(b); return err },
		Response: rpc.DecodeAck,
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		rpctest.CheckServe(t, srv, cf, body)
	})
}
