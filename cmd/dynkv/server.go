package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/dynkv/dynkv/node"
)

// serverCommand maps every `dynkv server` flag onto node.Config; this is
// the only place flags meet the config (STYLE habit 4). Defaults come from
// node.DefaultConfig, so `dynkv server` with no flags is a working one-node
// server and --help shows the real defaults.
func serverCommand(cfg *node.Config) *command {
	c := newCommand("server", "server [flags]",
		"Runs a dynkv node until SIGTERM or SIGINT, then drains in-flight requests and closes the store.\n"+
			"Every flag can also be given as the environment variable shown; a flag on the command line wins.")
	fs := c.fs
	fs.StringVar(&cfg.ID, "id", cfg.ID, "node `name`, unique in the cluster and stable across restarts")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "`directory` for the WAL, LevelDB and hints")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", cfg.HTTPAddr, "client HTTP API and node-to-node RPC `host:port`")
	fs.StringVar(&cfg.GossipAddr, "gossip-addr", cfg.GossipAddr, "memberlist gossip `host:port` (TCP and UDP)")
	fs.StringVar(&cfg.RESPAddr, "resp-addr", cfg.RESPAddr, "Redis protocol `host:port`; empty disables it")
	fs.IntVar(&cfg.RESPMaxConns, "resp-max-conns", cfg.RESPMaxConns, "open Redis-protocol connections at most; one more is refused")
	fs.Var(byteSize[int64]{&cfg.RESPMaxBufferBytes}, "resp-max-buffer-bytes", "memory, in `bytes`, that the Redis-protocol commands being read or executed may hold together (arguments, MGET values); a command beyond it gets -TRYAGAIN; at least 4 × --max-value-bytes + 1MiB (units allowed: 256MiB)")
	fs.StringVar(&cfg.AdvertiseAddr, "advertise-addr", cfg.AdvertiseAddr, "`host` peers should dial when a bind address is 0.0.0.0")
	fs.Var(listFlag{&cfg.Join}, "join", "comma-separated gossip `addresses` of existing members")
	fs.IntVar(&cfg.Replicas, "replicas", cfg.Replicas, "N: replicas of each key")
	fs.IntVar(&cfg.ReadQuorum, "read-quorum", cfg.ReadQuorum, "R: default replicas a read waits for")
	fs.IntVar(&cfg.WriteQuorum, "write-quorum", cfg.WriteQuorum, "W: default replicas a write waits for")
	fs.DurationVar(&cfg.JoinTimeout, "join-timeout", cfg.JoinTimeout, "how long joining keeps retrying the --join addresses before it gives up (at start the node then exits)")
	fs.IntVar(&cfg.Partitions, "partitions", cfg.Partitions, "virtual nodes of the ring; the same on every member")
	fs.DurationVar(&cfg.RequestTimeout, "request-timeout", cfg.RequestTimeout, "how long a client request waits for its R or W replicas before 503")
	fs.DurationVar(&cfg.BlindWriteHedge, "blind-write-hedge", cfg.BlindWriteHedge, "how long a write without a context waits for a peer while reading the key's context from R replicas before it asks the others too")
	fs.DurationVar(&cfg.RPCTimeout, "rpc-timeout", cfg.RPCTimeout, "timeout of one node-to-node call")
	fs.IntVar(&cfg.RPCMaxCalls, "rpc-max-calls", cfg.RPCMaxCalls, "node-to-node calls this node runs at once for one peer connection; announced to the peer, which queues the rest (members need not agree)")
	fs.Var(byteSize[int64]{&cfg.HandoffRate}, "handoff-rate", "`bytes` per second ownership handoff may send when the ring changes (units allowed: 8MiB)")
	fs.DurationVar(&cfg.HintInterval, "hint-interval", cfg.HintInterval, "how often held hints are offered to their owners once they are alive again")
	fs.DurationVar(&cfg.AAEInterval, "aae-interval", cfg.AAEInterval, "time between anti-entropy rounds; each compares every partition's hash-tree root with the other replicas and exchanges the differing ones")
	fs.Var(byteSize[int64]{&cfg.AAERate}, "aae-rate", "`bytes` per second anti-entropy may exchange (units allowed: 4MiB)")
	fs.DurationVar(&cfg.GossipProbeInterval, "gossip-probe-interval", cfg.GossipProbeInterval, "interval between failure-detector probes; 0 keeps memberlist's LAN default (1s)")
	fs.DurationVar(&cfg.GossipProbeTimeout, "gossip-probe-timeout", cfg.GossipProbeTimeout, "how long a probe waits for an ack; 0 keeps memberlist's LAN default (500ms)")
	fs.DurationVar(&cfg.GossipInterval, "gossip-interval", cfg.GossipInterval, "interval between gossip rounds; 0 keeps memberlist's LAN default (200ms)")
	fs.IntVar(&cfg.GossipSuspicionMult, "gossip-suspicion-mult", cfg.GossipSuspicionMult, "suspicion timeout multiplier before a member is declared dead; 0 keeps memberlist's LAN default (4)")
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "log `level`: debug, info, warn or error")
	fs.StringVar(&cfg.LogFormat, "log-format", cfg.LogFormat, "log `format`: json or console")
	fs.StringVar(&cfg.Fsync, "fsync", cfg.Fsync, "fsync `policy`: always (acknowledged means fsynced) or an interval such as 10ms")
	fs.Var(byteSize[int64]{&cfg.MaxValueBytes}, "max-value-bytes", "largest value a write accepts, in `bytes` (units allowed: 1MiB)")
	fs.IntVar(&cfg.Databases, "databases", cfg.Databases, "number of databases, numbered from 0")
	fs.DurationVar(&cfg.TombstoneGrace, "tombstone-grace", cfg.TombstoneGrace, "how long delete markers are kept once every replica holds them")
	fs.StringVar(&cfg.GossipKey, "gossip-key", cfg.GossipKey, "comma-separated base64 AES `keys` (16, 24 or 32 bytes) that encrypt gossip and sign node-to-node RPC; the first encrypts, every one decrypts (rotation)")
	fs.StringVar(&cfg.TLSCert, "tls-cert", cfg.TLSCert, "PEM certificate `file` for HTTP and the Redis protocol")
	fs.StringVar(&cfg.TLSKey, "tls-key", cfg.TLSKey, "PEM private key `file` for --tls-cert")
	fs.StringVar(&cfg.TLSCA, "tls-ca", cfg.TLSCA, "PEM CA bundle `file` for client certificates and mutual TLS between nodes")
	fs.Var(listFlag{&cfg.AuthTokens}, "auth-token", "comma-separated client bearer `tokens`; also the Redis AUTH password")
	fs.Var(byteSize[uint64]{&cfg.MinFreeBytes}, "min-free-bytes", "free disk space below which writes fail with 507, in `bytes`")
	fs.Var(byteSize[int64]{&cfg.SegmentSize}, "segment-size", "size at which the WAL starts a new segment, in `bytes`")
	fs.BoolVar(&cfg.WALRepair, "wal-repair", cfg.WALRepair, "start on a corrupt WAL by cutting it at the damage, losing what follows")
	fs.IntVar(&cfg.MaxInflight, "max-inflight", cfg.MaxInflight, "client requests served at once; beyond it the node answers 429")
	fs.DurationVar(&cfg.HTTPReadHeaderTimeout, "http-read-header-timeout", cfg.HTTPReadHeaderTimeout, "how long a client may take to send a request's headers")
	fs.DurationVar(&cfg.HTTPReadTimeout, "http-read-timeout", cfg.HTTPReadTimeout, "how long a client may take to send a whole request, body included")
	fs.DurationVar(&cfg.HTTPWriteTimeout, "http-write-timeout", cfg.HTTPWriteTimeout, "how long a client may take to receive a response")
	fs.DurationVar(&cfg.HTTPIdleTimeout, "http-idle-timeout", cfg.HTTPIdleTimeout, "how long an idle keep-alive HTTP connection is kept open")
	fs.Var(byteSize[int]{&cfg.HTTPMaxHeaderBytes}, "http-max-header-bytes", "largest request header the HTTP port reads, in `bytes` (units allowed: 64KiB)")
	fs.DurationVar(&cfg.HTTPLingerTimeout, "http-linger-timeout", cfg.HTTPLingerTimeout, "how long the node keeps reading and discarding a body it refused with 413 so that the client can read the answer; 0 closes at once")
	fs.Var(byteSize[int64]{&cfg.HTTPLingerBytes}, "http-linger-bytes", "most `bytes` of a body refused with 413 the node reads and discards before it closes; 0 means 4 times --max-value-bytes, at least 4MiB (units allowed: 16MiB)")
	fs.IntVar(&cfg.HTTPMaxConns, "http-max-conns", cfg.HTTPMaxConns, "open HTTP connections at most, clients and peers together; one more gets 429 and is closed")
	fs.IntVar(&cfg.HTTP2MaxStreams, "http2-max-streams", cfg.HTTP2MaxStreams, "concurrent requests on one HTTP/2 connection: clients', and node-to-node calls from and to nodes of older versions during a rolling upgrade (those ran with one value on every member); current members do not use HTTP/2 between them")
	fs.DurationVar(&cfg.RESPIdleTimeout, "resp-idle-timeout", cfg.RESPIdleTimeout, "close a Redis-protocol connection idle this long; 0 keeps it open (Redis's timeout 0)")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "how long shutdown waits for in-flight requests")
	fs.DurationVar(&cfg.ReclaimInterval, "reclaim-interval", cfg.ReclaimInterval, "how often expired values and old tombstones are dropped")
	fs.DurationVar(&cfg.CheckpointInterval, "checkpoint-interval", cfg.CheckpointInterval, "how often LevelDB is checkpointed and absorbed WAL segments released")
	fs.BoolVar(&cfg.Pprof, "pprof", cfg.Pprof, "serve Go's profiler under /debug/pprof/ on the HTTP port (behind --auth-token)")
	return c
}

// parseServerConfig turns the command line and environment into a
// validated node.Config. Every failure is a usage error.
func parseServerConfig(args []string, env func(string) string, stdout io.Writer) (node.Config, error) {
	cfg := node.DefaultConfig()
	cmd := serverCommand(&cfg)
	pos, err := cmd.parse(args, env, stdout)
	if err != nil {
		return cfg, err
	}
	if len(pos) > 0 {
		return cfg, usagef("server: unexpected argument %q (flags start with --)", pos[0])
	}
	if err := cfg.Validate(); err != nil {
		return cfg, usagef("%s", oneLine(err.Error()))
	}
	return cfg, nil
}

// runServer runs a node until ctx is done or the node dies on its own (exit
// 3 then), then shuts it down within --shutdown-timeout. started, when not nil, learns the bound HTTP address.
func runServer(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer, started func(addr string)) int {
	cfg, err := parseServerConfig(args, env, stdout)
	if err != nil {
		return report(stderr, err)
	}
	log, err := newLogger(cfg, stderr)
	if err != nil {
		return report(stderr, usagef("%v", err))
	}
	defer func() { _ = log.Sync() }()

	cfg.Version = buildVersion()
	n, err := node.New(cfg, log)
	if err != nil {
		log.Error("cannot open node", zap.Error(err))
		return report(stderr, fmt.Errorf("server: %w", err))
	}
	if err := n.Start(); err != nil {
		log.Error("cannot start node", zap.Error(err))
		// New opened the store; close it so the WAL ends cleanly.
		if serr := n.Shutdown(context.Background()); serr != nil {
			log.Warn("closing after a failed start", zap.Error(serr))
		}
		return report(stderr, fmt.Errorf("server: %w", err))
	}
	if started != nil {
		started(n.Addr())
	}
	var died error
	select {
	case <-ctx.Done():
	case err, ok := <-n.Done():
		died = err
		if !ok || died == nil {
			died = errors.New("node stopped serving")
		}
		log.Error("node stopped on its own; shutting down", zap.Error(died))
	}
	log.Info("shutting down", zap.Duration("timeout", cfg.ShutdownTimeout))
	// Shutdown bounds itself by ShutdownTimeout; the fresh context keeps
	// the already-cancelled ctx from cutting the drain short.
	if err := n.Shutdown(context.Background()); err != nil {
		log.Error("shutdown was not clean", zap.Error(err))
		return report(stderr, fmt.Errorf("server: %w", err))
	}
	if died != nil {
		return report(stderr, fmt.Errorf("server: %w", died))
	}
	log.Info("stopped")
	return exitOK
}

// newLogger builds the zap logger that --log-level and --log-format ask
// for, writing to w (stderr) so that tests can read what an operator sees.
func newLogger(cfg node.Config, w io.Writer) (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(cfg.LogLevel)
	if err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", cfg.LogLevel, err)
	}
	var enc zapcore.Encoder
	switch cfg.LogFormat {
	case "json":
		enc = zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	case "console":
		enc = zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig())
	default:
		return nil, fmt.Errorf("--log-format %q: want json or console", cfg.LogFormat)
	}
	out := zapcore.Lock(zapcore.AddSync(w))
	core := zapcore.NewCore(enc, out, level)
	return zap.New(core, zap.AddCaller(), zap.ErrorOutput(out)).With(zap.String("node", cfg.ID)), nil
}

// oneLine folds a multi-line error (errors.Join) into the one line SPEC
// section 2 promises on stderr.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }), "; ")
}
