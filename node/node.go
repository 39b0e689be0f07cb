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
	"time"

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

// Node is one dynkv server: a store and the HTTP API in front of it.
type Node struct {
	cfg      Config
	log      *zap.Logger
	store    *store.Store
	tls      *tls.Config
	handler  http.Handler
	srv      *http.Server
	inflight chan struct{} // a slot per request being served; full means shed load
	tokens   [][32]byte    // sha256 of each accepted bearer token
	state    atomic.Int32
	addr     atomic.Pointer[string] // bound address once listening

	// mu guards the lifecycle: Start and Shutdown may race when an
	// operator interrupts a node that is still starting.
	mu        sync.Mutex
	started   bool
	stopped   bool
	serveDone chan struct{} // closed when the serving goroutine returns
	stopErr   error

	// testHook, when set before the node serves, runs inside every key
	// request while it holds its in-flight slot, so tests can hold
	// requests open deterministically.
	testHook func(*http.Request)
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
		tokens:    hashTokens(cfg.AuthTokens),
		serveDone: make(chan struct{}),
	}
	if cfg.TLSCert != "" {
		tc, err := loadTLS(cfg)
		if err != nil {
			return nil, err
		}
		n.tls = tc
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
	})
	if err != nil {
		return nil, fmt.Errorf("node: opening store in %s: %w", cfg.DataDir, err)
	}
	n.handler = n.routes()
	return n, nil
}

// Start listens on HTTPAddr and serves in a goroutine that Shutdown stops.
// When it returns, Addr reports the bound address and /ready answers 200.
func (n *Node) Start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.started || n.stopped {
		return errors.New("node: Start called twice or after Shutdown")
	}
	ln, err := net.Listen("tcp", n.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("node: listening on --http-addr %s: %w", n.cfg.HTTPAddr, err)
	}
	errLog, err := zap.NewStdLogAt(n.log.Named("http"), zapcore.WarnLevel)
	if err != nil {
		ln.Close()
		return fmt.Errorf("node: http error log: %w", err)
	}
	n.srv = &http.Server{
		Handler:           n.handler,
		TLSConfig:         n.tls,
		ReadHeaderTimeout: 10 * time.Second,
		// Bounds a slow client uploading a body; a 1 MiB value over
		// a poor link still fits easily.
		ReadTimeout:    time.Minute,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 1 << 20,
		ErrorLog:       errLog,
	}
	bound := ln.Addr().String()
	n.addr.Store(&bound)
	n.started = true
	go n.serve(n.srv, ln)
	n.state.Store(stateReady)
	n.log.Info("node started", zap.String("http_addr", ln.Addr().String()),
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
	}
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
// or ShutdownTimeout runs out, then closes their connections), then closes
// the store so the WAL ends cleanly. Later calls return the first result.
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
		if err := n.srv.Shutdown(ctx); err != nil {
			n.log.Warn("in-flight requests did not finish in time; closing their connections", zap.Error(err))
			errs = append(errs, fmt.Errorf("node: draining HTTP: %w", err))
			_ = n.srv.Close()
		}
		<-n.serveDone
	}
	if err := n.store.Close(); err != nil {
		errs = append(errs, fmt.Errorf("node: closing store: %w", err))
	}
	n.stopErr = errors.Join(errs...)
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
		pem, err := os.ReadFile(cfg.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("node: reading --tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("node: --tls-ca %s holds no PEM certificate", cfg.TLSCA)
		}
		tc.ClientCAs = pool
		// Clients need not present a certificate yet; one that is
		// presented must chain to the CA. Required mutual TLS comes
		// with node-to-node RPC.
		tc.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return tc, nil
}
