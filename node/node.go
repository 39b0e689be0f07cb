package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"

	"github.com/dynkv/dynkv/node/httpapi"
	"github.com/dynkv/dynkv/node/internal/authguard"
	"github.com/dynkv/dynkv/node/metrics"
	"github.com/dynkv/dynkv/node/resp"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/dynkv/dynkv/store"
	"github.com/dynkv/dynkv/wal"
)

// Readiness states reported by GET /ready.
const (
	stateStarting int32 = iota
	stateReady
	stateStopping
)

// Node is one dynkv server: a store, its place in the cluster and the HTTP
// API in front of both.
type Node struct {
	cfg      Config
	log      *zap.Logger
	store    *store.Store
	tls      *tls.Config // server side; nil without --tls-cert
	peerTLS  *tls.Config // client side of node-to-node RPC; nil without --tls-cert
	handler  http.Handler
	srv      *http.Server
	inflight chan struct{}    // a slot per request being served; full means shed load
	tokens   authguard.Tokens // sha256 of each accepted bearer token
	metrics  *metrics.Metrics
	auth     *authguard.Guard // delays, throttles and logs failed client authentications (node/internal/authguard)
	state    atomic.Int32
	addr     atomic.Pointer[string] // bound address once listening
	// resp serves the Redis protocol; nil when --resp-addr is empty.
	// Set by Start under mu.
	resp     *resp.Server
	respAddr atomic.Pointer[string] // bound Redis-protocol address once listening

	// gc decides when tombstones may go (gc.go).
	gc tombstoneGC

	// aae is active anti-entropy (aae.go): hash trees the store feeds
	// from New on, and exchanges while the node is in a cluster.
	aae aaeState

	// cluster is set once by Start before the node reports ready, and
	// read by handlers without a lock; nil until then.
	cluster atomic.Pointer[cluster]
	// done receives the reason the node stopped serving on its own (the
	// HTTP server failed), once; Shutdown closes it without a value.
	done     chan error
	doneOnce sync.Once

	// mu guards the lifecycle: Start and Shutdown may race when an
	// operator interrupts a node that is still starting.
	mu        sync.Mutex
	tried     bool // Start ran, even if it failed: serveDone is single-use
	started   bool
	stopped   bool
	serveDone chan struct{} // closed when the serving goroutine returns
	stopErr   error

	// testHook, when set before the node serves, runs inside every key
	// request while it holds its in-flight slot, so tests can hold
	// requests open deterministically.
	testHook func(*http.Request)
	// olderRPC, when set before Start, makes the node speak node-to-node
	// RPC as a node of an older version does: HTTP/2 only, its transport
	// path answered with 404. For tests of a rolling upgrade.
	olderRPC bool
}

// New validates cfg, opens (and so recovers) the store and prepares the
// HTTP API. Nothing listens until Start. log should carry the node id, as
// Config.NewLogger's does; a nil log discards logging.
func New(cfg Config, log *zap.Logger) (*Node, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Node{
		cfg:       cfg,
		log:       log,
		inflight:  make(chan struct{}, cfg.MaxInflight),
		tokens:    authguard.HashTokens(cfg.AuthTokens),
		serveDone: make(chan struct{}),
		done:      make(chan error, 1),
	}
	n.metrics = metrics.New(&nodeCollector{n: n})
	n.auth = authguard.New(log.Named("auth"), &n.metrics.Limits)
	if cfg.TLSCert != "" {
		tc, err := loadTLS(cfg)
		if err != nil {
			return nil, err
		}
		n.tls = tc
		if n.peerTLS, err = peerTLSConfig(cfg, tc); err != nil {
			return nil, err
		}
	}
	// Validate already parsed it; this cannot fail.
	policy, err := wal.ParseSyncPolicy(cfg.Fsync)
	if err != nil {
		return nil, fmt.Errorf("node: --fsync %q: %w", cfg.Fsync, err)
	}
	n.store, err = store.Open(store.Options{
		Dir:                cfg.DataDir,
		Databases:          cfg.Databases,
		SegmentSize:        cfg.SegmentSize,
		Sync:               policy,
		Repair:             cfg.WALRepair,
		TombstoneGrace:     cfg.TombstoneGrace,
		MinFreeBytes:       cfg.MinFreeBytes,
		ReclaimInterval:    cfg.ReclaimInterval,
		CheckpointInterval: cfg.CheckpointInterval,
		Now:                cfg.now,
		Logger:             log.Named("store"),
		OnChange:           n.aae.init(cfg.Partitions),
		CanDropTombstone:   n.canDropTombstone,
		WALObserver:        n.metrics,
	})
	if err != nil {
		if errors.Is(err, wal.ErrCorrupt) && !cfg.WALRepair {
			// SPEC section 6: the node stops, and the message says how
			// to start it anyway and what that costs.
			return nil, fmt.Errorf("node: opening store in %s: %w (to start anyway, cutting the log at the damage and losing the records after it, run once with --wal-repair; copy %s first to keep them)",
				cfg.DataDir, err, cfg.DataDir)
		}
		return nil, fmt.Errorf("node: opening store in %s: %w", cfg.DataDir, err)
	}
	n.handler = n.routes()
	return n, nil
}

// Start brings the node into its cluster and serves: it listens on
// HTTPAddr first, so that the address peers are told (the bound port when
// HTTPAddr has port 0) is the real one, then starts gossip membership
// (joining Config.Join), node-to-node RPC, the coordinator and ownership
// handoff, and finally serves HTTP in a goroutine that Shutdown stops. When
// it returns, Addr reports the bound address; /ready answers 200 once the
// node is part of a ring.
func (n *Node) Start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.tried || n.stopped {
		return errors.New("node: Start called twice or after Shutdown")
	}
	n.tried = true
	ln, err := net.Listen("tcp", n.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("node: listening on --http-addr %s: %w", n.cfg.HTTPAddr, err)
	}
	errLog, err := zap.NewStdLogAt(n.log.Named("http"), zapcore.WarnLevel)
	if err != nil {
		ln.Close()
		return fmt.Errorf("node: http error log: %w", err)
	}
	bound := ln.Addr().String()
	advertised, err := advertisedHTTPAddr(bound, n.cfg.AdvertiseAddr)
	if err != nil {
		ln.Close()
		return err
	}
	resp, err := n.listenRESP()
	if err != nil {
		ln.Close()
		return err
	}
	// Peers' RPC shares the client port: HTTP/1.1 upgraded to the
	// node-to-node transport; for peers of older versions HTTP/2 with
	// prior knowledge (h2c) on a plain listener, h2 negotiated by ALPN
	// under TLS.
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	protocols.SetHTTP2(true)
	srv := &http.Server{
		Handler:   n.handler,
		TLSConfig: n.tls,
		Protocols: &protocols,
		// Slowloris: a client gets --http-read-header-timeout to send
		// its headers and --http-read-timeout for the whole request.
		ReadHeaderTimeout: n.cfg.HTTPReadHeaderTimeout,
		ReadTimeout:       n.cfg.HTTPReadTimeout,
		// Peers' connections upgraded to the node-to-node transport
		// leave net/http's hands: the transport clears the deadlines
		// armed here and keeps its own (replication/rpc/transport), so
		// none of these timeouts cuts them.
		//
		// Under HTTP/1.1 WriteTimeout is a deadline on the connection
		// from the end of a request's headers to the end of its
		// response. Under HTTP/2 (older peers' h2c or h2, and HTTP/2
		// clients) net/http disarms the connection's write deadline
		// and applies WriteTimeout (and ReadTimeout) to each stream
		// instead (h2_bundle.go, serverConn.serve and newStream): a
		// long-lived peer connection is never cut by it, only a single
		// call that runs longer. Every node-to-node call is one unary
		// request bounded by --rpc-timeout (default 2s), and the
		// largest, a 64 MiB handoff or hint frame (replication.
		// MaxFrameBytes), is a request body, read at loopback or LAN
		// speed in well under the default minute; responses are small.
		// An operator who lowers --http-write-timeout below
		// --rpc-timeout shortens peers' calls too.
		WriteTimeout:   n.cfg.HTTPWriteTimeout,
		IdleTimeout:    n.cfg.HTTPIdleTimeout,
		MaxHeaderBytes: n.cfg.HTTPMaxHeaderBytes,
		// Memory per HTTP/2 connection: at most --http2-max-streams
		// requests at once (each in-flight client request still takes
		// an in-flight slot; peers' calls are bounded by their own
		// senders), a flow-control window of 1 MiB per connection and
		// per stream (data a peer may send before the handlers read
		// it; a 64 MiB RPC frame streams through the window, it need
		// not fit in it), frames of at most 1 MiB, the default 4 KiB
		// header compression tables (MaxHeaderBytes bounds a decoded
		// header list), and a connection that accepts no bytes for
		// --http-write-timeout is closed.
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams:          n.cfg.HTTP2MaxStreams,
			MaxReadFrameSize:              1 << 20,
			MaxReceiveBufferPerConnection: 1 << 20,
			MaxReceiveBufferPerStream:     1 << 20,
			WriteByteTimeout:              n.cfg.HTTPWriteTimeout,
		},
		ErrorLog: errLog,
	}
	// --http-max-conns: connections beyond it are answered 429 and
	// closed without ever reaching the server (node/httpapi/connlimit.go).
	ln = httpapi.LimitConns(ln, n.cfg.HTTPMaxConns, n.tls != nil, n.metrics, n.log.Named("http"))
	n.addr.Store(&bound)
	// Serve before joining: /health answers and peers that already see
	// this node get a quick 503 instead of a stalled connection while
	// membership joins (up to its join timeout).
	go n.serve(srv, ln)
	c, err := n.startCluster(advertised)
	if err != nil {
		_ = srv.Close()
		<-n.serveDone
		if resp != nil {
			_ = resp.Stop(context.Background())
		}
		return err
	}
	n.cluster.Store(c)
	if err := n.aae.start(n, c); err != nil {
		n.log.Error("active anti-entropy not started", zap.Error(err))
	}
	if resp != nil {
		respBound := resp.Addr()
		n.respAddr.Store(&respBound)
		n.resp = resp
		resp.Start()
	}
	n.srv = srv
	n.started = true
	n.state.Store(stateReady)
	n.log.Info("node started", zap.String("http_addr", bound), zap.String("advertised_http_addr", advertised),
		zap.String("gossip_addr", n.cfg.GossipAddr), zap.String("resp_addr", n.RESPAddr()), zap.Strings("join", n.cfg.Join),
		zap.Bool("tls", n.tls != nil), zap.Bool("auth", len(n.tokens) > 0), zap.String("data_dir", n.cfg.DataDir))
	return nil
}

func (n *Node) serve(srv *http.Server, ln net.Listener) {
	defer close(n.serveDone)
	var err error
	if srv.TLSConfig != nil {
		err = srv.ServeTLS(ln, "", "")
	} else {
		err = srv.Serve(ln)
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		n.log.Error("http server stopped", zap.Error(err))
		n.finish(fmt.Errorf("node: http server on %s stopped: %w", ln.Addr(), err))
	}
}

// finish reports why the node stopped to Done's reader, once.
func (n *Node) finish(err error) {
	n.doneOnce.Do(func() {
		if err != nil {
			n.done <- err
		}
		close(n.done)
	})
}

// Done is closed when the node stops serving. It yields an error first
// when the node stopped on its own (its HTTP server failed), so that the
// process can exit non-zero; after Shutdown it is closed without one.
func (n *Node) Done() <-chan error { return n.done }

// advertisedHTTPAddr is the address peers dial for RPC: the bound address,
// or, when it binds every interface, the --advertise-addr host (else the
// host name) with the bound port.
func advertisedHTTPAddr(bound, advertise string) (string, error) {
	host, port, err := net.SplitHostPort(bound)
	if err != nil {
		return "", fmt.Errorf("node: bound HTTP address %q: %w", bound, err)
	}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		return bound, nil
	}
	if advertise == "" {
		// Peers resolve the host name as they would --advertise-addr;
		// setting the flag avoids depending on that.
		h, err := os.Hostname()
		if err != nil || h == "" {
			return "", fmt.Errorf("node: --http-addr %s binds every interface and the host has no name: set --advertise-addr", bound)
		}
		advertise = h
	}
	return net.JoinHostPort(advertise, port), nil
}

// Addr is the address the HTTP API listens on: the bound one after Start
// (useful with port 0), the configured one before.
func (n *Node) Addr() string {
	// Not under mu: Shutdown holds it while draining.
	if a := n.addr.Load(); a != nil {
		return *a
	}
	return n.cfg.HTTPAddr
}

// Handler is the node's HTTP API, for tests and for embedding it in another
// server.
func (n *Node) Handler() http.Handler { return n.handler }

// Shutdown stops accepting requests, lets in-flight ones finish (until ctx
// or ShutdownTimeout runs out, then closes their connections), stops the
// coordinator, handoff and gossip (this node is then seen as dead, not as
// leaving: leaving is POST /cluster/leave), then closes the store so the
// WAL ends cleanly. Later calls return the first result.
func (n *Node) Shutdown(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopped {
		return n.stopErr
	}
	n.stopped = true
	n.state.Store(stateStopping)
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ShutdownTimeout)
	defer cancel()

	var errs []error
	if n.started {
		if n.resp != nil {
			if err := n.resp.Stop(ctx); err != nil {
				n.log.Warn("Redis-protocol commands did not finish in time; closed their connections", zap.Error(err))
				errs = append(errs, err)
			}
		}
		// Peers' calls on the transport drain alongside HTTP (which
		// no longer tracks those connections).
		rpcDone := make(chan error, 1)
		if c := n.cluster.Load(); c != nil {
			go func() { rpcDone <- c.shutdownRPC(ctx) }()
		} else {
			rpcDone <- nil
		}
		if err := n.srv.Shutdown(ctx); err != nil {
			n.log.Warn("in-flight requests did not finish in time; closing their connections", zap.Error(err))
			errs = append(errs, fmt.Errorf("node: draining HTTP: %w", err))
			_ = n.srv.Close()
		}
		<-n.serveDone
		if err := <-rpcDone; err != nil {
			n.log.Warn("node-to-node calls did not finish in time; closed their connections", zap.Error(err))
			errs = append(errs, fmt.Errorf("node: draining node-to-node calls: %w", err))
		}
	}
	n.aae.stop()
	if c := n.cluster.Load(); c != nil {
		errs = append(errs, c.stop())
	}
	if err := n.store.Close(); err != nil {
		errs = append(errs, fmt.Errorf("node: closing store: %w", err))
	}
	n.stopErr = errors.Join(errs...)
	n.finish(nil)
	n.log.Info("node stopped", zap.Error(n.stopErr))
	return n.stopErr
}

func loadTLS(cfg Config) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("node: loading --tls-cert %s and --tls-key %s: %w", cfg.TLSCert, cfg.TLSKey, err)
	}
	tc := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
	}
	if cfg.TLSCA != "" {
		pool, err := loadCA(cfg.TLSCA)
		if err != nil {
			return nil, err
		}
		tc.ClientCAs = pool
		// Clients need not present a certificate; one that is
		// presented must chain to the CA. Node-to-node RPC demands one
		// (authorizePeer): the port is shared with clients.
		tc.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return tc, nil
}

// peerTLSConfig is the client side of node-to-node TLS: it trusts --tls-ca
// (the system roots without it) and presents this node's certificate, which
// peers configured with --tls-ca verify.
func peerTLSConfig(cfg Config, server *tls.Config) (*tls.Config, error) {
	tc := &tls.Config{
		Certificates: server.Certificates,
		MinVersion:   tls.VersionTLS12,
	}
	if cfg.TLSCA != "" {
		pool, err := loadCA(cfg.TLSCA)
		if err != nil {
			return nil, err
		}
		tc.RootCAs = pool
	}
	return tc, nil
}

// loadCA reads the --tls-ca bundle: the CA that signs client certificates
// (server side) and peers' certificates (node-to-node client side).
func loadCA(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("node: reading --tls-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("node: --tls-ca %s holds no PEM certificate", path)
	}
	return pool, nil
}
