package antientropy

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/dynkv/dynkv/internal/wire"
	"github.com/dynkv/dynkv/replication/rpc"
	"github.com/dynkv/dynkv/store"
)

// The anti-entropy calls (rpc.CallAAETree, rpc.CallAAEKeys,
// rpc.CallAAERoots) and their frame kinds are assigned in rpc's table
// (replication/rpc/calls.go); their frames are encoded here.

// maxPartition bounds a partition number on the wire (membership allows
// far fewer partitions).
const maxPartition = 1 << 20

// Layouts (as in codec.go; hashes are 8-byte little-endian):
//
//	aae-tree request  = version kind partition
//	aae-tree response = version kind ready(1 byte: 0 or 1)
//	                    [root inner*TreeInner leaves*TreeLeaves]
//	aae-keys request  = version kind partition count {bucket} (strictly increasing, < TreeLeaves)
//	aae-keys response = version kind count {db key hash}
//	aae-roots request  = version kind
//	aae-roots response = version kind ready(1 byte: 0 or 1)
//	                     [count {root}] (one root per partition, 0 first)
//
// A not-ready tree or root list carries no hashes: the peer is still
// building its trees.

type aaeKeysRequest struct {
	Partition int
	Buckets   []int
}

func encodeAAETreeRequest(partition int) []byte {
	b := rpc.Header(make([]byte, 0, 2+binary.MaxVarintLen64), rpc.KindAAETreeRequest)
	return binary.AppendUvarint(b, uint64(partition))
}

func decodeAAETreeRequest(b []byte) (int, error) {
	d := rpc.NewDecoder(b)
	if err := d.Header("aae-tree request", rpc.KindAAETreeRequest); err != nil {
		return 0, err
	}
	p, err := partition(&d)
	if err != nil {
		return 0, err
	}
	return p, d.End("aae-tree request")
}

func encodeAAETreeResponse(t *TreeSummary) []byte {
	if !t.Ready {
		return []byte{rpc.FrameVersion, rpc.KindAAETreeResponse, 0}
	}
	b := make([]byte, 0, 3+8*(1+TreeInner+TreeLeaves))
	b = append(rpc.Header(b, rpc.KindAAETreeResponse), 1)
	b = binary.LittleEndian.AppendUint64(b, t.Root)
	for _, h := range t.Inner {
		b = binary.LittleEndian.AppendUint64(b, h)
	}
	for _, h := range t.Leaves {
		b = binary.LittleEndian.AppendUint64(b, h)
	}
	return b
}

func decodeAAETreeResponse(b []byte) (*TreeSummary, error) {
	d := rpc.NewDecoder(b)
	if err := d.Header("aae-tree response", rpc.KindAAETreeResponse); err != nil {
		return nil, err
	}
	at := d.Offset()
	ready, err := d.Byte("aae-tree ready flag")
	if err != nil {
		return nil, err
	}
	t := new(TreeSummary)
	switch ready {
	case 0:
		return t, d.End("aae-tree response")
	case 1:
	default:
		return nil, d.ErrorfAt(at, "aae-tree ready flag %d, want 0 or 1", ready)
	}
	t.Ready = true
	if t.Root, err = d.Uint64LE("aae-tree root"); err != nil {
		return nil, err
	}
	for i := range t.Inner {
		if t.Inner[i], err = d.Uint64LE("aae-tree inner node"); err != nil {
			return nil, err
		}
	}
	for i := range t.Leaves {
		if t.Leaves[i], err = d.Uint64LE("aae-tree leaf"); err != nil {
			return nil, err
		}
	}
	return t, d.End("aae-tree response")
}

func encodeAAEKeysRequest(r aaeKeysRequest) []byte {
	b := rpc.Header(make([]byte, 0, 2+2*binary.MaxVarintLen64+2*len(r.Buckets)), rpc.KindAAEKeysRequest)
	b = binary.AppendUvarint(b, uint64(r.Partition))
	b = binary.AppendUvarint(b, uint64(len(r.Buckets)))
	for _, x := range r.Buckets {
		b = binary.AppendUvarint(b, uint64(x))
	}
	return b
}

func decodeAAEKeysRequest(b []byte) (aaeKeysRequest, error) {
	d := rpc.NewDecoder(b)
	var r aaeKeysRequest
	var err error
	if err = d.Header("aae-keys request", rpc.KindAAEKeysRequest); err != nil {
		return r, err
	}
	if r.Partition, err = partition(&d); err != nil {
		return r, err
	}
	n, err := d.Count("aae-keys bucket count", 1)
	if err != nil {
		return r, err
	}
	if n > TreeLeaves {
		return r, d.Errorf("aae-keys bucket count %d exceeds %d", n, TreeLeaves)
	}
	r.Buckets = make([]int, 0, n)
	for range n {
		at := d.Offset()
		v, err := d.Uvarint("aae-keys bucket")
		if err != nil {
			return r, err
		}
		if v >= TreeLeaves {
			return r, d.ErrorfAt(at, "aae-keys bucket %d exceeds %d", v, TreeLeaves-1)
		}
		if len(r.Buckets) > 0 && int(v) <= r.Buckets[len(r.Buckets)-1] {
			return r, d.ErrorfAt(at, "aae-keys buckets not strictly increasing at %d", v)
		}
		r.Buckets = append(r.Buckets, int(v))
	}
	return r, d.End("aae-keys request")
}

func encodeAAEKeysResponse(keys []KeyHash) ([]byte, error) {
	size := 2 + binary.MaxVarintLen64
	for _, k := range keys {
		size += wire.UvarintLen(uint64(k.DB)) + wire.BytesLen(len(k.Key)) + 8
	}
	if size > rpc.MaxFrameBytes {
		return nil, fmt.Errorf("replication: aae-keys response of %d keys takes %d bytes, over the frame limit %d", len(keys), size, rpc.MaxFrameBytes)
	}
	b := rpc.Header(make([]byte, 0, size), rpc.KindAAEKeysResponse)
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = binary.AppendUvarint(b, uint64(k.DB))
		b = wire.AppendBytes(b, k.Key)
		b = binary.LittleEndian.AppendUint64(b, k.Hash)
	}
	return b, nil
}

// decodeAAEKeysResponse parses a key listing; the keys alias b.
func decodeAAEKeysResponse(b []byte) ([]KeyHash, error) {
	d := rpc.NewDecoder(b)
	if err := d.Header("aae-keys response", rpc.KindAAEKeysResponse); err != nil {
		return nil, err
	}
	// db(1) + key length(1) + key(>=1) + hash(8)
	n, err := d.Count("aae-keys key count", 11)
	if err != nil {
		return nil, err
	}
	out := make([]KeyHash, 0, n)
	for range n {
		var k KeyHash
		if k.DB, err = d.DB(); err != nil {
			return nil, err
		}
		if k.Key, err = d.Key(); err != nil {
			return nil, err
		}
		if k.Hash, err = d.Uint64LE("aae-keys hash"); err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, d.End("aae-keys response")
}

func encodeAAERootsRequest() []byte {
	return rpc.Header(make([]byte, 0, 2), rpc.KindAAERootsRequest)
}

func decodeAAERootsRequest(b []byte) error {
	d := rpc.NewDecoder(b)
	if err := d.Header("aae-roots request", rpc.KindAAERootsRequest); err != nil {
		return err
	}
	return d.End("aae-roots request")
}

func encodeAAERootsResponse(r TreeRoots) []byte {
	if !r.Ready {
		return []byte{rpc.FrameVersion, rpc.KindAAERootsResponse, 0}
	}
	b := make([]byte, 0, 3+binary.MaxVarintLen64+8*len(r.Roots))
	b = append(rpc.Header(b, rpc.KindAAERootsResponse), 1)
	b = binary.AppendUvarint(b, uint64(len(r.Roots)))
	for _, h := range r.Roots {
		b = binary.LittleEndian.AppendUint64(b, h)
	}
	return b
}

func decodeAAERootsResponse(b []byte) (TreeRoots, error) {
	d := rpc.NewDecoder(b)
	if err := d.Header("aae-roots response", rpc.KindAAERootsResponse); err != nil {
		return TreeRoots{}, err
	}
	at := d.Offset()
	ready, err := d.Byte("aae-roots ready flag")
	if err != nil {
		return TreeRoots{}, err
	}
	switch ready {
	case 0:
		return TreeRoots{}, d.End("aae-roots response")
	case 1:
	default:
		return TreeRoots{}, d.ErrorfAt(at, "aae-roots ready flag %d, want 0 or 1", ready)
	}
	at = d.Offset()
	n, err := d.Count("aae-roots count", 8)
	if err != nil {
		return TreeRoots{}, err
	}
	if n > maxPartition {
		return TreeRoots{}, d.ErrorfAt(at, "aae-roots count %d exceeds %d", n, maxPartition)
	}
	r := TreeRoots{Ready: true, Roots: make([]uint64, n)}
	for i := range r.Roots {
		if r.Roots[i], err = d.Uint64LE("aae-roots root"); err != nil {
			return TreeRoots{}, err
		}
	}
	return r, d.End("aae-roots response")
}

// partition reads a partition number.
func partition(d *rpc.Decoder) (int, error) {
	at := d.Offset()
	v, err := d.Uvarint("partition")
	if err != nil {
		return 0, err
	}
	if v >= maxPartition {
		return 0, d.ErrorfAt(at, "partition %d exceeds %d", v, maxPartition-1)
	}
	return int(v), nil
}

// FetchTree fetches partition's hash tree from the node at addr.
func FetchTree(ctx context.Context, c *rpc.Client, addr string, partition int) (*TreeSummary, error) {
	resp, err := c.Invoke(ctx, addr, rpc.CallAAETree, encodeAAETreeRequest(partition))
	if err != nil {
		return nil, err
	}
	t, err := decodeAAETreeResponse(resp)
	if err != nil {
		return nil, fmt.Errorf("replication: %s at %s: response: %w", rpc.CallAAETree, addr, err)
	}
	return t, nil
}

// FetchKeys lists the keys (with their entry hashes) the node at addr
// holds in the given leaf buckets of partition; buckets must be strictly
// increasing.
func FetchKeys(ctx context.Context, c *rpc.Client, addr string, partition int, buckets []int) ([]KeyHash, error) {
	resp, err := c.Invoke(ctx, addr, rpc.CallAAEKeys, encodeAAEKeysRequest(aaeKeysRequest{Partition: partition, Buckets: buckets}))
	if err != nil {
		return nil, err
	}
	keys, err := decodeAAEKeysResponse(resp)
	if err != nil {
		return nil, fmt.Errorf("replication: %s at %s: response: %w", rpc.CallAAEKeys, addr, err)
	}
	return keys, nil
}

// FetchRoots fetches the root of every partition's hash tree from the node
// at addr.
func FetchRoots(ctx context.Context, c *rpc.Client, addr string) (TreeRoots, error) {
	resp, err := c.Invoke(ctx, addr, rpc.CallAAERoots, encodeAAERootsRequest())
	if err != nil {
		return TreeRoots{}, err
	}
	r, err := decodeAAERootsResponse(resp)
	if err != nil {
		return TreeRoots{}, fmt.Errorf("replication: %s at %s: response: %w", rpc.CallAAERoots, addr, err)
	}
	return r, nil
}

// Register makes srv serve the anti-entropy calls from trees, which st
// feeds (store.Options.OnChange). A node that does not register them
// answers them unavailable (rpc.Server.Handle).
func Register(srv *rpc.Server, st *store.Store, trees *HashTrees) {
	srv.Handle(rpc.CallAAETree, func(_ context.Context, body []byte) ([]byte, error) {
		p, err := decodeAAETreeRequest(body)
		if err != nil {
			return nil, err
		}
		t, err := trees.Summary(p)
		if err != nil {
			return nil, err
		}
		return encodeAAETreeResponse(&t), nil
	})
	srv.Handle(rpc.CallAAERoots, func(_ context.Context, body []byte) ([]byte, error) {
		if err := decodeAAERootsRequest(body); err != nil {
			return nil, err
		}
		return encodeAAERootsResponse(trees.Roots()), nil
	})
	srv.Handle(rpc.CallAAEKeys, func(_ context.Context, body []byte) ([]byte, error) {
		r, err := decodeAAEKeysRequest(body)
		if err != nil {
			return nil, err
		}
		if r.Partition >= trees.Partitions() {
			return nil, fmt.Errorf("%w: partition %d, this node has %d", rpc.ErrBadRequest, r.Partition, trees.Partitions())
		}
		keys, err := bucketKeys(st, trees.Partitions(), r.Partition, r.Buckets)
		if err != nil {
			return nil, err
		}
		return encodeAAEKeysResponse(keys)
	})
}

// RPCPeers is the replica adapter (rpc.Replicas) with the anti-entropy
// calls: Peers over RPC.
type RPCPeers struct{ *rpc.Replicas }

// AAERoots fetches the roots of all node id's partition trees over RPC.
func (r RPCPeers) AAERoots(ctx context.Context, id string) (TreeRoots, error) {
	addr, err := r.Addr(id)
	if err != nil {
		return TreeRoots{}, err
	}
	return FetchRoots(ctx, r.Client, addr)
}

// AAETree fetches node id's tree of partition over RPC (anti-entropy never
// asks its own node).
func (r RPCPeers) AAETree(ctx context.Context, id string, partition int) (*TreeSummary, error) {
	addr, err := r.Addr(id)
	if err != nil {
		return nil, err
	}
	return FetchTree(ctx, r.Client, addr, partition)
}

// AAEKeys lists node id's keys in the given buckets of partition.
func (r RPCPeers) AAEKeys(ctx context.Context, id string, partition int, buckets []int) ([]KeyHash, error) {
	addr, err := r.Addr(id)
	if err != nil {
		return nil, err
	}
	return FetchKeys(ctx, r.Client, addr, partition, buckets)
}
