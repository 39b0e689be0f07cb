package replication

import (
	"context"
	"encoding/binary"
	"fmt"
)

// Anti-entropy calls, under PathPrefix like the others.
const (
	callAAETree  = "aae-tree"
	callAAEKeys  = "aae-keys"
	callAAERoots = "aae-roots"
)

// Frame kinds of the anti-entropy calls, far from the core calls' kinds so
// that other features adding calls do not collide with them.
const (
	kindAAETreeRequest   byte = 0x40
	kindAAETreeResponse  byte = 0x41
	kindAAEKeysRequest   byte = 0x42
	kindAAEKeysResponse  byte = 0x43
	kindAAERootsRequest  byte = 0x44
	kindAAERootsResponse byte = 0x45
)

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
	b := header(make([]byte, 0, 2+binary.MaxVarintLen64), kindAAETreeRequest)
	return binary.AppendUvarint(b, uint64(partition))
}

func decodeAAETreeRequest(b []byte) (int, error) {
	d := newDecoder(b)
	if err := d.header("aae-tree request", kindAAETreeRequest); err != nil {
		return 0, err
	}
	p, err := d.partition()
	if err != nil {
		return 0, err
	}
	return p, d.End("aae-tree request")
}

func encodeAAETreeResponse(t *TreeSummary) []byte {
	if !t.Ready {
		return []byte{frameVersion, kindAAETreeResponse, 0}
	}
	b := make([]byte, 0, 3+8*(1+TreeInner+TreeLeaves))
	b = append(header(b, kindAAETreeResponse), 1)
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
	d := newDecoder(b)
	if err := d.header("aae-tree response", kindAAETreeResponse); err != nil {
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
	b := header(make([]byte, 0, 2+2*binary.MaxVarintLen64+2*len(r.Buckets)), kindAAEKeysRequest)
	b = binary.AppendUvarint(b, uint64(r.Partition))
	b = binary.AppendUvarint(b, uint64(len(r.Buckets)))
	for _, x := range r.Buckets {
		b = binary.AppendUvarint(b, uint64(x))
	}
	return b
}

func decodeAAEKeysRequest(b []byte) (aaeKeysRequest, error) {
	d := newDecoder(b)
	var r aaeKeysRequest
	var err error
	if err = d.header("aae-keys request", kindAAEKeysRequest); err != nil {
		return r, err
	}
	if r.Partition, err = d.partition(); err != nil {
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
		size += uvarintLen(uint64(k.DB)) + bytesLen(len(k.Key)) + 8
	}
	if size > MaxFrameBytes {
		return nil, fmt.Errorf("replication: aae-keys response of %d keys takes %d bytes, over the frame limit %d", len(keys), size, MaxFrameBytes)
	}
	b := header(make([]byte, 0, size), kindAAEKeysResponse)
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = binary.AppendUvarint(b, uint64(k.DB))
		b = appendBytes(b, k.Key)
		b = binary.LittleEndian.AppendUint64(b, k.Hash)
	}
	return b, nil
}

// decodeAAEKeysResponse parses a key listing; the keys alias b.
func decodeAAEKeysResponse(b []byte) ([]KeyHash, error) {
	d := newDecoder(b)
	if err := d.header("aae-keys response", kindAAEKeysResponse); err != nil {
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
		if k.DB, err = d.db(); err != nil {
			return nil, err
		}
		if k.Key, err = d.key(); err != nil {
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
	return header(make([]byte, 0, 2), kindAAERootsRequest)
}

func decodeAAERootsRequest(b []byte) error {
	d := newDecoder(b)
	if err := d.header("aae-roots request", kindAAERootsRequest); err != nil {
		return err
	}
	return d.End("aae-roots request")
}

func encodeAAERootsResponse(r TreeRoots) []byte {
	if !r.Ready {
		return []byte{frameVersion, kindAAERootsResponse, 0}
	}
	b := make([]byte, 0, 3+binary.MaxVarintLen64+8*len(r.Roots))
	b = append(header(b, kindAAERootsResponse), 1)
	b = binary.AppendUvarint(b, uint64(len(r.Roots)))
	for _, h := range r.Roots {
		b = binary.LittleEndian.AppendUint64(b, h)
	}
	return b
}

func decodeAAERootsResponse(b []byte) (TreeRoots, error) {
	d := newDecoder(b)
	if err := d.header("aae-roots response", kindAAERootsResponse); err != nil {
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

func (d *decoder) partition() (int, error) {
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

// AAETree fetches partition's hash tree from the node at addr.
func (c *Client) AAETree(ctx context.Context, addr string, partition int) (*TreeSummary, error) {
	resp, err := c.call(ctx, addr, idAAETree, encodeAAETreeRequest(partition))
	if err != nil {
		return nil, err
	}
	t, err := decodeAAETreeResponse(resp)
	if err != nil {
		return nil, fmt.Errorf("replication: %s at %s: response: %w", callAAETree, addr, err)
	}
	return t, nil
}

// AAEKeys lists the keys (with their entry hashes) the node at addr holds
// in the given leaf buckets of partition; buckets must be strictly
// increasing.
func (c *Client) AAEKeys(ctx context.Context, addr string, partition int, buckets []int) ([]KeyHash, error) {
	resp, err := c.call(ctx, addr, idAAEKeys, encodeAAEKeysRequest(aaeKeysRequest{Partition: partition, Buckets: buckets}))
	if err != nil {
		return nil, err
	}
	keys, err := decodeAAEKeysResponse(resp)
	if err != nil {
		return nil, fmt.Errorf("replication: %s at %s: response: %w", callAAEKeys, addr, err)
	}
	return keys, nil
}

// AAERoots fetches the root of every partition's hash tree from the node
// at addr.
func (c *Client) AAERoots(ctx context.Context, addr string) (TreeRoots, error) {
	resp, err := c.call(ctx, addr, idAAERoots, encodeAAERootsRequest())
	if err != nil {
		return TreeRoots{}, err
	}
	r, err := decodeAAERootsResponse(resp)
	if err != nil {
		return TreeRoots{}, fmt.Errorf("replication: %s at %s: response: %w", callAAERoots, addr, err)
	}
	return r, nil
}

// aaeHandler serves the anti-entropy calls from s.Trees; without trees
// the node does not run anti-entropy and answers unavailable.
func (s *Server) aaeHandler(call string) func(context.Context, []byte) ([]byte, error) {
	return func(_ context.Context, body []byte) ([]byte, error) {
		if s.Trees == nil {
			return nil, fmt.Errorf("%w: anti-entropy is off on this node", ErrUnavailable)
		}
		switch call {
		case callAAETree:
			p, err := decodeAAETreeRequest(body)
			if err != nil {
				return nil, err
			}
			t, err := s.Trees.Summary(p)
			if err != nil {
				return nil, err
			}
			return encodeAAETreeResponse(&t), nil
		case callAAERoots:
			if err := decodeAAERootsRequest(body); err != nil {
				return nil, err
			}
			return encodeAAERootsResponse(s.Trees.Roots()), nil
		default:
			r, err := decodeAAEKeysRequest(body)
			if err != nil {
				return nil, err
			}
			if r.Partition >= s.Trees.Partitions() {
				return nil, fmt.Errorf("%w: partition %d, this node has %d", ErrBadRequest, r.Partition, s.Trees.Partitions())
			}
			keys, err := bucketKeys(s.Store, s.Trees.Partitions(), r.Partition, r.Buckets)
			if err != nil {
				return nil, err
			}
			return encodeAAEKeysResponse(keys)
		}
	}
}
