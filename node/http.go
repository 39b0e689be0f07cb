package node

import (
	"context"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/dynkv/dynkv/node/httpapi"
	"github.com/dynkv/dynkv/node/internal/frontend"
	"github.com/dynkv/dynkv/replication/rpc"
	"github.com/dynkv/dynkv/vclock"
)

// ContextHeader carries a key's causal context between client and node.
const ContextHeader = httpapi.ContextHeader

// QuorumError reports that a request gathered fewer replica
// acknowledgements than it needed. A write that fails this way is
// indeterminate: some replicas may hold it. The coordinator returns it
// (also as relayed from a forwarding peer); the HTTP API answers 503 with
// both numbers.
type QuorumError = rpc.QuorumError

// routes is the node's HTTP handler: the client API of node/httpapi, with
// the node's own endpoints mounted in it.
func (n *Node) routes() http.Handler {
	return httpapi.New(httpBackend{n}, httpapi.Config{
		Databases:     n.cfg.Databases,
		Replicas:      n.cfg.Replicas,
		MaxValueBytes: n.cfg.MaxValueBytes,
		LingerTimeout: n.cfg.HTTPLingerTimeout,
		LingerBytes:   httpapi.LingerBytes(n.cfg.MaxValueBytes, n.cfg.HTTPLingerBytes),
		Pprof:         n.cfg.Pprof,
		Routes:        n.nodeRoutes,
		TestHook: func(r *http.Request) {
			if n.testHook != nil {
				n.testHook(r)
			}
		},
		Shared: frontend.Shared{
			Tokens:  n.tokens,
			Guard:   n.auth,
			Metrics: n.metrics,
			Logger:  n.log,
			Now:     n.cfg.now,
		},
	})
}

// nodeRoutes are the endpoints of the node itself: the cluster API
// (SPEC section 7), and node-to-node RPC with its debug reads.
func (n *Node) nodeRoutes(r chi.Router) {
	r.Get("/cluster/status", n.handleClusterStatus)
	r.Post("/cluster/join", n.handleClusterJoin)
	r.Post("/cluster/leave", n.handleClusterLeave)

	r.Get("/internal/v1/debug/local/*", n.handleDebugLocal)
	r.HandleFunc("/internal/v1/debug/hints", n.handleWipeHints) // DELETE only; 405 otherwise
	r.Handle("/internal/v1/*", http.HandlerFunc(n.handleInternal))
}

// writeError answers err as the HTTP API answers every error.
func (n *Node) writeError(w http.ResponseWriter, r *http.Request, err error) {
	httpapi.WriteError(n.log, w, r, err)
}

// acquire takes one of the in-flight slots, which HTTP and the Redis
// protocol share, so that one of them cannot starve the other; ok is false
// when every slot is taken.
func (n *Node) acquire() (release func(), ok bool) {
	select {
	case n.inflight <- struct{}{}:
		return n.releaseSlot, true
	default:
		return nil, false
	}
}

func (n *Node) releaseSlot() { <-n.inflight }

// httpBackend is the node as the HTTP API sees it.
type httpBackend struct{ n *Node }

func (b httpBackend) Get(ctx context.Context, db int, key []byte, r int) (vclock.Set, bool, error) {
	return b.n.coordinatedGet(ctx, db, key, r)
}

func (b httpBackend) Put(ctx context.Context, db int, key []byte, vc vclock.Context, blind bool, sib vclock.Sibling, w int) (vclock.Context, error) {
	return b.n.coordinatedPut(ctx, db, key, vc, blind, sib, w)
}

func (b httpBackend) Acquire() (func(), bool) { return b.n.acquire() }

// Ready is GET /ready: the store recovered in New; the node serves once it
// has a ring to route by.
func (b httpBackend) Ready() (bool, string) {
	n := b.n
	switch n.state.Load() {
	case stateReady:
		if c := n.cluster.Load(); c != nil && !c.members.Ready() {
			return false, notReadyReason(c)
		}
		return true, "ready"
	case stateStopping:
		return false, "shutting down"
	default:
		return false, "starting"
	}
}
