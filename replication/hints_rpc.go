package replication

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/dynkv/dynkv/store"
	"github.com/dynkv/dynkv/vclock"
)

// callHint stores a hint on the receiving node: a write meant for owner,
// which the coordinator found unreachable (sloppy quorum, Dynamo 4.6).
const callHint = "hint"

// kindHintRequest is far from the codec's own kinds so that calls other
// features add there cannot collide with it.
const kindHintRequest byte = 32

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
	b := make([]byte, 0, 2+bytesLen(len(r.Owner))+uvarintLen(uint64(r.DB))+bytesLen(len(r.Key))+bytesLen(len(set)))
	b = header(b, kindHintRequest)
	b = appendBytes(b, []byte(r.Owner))
	b = binary.AppendUvarint(b, uint64(r.DB))
	b = appendBytes(b, r.Key)
	return appendBytes(b, set)
}

// decodeHintRequest parses a hint request. The key aliases b.
func decodeHintRequest(b []byte) (hintRequest, error) {
	d := newDecoder(b)
	var r hintRequest
	if err := d.header("hint request", kindHintRequest); err != nil {
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
	if r.DB, err = d.db(); err != nil {
		return hintRequest{}, err
	}
	if r.Key, err = d.key(); err != nil {
		return hintRequest{}, err
	}
	if r.Set, err = d.set(); err != nil {
		return hintRequest{}, err
	}
	return r, d.End("hint request")
}

func (s *Server) hint(_ context.Context, body []byte) ([]byte, error) {
	req, err := decodeHintRequest(body)
	if err != nil {
		return nil, err
	}
	if err := s.Store.PutHint(req.Owner, req.DB, req.Key, req.Set); err != nil {
		return nil, err
	}
	return ackFrame, nil
}

// Hint asks the node at addr to hold s for owner, durably, until owner can
// take it. Retried like Merge: storing a hint twice merges to the same hint.
func (c *Client) Hint(ctx context.Context, addr, owner string, db int, key []byte, s vclock.Set) error {
	resp, err := c.call(ctx, addr, idHint, encodeHintRequest(hintRequest{Owner: owner, DB: db, Key: key, Set: s}))
	if err != nil {
		return err
	}
	if err := decodeAck(resp); err != nil {
		return fmt.Errorf("replication: hint at %s: response: %w", addr, err)
	}
	return nil
}

// Hint stores s as a hint for owner on node id: in the local store when id
// is Self, by RPC otherwise.
func (r *Replicas) Hint(ctx context.Context, id, owner string, db int, key []byte, s vclock.Set) error {
	if id == r.Self {
		return r.Store.PutHint(owner, db, key, s)
	}
	addr, err := r.addr(id)
	if err != nil {
		return err
	}
	return r.Client.Hint(ctx, addr, owner, db, key, s)
}
