package coordinator

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dynkv/dynkv/store"
	"github.com/dynkv/dynkv/vclock"
)

// fakeNet is a cluster in one process: replica states in memory, a
// Coordinator per node, and per-node switches that make a replica fail or
// block until released. Nothing in it sleeps, so the tests are
// deterministic.
type fakeNet struct {
	mu    sync.Mutex
	nodes map[string]*fakeNode
}

type fakeNode struct {
	id    string
	coord *Coordinator

	mu        sync.Mutex
	data      map[string]vclock.Set
	getErr    error
	mergeErr  error
	coordErr  error         // returned by Coordinate before it reaches the coordinator
	coordGate chan struct{} // when set, Coordinate blocks on it first (gate)
	putErr    error         // the local store's Put
	getGate   chan struct{}
	mrgGate   chan struct{}
	merges    []string              // keys merged into this replica, in order
	covering  int                   // covering merges asked of this replica
	served    chan string           // when set, receives the id after every Get served
	coords    int                   // writes this node coordinated for another node
	hints     map[string]vclock.Set // owner + "|" + storageKey -> hint held for owner
	hintErr   error
}

func newFakeNet(ids ...string) *fakeNet {
	n := &fakeNet{nodes: map[string]*fakeNode{}}
	for _, id := range ids {
		n.nodes[id] = &fakeNode{id: id, data: map[string]vclock.Set{}}
	}
	return n
}

func (n *fakeNet) node(id string) *fakeNode {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.nodes[id]
}

func storageKey(db int, key []byte) string { return fmt.Sprintf("%d/%s", db, key) }

// gate blocks on g (when set) until it is closed or ctx ends.
func gate(ctx context.Context, g chan struct{}) error {
	if g == nil {
		return nil
	}
	select {
	case <-g:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *fakeNode) snapshotSwitches() (getErr, mergeErr error, getGate, mrgGate chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.getErr, f.mergeErr, f.getGate, f.mrgGate
}

func (f *fakeNode) set(db int, key []byte) vclock.Set {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.data[storageKey(db, key)]
}

func (f *fakeNode) store(db int, key []byte, s vclock.Set) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.data[storageKey(db, key)] = s
}

func (f *fakeNode) mergeLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.merges)
}

// Write is store.Store.Write's semantics, with the store's own decision
// (Supersede.Resolve) of what the write supersedes.
func (f *fakeNode) Write(db int, key []byte, actor string, sup store.Supersede, sib vclock.Sibling) (vclock.Set, vclock.Context, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.putErr != nil {
		return vclock.Set{}, vclock.Context{}, f.putErr
	}
	k := storageKey(db, key)
	cur := f.data[k]
	ctx, err := sup.Resolve(cur.Context)
	if err != nil {
		return vclock.Set{}, vclock.Context{}, err
	}
	next, clientCtx := cur.Update(actor, ctx, sib)
	f.data[k] = next
	return next, clientCtx, nil
}

// Increment is store.Store.Increment's semantics.
func (f *fakeNode) Increment(db int, key []byte, actor string, base vclock.Set, delta int64) (vclock.Set, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.putErr != nil {
		return vclock.Set{}, f.putErr
	}
	k := storageKey(db, key)
	next, err := vclock.Merge(f.data[k], base).Increment(actor, delta, int64(len(f.merges)+1))
	if err != nil {
		return vclock.Set{}, err
	}
	f.data[k] = next
	return next, nil
}

// fakeReplicas is one node's view of the others, as rpc.Replicas.
type fakeReplicas struct{ net *fakeNet }

func (r fakeReplicas) Get(ctx context.Context, id string, db int, key []byte) (vclock.Set, bool, error) {
	n := r.net.node(id)
	getErr, _, g, _ := n.snapshotSwitches()
	if err := gate(ctx, g); err != nil {
		return vclock.Set{}, false, err
	}
	if getErr != nil {
		return vclock.Set{}, false, getErr
	}
	n.mu.Lock()
	s, ok := n.data[storageKey(db, key)]
	served := n.served
	n.mu.Unlock()
	if served != nil {
		served <- id
	}
	return s, ok, nil
}

func (r fakeReplicas) Merge(ctx context.Context, id string, db int, key []byte, in vclock.Set) error {
	_, _, err := r.merge(ctx, id, db, key, in, false)
	return err
}

// MergeCovering is store.MergeCovering's contract: merge only when in's
// context covers what the node holds. It passes the same gate and fails
// with the same injected error as Merge.
func (r fakeReplicas) MergeCovering(ctx context.Context, id string, db int, key []byte, in vclock.Set) (bool, vclock.Context, error) {
	return r.merge(ctx, id, db, key, in, true)
}

func (r fakeReplicas) merge(ctx context.Context, id string, db int, key []byte, in vclock.Set, covering bool) (bool, vclock.Context, error) {
	n := r.net.node(id)
	_, mergeErr, _, g := n.snapshotSwitches()
	if err := gate(ctx, g); err != nil {
		return false, vclock.Context{}, err
	}
	if mergeErr != nil {
		return false, vclock.Context{}, mergeErr
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	k := storageKey(db, key)
	if covering {
		n.covering++
		if !n.data[k].Context.CoveredBy(in.Context) {
			return false, n.data[k].Context, nil
		}
	}
	n.data[k] = vclock.Merge(n.data[k], in)
	n.merges = append(n.merges, k)
	return true, vclock.Context{}, nil
}

func (r fakeReplicas) Hint(ctx context.Context, id, owner string, db int, key []byte, in vclock.Set) error {
	n := r.net.node(id)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.hintErr != nil {
		return n.hintErr
	}
	if n.hints == nil {
		n.hints = map[string]vclock.Set{}
	}
	k := owner + "|" + storageKey(db, key)
	n.hints[k] = vclock.Merge(n.hints[k], in)
	return nil
}

func (r fakeReplicas) Coordinate(ctx context.Context, id string, req WriteRequest) (WriteResult, error) {
	n := r.net.node(id)
	n.mu.Lock()
	err, c, g := n.coordErr, n.coord, n.coordGate
	if err == nil {
		n.coords++
	}
	n.mu.Unlock()
	if err := gate(ctx, g); err != nil {
		return WriteResult{}, err
	}
	if err != nil {
		return WriteResult{}, err
	}
	return c.CoordinateLocal(ctx, req)
}

// fakeCluster is a fixed ring: the same preference lists for every key.
type fakeCluster struct {
	self      string
	mu        sync.Mutex
	committed []string
	target    []string
	dead      map[string]bool
}

func (c *fakeCluster) Self() string { return c.self }

func (c *fakeCluster) PreferenceLists(db int, key []byte, n int) ([]string, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	capped := func(l []string) []string {
		if l == nil {
			return nil
		}
		return slices.Clone(l[:min(n, len(l))])
	}
	return capped(c.committed), capped(c.target)
}

func (c *fakeCluster) Alive(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.dead[id]
}

// harness wires a Coordinator on every node of net with the same ring.
type harness struct {
	t        testing.TB
	net      *fakeNet
	clusters map[string]*fakeCluster
}

func newHarness(t testing.TB, cfg Config, committed, target []string, ids ...string) *harness {
	t.Helper()
	h := &harness{t: t, net: newFakeNet(ids...), clusters: map[string]*fakeCluster{}}
	if cfg.RequestTimeout == 0 {
		// Long enough that a test depending on it would visibly hang
		// rather than pass by luck; tests of the timeout set their own.
		cfg.RequestTimeout = time.Minute
	}
	for _, id := range ids {
		fc := &fakeCluster{self: id, committed: committed, target: target, dead: map[string]bool{}}
		h.clusters[id] = fc
		n := h.net.node(id)
		n.coord = New(cfg, fc, fakeReplicas{h.net}, n)
		t.Cleanup(func() { _ = n.coord.Close() })
	}
	return h
}

func (h *harness) coord(id string) *Coordinator { return h.net.node(id).coord }

// quiesce waits for every background merge and repair of every node.
func (h *harness) quiesce() {
	for _, n := range h.net.nodes {
		n.coord.wg.Wait()
	}
}

func (h *harness) setGetGate(id string, g chan struct{}) {
	n := h.net.node(id)
	n.mu.Lock()
	n.getGate = g
	n.mu.Unlock()
}

func (h *harness) setMergeGate(id string, g chan struct{}) {
	n := h.net.node(id)
	n.mu.Lock()
	n.mrgGate = g
	n.mu.Unlock()
}

func (h *harness) fail(id string, err error) {
	n := h.net.node(id)
	n.mu.Lock()
	n.getErr, n.mergeErr, n.coordErr = err, err, err
	n.mu.Unlock()
}

func values(s vclock.Set) []string {
	var out []string
	for _, x := range s.Siblings {
		out = append(out, string(x.Value))
	}
	slices.Sort(out)
	return out
}

func sib(v string) vclock.Sibling { return vclock.Sibling{Value: []byte(v), LastModified: 1} }
