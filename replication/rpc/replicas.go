package rpc

import (
	"context"
	"errors"
	"fmt"

	"github.com/dynkv/dynkv/membership"
	"github.com/dynkv/dynkv/store"
	"github.com/dynkv/dynkv/vclock"
)

// Replicas reaches the replicas of a key by node id: the local store for
// Self (a direct call: no encoding, no socket), RPC to the member's HTTPAddr
// for every other id. The coordinator, the handoff, hinted handoff,
// anti-entropy and tombstone GC talk to it, so none cares where a replica
// lives; the rooms' own calls (hints.Replicas, antientropy.RPCPeers) reach
// a node by id through Addr.
type Replicas struct {
	Self   string
	Store  *store.Store
	Client *Client
	// Members looks a node id up in the ring state (membership.Member).
	Members func(id string) (membership.Member, bool)
}

// Addr returns the RPC address of a remote node: its member entry's
// HTTPAddr, or an error wrapping ErrUnknownNode. The rooms' calls (hints,
// antientropy) reach a node by id through it.
func (r *Replicas) Addr(id string) (string, error) {
	if r.Members == nil {
		return "", fmt.Errorf("%w: %q (no member directory)", ErrUnknownNode, id)
	}
	m, ok := r.Members(id)
	if !ok || m.HTTPAddr == "" {
		return "", fmt.Errorf("%w: %q", ErrUnknownNode, id)
	}
	return m.HTTPAddr, nil
}

// Get reads node id's state of a key; found is false when it holds none.
func (r *Replicas) Get(ctx context.Context, id string, db int, key []byte) (vclock.Set, bool, error) {
	if id == r.Self {
		s, err := r.Store.Get(db, key)
		if errors.Is(err, store.ErrNotFound) {
			return vclock.Set{}, false, nil
		}
		if err != nil {
			return vclock.Set{}, false, err
		}
		return s, true, nil
	}
	addr, err := r.Addr(id)
	if err != nil {
		return vclock.Set{}, false, err
	}
	return r.Client.Get(ctx, addr, db, key)
}

// Merge merges s into node id's state of a key, durably.
func (r *Replicas) Merge(ctx context.Context, id string, db int, key []byte, s vclock.Set) error {
	if id == r.Self {
		_, err := r.Store.Merge(db, key, s)
		return err
	}
	addr, err := r.Addr(id)
	if err != nil {
		return err
	}
	return r.Client.Merge(ctx, addr, db, key, s)
}

// MergeCovering merges s into node id's state of a key only if s's context
// covers everything id holds for it (store.MergeCovering); otherwise it
// writes nothing and returns id's context.
func (r *Replicas) MergeCovering(ctx context.Context, id string, db int, key []byte, s vclock.Set) (bool, vclock.Context, error) {
	if id == r.Self {
		cur, covered, err := r.Store.MergeCovering(db, key, s)
		return covered, cur.Context, err
	}
	addr, err := r.Addr(id)
	if err != nil {
		return false, vclock.Context{}, err
	}
	return r.Client.MergeCovering(ctx, addr, db, key, s)
}

// MergeBatch merges items into node id, in order, stopping at the first
// failure (every earlier item is applied).
func (r *Replicas) MergeBatch(ctx context.Context, id string, items []Item) error {
	if id == r.Self {
		for i, it := range items {
			if _, err := r.Store.Merge(it.DB, it.Key, it.Set); err != nil {
				return fmt.Errorf("replication: local merge batch: item %d: %w", i, err)
			}
		}
		return nil
	}
	addr, err := r.Addr(id)
	if err != nil {
		return err
	}
	return r.Client.MergeBatch(ctx, addr, items)
}

// Coordinate hands a write to node id for coordination. A node coordinates
// its own writes directly (the coordinator holds the local store), so
// asking Self is a caller bug and fails with ErrBadRequest.
func (r *Replicas) Coordinate(ctx context.Context, id string, req WriteRequest) (WriteResult, error) {
	if id == r.Self {
		return WriteResult{}, fmt.Errorf("%w: coordinate forwarded to this node itself (%q)", ErrBadRequest, id)
	}
	addr, err := r.Addr(id)
	if err != nil {
		return WriteResult{}, err
	}
	return r.Client.Coordinate(ctx, addr, req)
}
