package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/dynkv/dynkv/coordinator"
	"github.com/dynkv/dynkv/membership"
	"github.com/dynkv/dynkv/node/httpapi"
	"github.com/dynkv/dynkv/replication/antientropy"
	"github.com/dynkv/dynkv/replication/handoff"
	"github.com/dynkv/dynkv/replication/hints"
	"github.com/dynkv/dynkv/replication/rpc"
	"github.com/dynkv/dynkv/replication/rpc/transport"
	"github.com/dynkv/dynkv/vclock"
)

// cluster is the node's part of the cluster: its membership, the RPC that
// reaches its peers, the coordinator that serves client requests through
// them and the handoff worker that moves data when the ring changes. Start
// builds it once; Shutdown stops it once, after HTTP has drained.
type cluster struct {
	members    *membership.Membership
	rpc        *rpc.Client
	rpcServer  *rpc.Server  // its Stats, for metrics
	rpcHandler http.Handler // the HTTP/2 RPC, for peers of older versions
	// transport serves the node-to-node transport, upgraded from
	// HTTP/1.1 at transport.DefaultPath (handleInternal).
	transport *transport.Server
	// replicas reaches a node's copy of a key by node id: this node's
	// store for itself, the RPC client for the others. The coordinator,
	// hinted handoff, anti-entropy, ownership handoff and tombstone GC all
	// call replicas through it (the coordinator and anti-entropy with
	// their rooms' calls added: hints.Replicas, antientropy.RPCPeers).
	replicas *rpc.Replicas
	coord    *coordinator.Coordinator
	handoff  *handoff.Handoff
	hints    *hints.Delivery // hints.go
}

// alive reports whether the failure detector considers id alive.
func (c *cluster) alive(id string) bool { return c.members.Liveness(id) == membership.Alive }

// startCluster starts gossip, RPC, the coordinator and handoff. httpAddr is
// the address peers dial for RPC, already bound. On error everything it
// started is stopped again.
func (n *Node) startCluster(httpAddr string) (_ *cluster, err error) {
	keys, err := n.cfg.GossipKeys() // Validate already checked them
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	c := &cluster{}
	defer func() {
		if err != nil {
			_ = c.stop()
		}
	}()
	c.members, err = membership.New(membership.Config{
		NodeID:         n.cfg.ID,
		DataDir:        n.cfg.DataDir,
		BindAddr:       n.cfg.GossipAddr,
		AdvertiseAddr:  n.cfg.AdvertiseAddr,
		HTTPAddr:       httpAddr,
		Join:           n.cfg.Join,
		JoinTimeout:    n.cfg.JoinTimeout,
		Partitions:     n.cfg.Partitions,
		GossipKeys:     keys,
		ProbeInterval:  n.cfg.GossipProbeInterval,
		ProbeTimeout:   n.cfg.GossipProbeTimeout,
		GossipInterval: n.cfg.GossipInterval,
		SuspicionMult:  n.cfg.GossipSuspicionMult,
		Logger:         n.log.Named("membership"),
	})
	if err != nil {
		return nil, fmt.Errorf("node: starting membership on --gossip-addr %s: %w", n.cfg.GossipAddr, err)
	}
	authorize, ring, peerKeys, err := n.peerAuth(keys) // peerauth.go
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	c.rpc = rpc.NewClient(rpc.ClientConfig{
		Timeout:   n.cfg.RPCTimeout,
		TLS:       n.peerTLS,
		AuthToken: n.peerToken(),
		Keys:      ring,
		PeerKeys:  peerKeys,
		// Only for peers of older versions, called over HTTP/2: they
		// ran with this node's --http2-max-streams before the rolling
		// upgrade, and a call beyond their stream limit waits for a
		// slot here instead of in Go's HTTP/2 client (see
		// rpc.ClientConfig.MaxCallsPerPeer). The transport
		// keeps to each peer's own announced --rpc-max-calls.
		MaxCallsPerPeer: n.cfg.HTTP2MaxStreams,
		HTTP2Only:       n.olderRPC,
		Logger:          n.log.Named("rpc"),
	})
	ccfg := coordinator.Config{
		N:              n.cfg.Replicas,
		R:              n.cfg.ReadQuorum,
		W:              n.cfg.WriteQuorum,
		RequestTimeout: n.cfg.RequestTimeout,
		GatherHedge:    n.cfg.BlindWriteHedge,
		Logger:         n.log,
		Now:            n.cfg.now,
	}
	if err := ccfg.Validate(); err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	c.replicas = &rpc.Replicas{Self: n.cfg.ID, Store: n.store, Client: c.rpc, Members: c.members.Member}
	view := coordinator.RingCluster(c.members.Self(), c.members.Placement, c.alive)
	c.coord = coordinator.New(ccfg, view, hints.Replicas{Replicas: c.replicas}, n.store)
	srv := &rpc.Server{
		Store:      n.store,
		Coordinate: c.coord.CoordinateLocal,
		Authorize:  authorize,
		PeerKeys:   peerKeys,
		Logger:     n.log.Named("rpc"),
	}
	// The rooms serve their own calls: hints, and anti-entropy from the
	// trees the store feeds from the moment it opens.
	hints.Register(srv, n.store)
	antientropy.Register(srv, n.store, n.aae.trees)
	c.rpcServer = srv
	c.rpcHandler = srv.Handler()
	c.transport = &transport.Server{
		Handler: srv.ServeCall,
		// Mutual TLS or the bearer token, on the upgrade request;
		// the gossip keys in the handshake and on every frame.
		Keys:               ring,
		Authorize:          authorize,
		MaxConcurrentCalls: n.cfg.RPCMaxCalls,
		MaxFrameBytes:      rpc.MaxFrameBytes,
		Logger:             n.log.Named("rpc"),
	}
	c.handoff, err = handoff.New(handoff.Config{
		Self:       n.cfg.ID,
		Store:      n.store,
		Membership: c.members,
		Send:       c.replicas.MergeBatch,
		N:          n.cfg.Replicas,
		Rate:       n.cfg.HandoffRate,
		Logger:     n.log.Named("handoff"),
	})
	if err != nil {
		return nil, fmt.Errorf("node: ownership handoff: %w", err)
	}
	// Handoff's loop is owned by Close, not by a context: cluster.stop
	// ends it.
	if err := c.handoff.Start(context.Background()); err != nil {
		return nil, fmt.Errorf("node: starting ownership handoff: %w", err)
	}
	if c.hints, err = n.startHints(c); err != nil {
		return nil, fmt.Errorf("node: starting hinted handoff: %w", err)
	}
	return c, nil
}

// stop ends the cluster parts in dependency order: no new coordinated
// requests, no more data moving, then gossip (peers see the node die).
// It tolerates parts that never started.
func (c *cluster) stop() error {
	var errs []error
	if c.transport != nil {
		// Node.Shutdown drained it already (shutdownRPC); this ends what
		// is left, before the handlers' coordinator and store go.
		_ = c.transport.Close()
	}
	if c.coord != nil {
		if err := c.coord.Close(); err != nil {
			errs = append(errs, fmt.Errorf("node: closing coordinator: %w", err))
		}
	}
	if c.handoff != nil {
		c.handoff.Close()
	}
	if c.hints != nil {
		c.hints.Close()
	}
	if c.members != nil {
		if err := c.members.Shutdown(); err != nil {
			errs = append(errs, fmt.Errorf("node: stopping membership: %w", err))
		}
	}
	if c.rpc != nil {
		c.rpc.Close()
	}
	return errors.Join(errs...)
}

// shutdownRPC stops the transport taking peers' calls (new ones are
// refused unrun, so the peers send them elsewhere or hint them) and waits
// for those running, as http.Server.Shutdown does for the HTTP/2 RPC:
// net/http no longer tracks a connection it handed over.
func (c *cluster) shutdownRPC(ctx context.Context) error {
	if c.transport == nil {
		return nil
	}
	return c.transport.Shutdown(ctx)
}

// errNotStarted answers requests that need the cluster before Start.
var errNotStarted = httpapi.Error(http.StatusServiceUnavailable, "node is starting: not yet part of a cluster")

// clusterOrErr is the started cluster, or errNotStarted.
func (n *Node) clusterOrErr() (*cluster, error) {
	c := n.cluster.Load()
	if c == nil {
		return nil, errNotStarted
	}
	return c, nil
}

// coordinatedPut writes sib through the coordinator with quorum w (0: the
// configured default).
func (n *Node) coordinatedPut(ctx context.Context, db int, key []byte, vc vclock.Context, blind bool, sib vclock.Sibling, w int) (vclock.Context, error) {
	c, err := n.clusterOrErr()
	if err != nil {
		return vclock.Context{}, err
	}
	res, err := c.coord.Put(ctx, coordinator.WriteRequest{DB: db, Key: key, Context: vc, Blind: blind, Sibling: sib, W: w})
	return res.Context, err
}

// coordinatedGet reads a key through the coordinator with quorum r (0:
// the configured default). found is false when no replica holds the key.
func (n *Node) coordinatedGet(ctx context.Context, db int, key []byte, r int) (set vclock.Set, found bool, err error) {
	c, err := n.clusterOrErr()
	if err != nil {
		return vclock.Set{}, false, err
	}
	set, found, err = c.coord.Get(ctx, db, key, r)
	if err == nil && found {
		n.metrics.ObserveRead(set, n.cfg.now().UnixNano())
	}
	return set, found, err
}

// notReadyReason says why membership is not ready, for GET /ready.
func notReadyReason(c *cluster) string {
	self, _ := c.members.Member(c.members.Self())
	switch self.Status {
	case membership.StatusLeft:
		return "this node has left the cluster"
	case membership.StatusRemoved:
		return "this node was removed from the cluster"
	}
	return "joining: no committed ring seen yet"
}

// GossipAddr is the address peers join this node's gossip at: after Start
// the advertised, bound one (useful with port 0), before it the configured
// one.
func (n *Node) GossipAddr() string {
	if c := n.cluster.Load(); c != nil {
		if m, ok := c.members.Member(n.cfg.ID); ok && m.GossipAddr != "" {
			return m.GossipAddr
		}
	}
	return n.cfg.GossipAddr
}
