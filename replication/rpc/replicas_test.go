package rpc

import (
	"context"
	"errors"
	"testing"

	"github.com/dynkv/dynkv/membership"
	"github.com/dynkv/dynkv/store"
	"github.com/dynkv/dynkv/vclock"
)

func TestReplicasServeSelfLocallyAndOthersOverRPC(t *testing.T) {
	checkLeaks(t)
	local, remote := openStore(t), openStore(t)
	p := startServer(t, &Server{Store: remote, Coordinate: func(_ context.Context, req WriteRequest) (WriteResult, error) {
		_, ctx, err := remote.Put(req.DB, req.Key, "b", req.Context, req.Sibling)
		return WriteResult{Context: ctx}, err
	}}, serverConfig{})
	members := map[string]membership.Member{
		"a":      {ID: "a", HTTPAddr: "127.0.0.1:1"}, // never dialled: a is Self
		"b":      {ID: "b", HTTPAddr: p.addr},
		"noaddr": {ID: "noaddr"},
	}
	r := &Replicas{Self: "a", Store: local, Client: newTestClient(t, ClientConfig{}),
		Members: func(id string) (membership.Member, bool) { m, ok := members[id]; return m, ok }}
	ctx := ctxTimeout(t)
	key := []byte("k")
	s := sampleSet("v")

	if err := r.Merge(ctx, "a", 0, key, s); err != nil {
		t.Fatalf("Merge to self: %v", err)
	}
	if got, err := local.Get(0, key); err != nil || !got.Equal(s) {
		t.Fatalf("local store after Merge to self: %v (%v), want %v", got, err, s)
	}
	if _, err := remote.Get(0, key); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("remote store after Merge to self: %v, want not found", err)
	}
	if got, found, err := r.Get(ctx, "a", 0, key); err != nil || !found || !got.Equal(s) {
		t.Fatalf("Get from self: %v found=%v err=%v", got, found, err)
	}
	if n := p.listener.accepted.Load(); n != 0 {
		t.Fatalf("calls to self opened %d connections, want none", n)
	}

	if err := r.Merge(ctx, "b", 0, key, s); err != nil {
		t.Fatalf("Merge to b: %v", err)
	}
	if got, found, err := r.Get(ctx, "b", 0, key); err != nil || !found || !got.Equal(s) {
		t.Fatalf("Get from b: %v found=%v err=%v, want %v", got, found, err, s)
	}
	if err := r.MergeBatch(ctx, "b", []Item{{DB: 1, Key: key, Set: s}}); err != nil {
		t.Fatalf("MergeBatch to b: %v", err)
	}
	if got, err := remote.Get(1, key); err != nil || !got.Equal(s) {
		t.Fatalf("b's store after MergeBatch: %v (%v)", got, err)
	}
	if err := r.MergeBatch(ctx, "a", []Item{{DB: 2, Key: key, Set: s}}); err != nil {
		t.Fatalf("MergeBatch to self: %v", err)
	}
	if _, err := local.Get(2, key); err != nil {
		t.Fatalf("local store after MergeBatch to self: %v", err)
	}
	res, err := r.Coordinate(ctx, "b", WriteRequest{DB: 3, Key: key, Sibling: vclock.Sibling{Value: []byte("w")}})
	if err != nil || res.Context.Max("b") != 1 {
		t.Fatalf("Coordinate at b: %+v, %v; want a context with b's first dot", res, err)
	}
	if _, err := r.Coordinate(ctx, "a", WriteRequest{Key: key}); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("Coordinate at self: %v, want ErrBadRequest", err)
	}

	for _, id := range []string{"ghost", "noaddr"} {
		if _, _, err := r.Get(ctx, id, 0, key); !errors.Is(err, ErrUnknownNode) {
			t.Errorf("Get from %q: %v, want ErrUnknownNode", id, err)
		}
		if err := r.Merge(ctx, id, 0, key, s); !errors.Is(err, ErrUnknownNode) {
			t.Errorf("Merge to %q: %v, want ErrUnknownNode", id, err)
		}
		if _, err := r.Coordinate(ctx, id, WriteRequest{Key: key}); !errors.Is(err, ErrUnknownNode) {
			t.Errorf("Coordinate at %q: %v, want ErrUnknownNode", id, err)
		}
	}
}
