package node

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"runtime/debug"

	"github.com/dynkv/dynkv/coordinator"
	"github.com/dynkv/dynkv/node/internal/frontend"
	"github.com/dynkv/dynkv/node/resp"
	"github.com/dynkv/dynkv/vclock"
)

// listenRESP binds --resp-addr (TLS when --tls-cert is set) and makes the
// Redis-protocol server on it; Start starts it once the coordinator
// exists. It returns nil when the Redis protocol is disabled.
func (n *Node) listenRESP() (*resp.Server, error) {
	if n.cfg.RESPAddr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", n.cfg.RESPAddr)
	if err != nil {
		return nil, fmt.Errorf("node: listening on --resp-addr %s: %w", n.cfg.RESPAddr, err)
	}
	if n.tls != nil {
		ln = tls.NewListener(ln, n.tls)
	}
	return resp.New(ln, redisBackend{n}, resp.Config{
		Databases:      n.cfg.Databases,
		MaxValueBytes:  n.cfg.MaxValueBytes,
		MaxConns:       n.cfg.RESPMaxConns,
		IdleTimeout:    n.cfg.RESPIdleTimeout,
		MaxBufferBytes: n.cfg.RESPMaxBufferBytes,
		Info: resp.Info{
			NodeID:      n.cfg.ID,
			Version:     n.version(),
			Replicas:    n.cfg.Replicas,
			ReadQuorum:  n.cfg.ReadQuorum,
			WriteQuorum: n.cfg.WriteQuorum,
		},
		Shared: frontend.Shared{
			Tokens:  n.tokens,
			Guard:   n.auth,
			Metrics: n.metrics,
			Logger:  n.log.Named("resp"),
			Now:     n.cfg.now,
		},
	}), nil
}

// RESPAddr is the address the Redis protocol listens on: the bound one
// after Start (useful with port 0), the configured one before; empty when
// it is disabled.
func (n *Node) RESPAddr() string {
	if a := n.respAddr.Load(); a != nil {
		return *a
	}
	return n.cfg.RESPAddr
}

// version is the dynkv version: Config.Version as cmd/dynkv sets it, else
// the module version the binary was built from.
func (n *Node) version() string {
	if n.cfg.Version != "" {
		return n.cfg.Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "dev"
}

// redisBackend is the node as the Redis protocol sees it: the coordinator
// at the configured quorums, and the in-flight slots HTTP shares.
type redisBackend struct{ n *Node }

func (b redisBackend) Get(ctx context.Context, db int, key []byte) (vclock.Set, bool, error) {
	set, found, err := b.n.coordinatedGet(ctx, db, key, 0)
	return set, found, redisError(err)
}

func (b redisBackend) Put(ctx context.Context, db int, key []byte, vc vclock.Context, blind bool, sib vclock.Sibling) error {
	_, err := b.n.coordinatedPut(ctx, db, key, vc, blind, sib, 0)
	return redisError(err)
}

// redisError is err in the terms of the packages the Redis protocol
// knows: a node that is not yet in a cluster has no ring.
func redisError(err error) error {
	if err == errNotStarted {
		return coordinator.ErrNoRing
	}
	return err
}

func (b redisBackend) Acquire() (release func(), ok bool) { return b.n.acquire() }

func (b redisBackend) ClusterSize() int {
	if c := b.n.cluster.Load(); c != nil {
		if p := c.members.Placement(); p.Committed != nil {
			return len(p.Committed.Members())
		}
	}
	return 0
}
