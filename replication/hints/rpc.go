package hints

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/dynkv/dynkv/internal/wire"
	"github.com/dynkv/dynkv/replication/rpc"
	"github.com/dynkv/dynkv/store"
	"github.com/dynkv/dynkv/vclock"
)

// The hint call (rpc.CallHint) stores a hint on the receiving node: a
// write meant for owner, which the coordinator found unreachable (sloppy
// quorum, Dynamo 4.6). Its request frame is rpc.KindHintRequest; it is
// answered with rpc.Ack.

// maxOwnerLen: the store keeps the owner id's length in one byte.
const maxOwnerLen = store.MaxHintOwnerLen

// hintRequest is a write held for owner until it is reachable again.
//
//	hint request = version kind owner db key set
type hintRequest struct {
	Owner string
	DB    int
	Key   []byte
	Set   vclock.Set
}

func encodeHintRequest(r hintRequest) []byte {
	set := r.Set.Encode()
	b := make([]byte, 0, 2+wire.BytesLen(len(r.Owner))+wire.UvarintLen(uint64(r.DB))+wire.BytesLen(len(r.Key))+wire.BytesLen(len(set)))
	b = rpc.Header(b, rpc.KindHintRequest)
	b = wire.AppendBytes(b, []byte(r.Owner))
	b = binary.AppendUvarint(b, uint64(r.DB))
	b = wire.AppendBytes(b, r.Key)
	return wire.AppendBytes(b, set)
}

// decodeHintRequest parses a hint request. The key aliases b.
func decodeHintRequest(b []byte) (hintRequest, error) {
	d := rpc.NewDecoder(b)
	var r hintRequest
	if err := d.Header("hint request", rpc.KindHintRequest); err != nil {
		return hintRequest{}, err
	}
	at := d.Offset()
	owner, err := d.Bytes("owner length", maxOwnerLen)
	if err != nil {
		return hintRequest{}, err
	}
	if len(owner) == 0 {
		return hintRequest{}, d.ErrorfAt(at, "empty hint owner")
	}
	r.Owner = string(owner)
	if r.DB, err = d.DB(); err != nil {
		return hintRequest{}, err
	}
	if r.Key, err = d.Key(); err != nil {
		return hintRequest{}, err
	}
	if r.Set, err = d.Set(); err != nil {
		return hintRequest{}, err
	}
	return r, d.End("hint request")
}

// Register makes srv serve the hint call, storing each hint durably in st
// (store.PutHint).
func Register(srv *rpc.Server, st *store.Store) {
	srv.Handle(rpc.CallHint, func(_ context.Context, body []byte) ([]byte, error) {
		req, err := decodeHintRequest(body)
		if err != nil {
			return nil, err
		}
		if err := st.PutHint(req.Owner, req.DB, req.Key, req.Set); err != nil {
			return nil, err
		}
		return rpc.Ack(), nil
	})
}

// Send asks the node at addr to hold s for owner, durably, until owner can
// take it. Retried like Merge (rpc.Client.Invoke): storing a hint twice
// merges to the same hint.
func Send(ctx context.Context, c *rpc.Client, addr, owner string, db int, key []byte, s vclock.Set) error {
	resp, err := c.Invoke(ctx, addr, rpc.CallHint, encodeHintRequest(hintRequest{Owner: owner, DB: db, Key: key, Set: s}))
	if err != nil {
		return err
	}
	if err := rpc.DecodeAck(resp); err != nil {
		return fmt.Errorf("replication: hint at %s: response: %w", addr, err)
	}
	return nil
}

// Replicas is the replica adapter (rpc.Replicas) with the hint call, as
// the coordinator needs it (coordinator.Replicas).
type Replicas struct{ *rpc.Replicas }

// Hint stores s as a hint for owner on node id: in the local store when id
// is Self, by RPC otherwise.
func (r Replicas) Hint(ctx context.Context, id, owner string, db int, key []byte, s vclock.Set) error {
	if id == r.Self {
		return r.Store.PutHint(owner, db, key, s)
	}
	addr, err := r.Addr(id)
	if err != nil {
		return err
	}
	return Send(ctx, r.Client, addr, owner, db, key, s)
}
