package node

import (
	"crypto/aes"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/dynkv/dynkv/coordinator"
	"github.com/dynkv/dynkv/internal/defaults"
	"github.com/dynkv/dynkv/membership"
	"github.com/dynkv/dynkv/node/httpapi"
	"github.com/dynkv/dynkv/node/resp"
	"github.com/dynkv/dynkv/replication/antientropy"
	"github.com/dynkv/dynkv/replication/handoff"
	"github.com/dynkv/dynkv/replication/hints"
	"github.com/dynkv/dynkv/replication/rpc"
	"github.com/dynkv/dynkv/store"
)

// Limits that Validate enforces. They exist so that a typo in a flag fails at
// start with a clear message instead of surfacing later as a strange error.
const (
	// MaxKeyBytes is the longest key the HTTP API accepts (SPEC section 3).
	MaxKeyBytes = store.MaxKeyLen
	// maxDatabases is bounded by the one-byte database number in the
	// store's key layout.
	maxDatabases = 256
	// maxValueBytesLimit keeps a value well below what one WAL record and
	// one LevelDB write can carry comfortably.
	maxValueBytesLimit = 256 << 20
	// maxPartitions is the most a ring state may carry; gossip refuses
	// more.
	maxPartitions = membership.MaxPartitions
	// minSegmentSize stops a WAL from rolling a new file every few records.
	minSegmentSize = 64 << 10
)

// Config holds every setting of one node. Every `dynkv server` flag of SPEC
// section 2 has a field here; cmd/dynkv maps flags and DYNKV_* environment
// variables onto it and nowhere else. Start from DefaultConfig: a zero
// Config does not validate.
type Config struct {
	// ID names this node in the cluster (--id). It is the vector-clock
	// actor of every write this node coordinates, so it must be unique and
	// stable across restarts.
	ID string

	// DataDir holds the WAL, LevelDB and (later) hints (--data-dir).
	DataDir string

	// HTTPAddr is the client HTTP API listen address (--http-addr). Port 0
	// picks a free port; Node.Addr reports the bound one.
	HTTPAddr string

	// GossipAddr is the memberlist address, TCP and UDP (--gossip-addr).
	GossipAddr string

	// RESPAddr is the Redis-protocol listen address (--resp-addr); empty
	// disables it. Port 0 picks a free port; Node.RESPAddr reports the
	// bound one. It serves TLS when TLSCert is set.
	RESPAddr string

	// RESPMaxConns bounds the open Redis-protocol connections
	// (--resp-max-conns); one more is told "max number of clients
	// reached" and closed, as Redis does.
	RESPMaxConns int

	// RESPMaxBufferBytes bounds the memory that every Redis-protocol
	// connection together holds in the commands it is reading or
	// executing (--resp-max-buffer-bytes): their arguments, each counted
	// with its bookkeeping, and the values an MGET gathers. A command
	// that does not fit is answered -TRYAGAIN. It must hold the largest
	// command, 4 × MaxValueBytes + 1 MiB.
	RESPMaxBufferBytes int64

	// AdvertiseAddr is the host peers should dial when a bind address is
	// 0.0.0.0 or empty (--advertise-addr): peers reach this node's HTTP
	// API (and RPC) at AdvertiseAddr plus the bound HTTP port, and its
	// gossip at AdvertiseAddr plus the gossip port.
	AdvertiseAddr string

	// Join lists gossip addresses of existing members (--join, comma
	// separated on the command line). The node joins them at start, as
	// POST /cluster/join would; a node with saved ring state rejoins its
	// cluster by gossip without it.
	Join []string

	// JoinTimeout is how long joining keeps retrying the --join addresses
	// (at start, or POST /cluster/join) before it gives up
	// (--join-timeout); a node that cannot join at start exits.
	JoinTimeout time.Duration

	// Partitions is the fixed number of virtual nodes of the ring
	// (--partitions). Every member must use the same value; a node
	// refuses to join a cluster with another one.
	Partitions int

	// RequestTimeout bounds how long a client request waits for its R or
	// W replicas before it answers 503 (--request-timeout).
	RequestTimeout time.Duration
	// BlindWriteHedge is how long a write without a context waits for a
	// peer's answer when it gathers the key's context from R replicas,
	// before it asks the remaining replicas too (--blind-write-hedge).
	BlindWriteHedge time.Duration
	// RPCTimeout bounds one node-to-node call (--rpc-timeout).
	RPCTimeout time.Duration
	// RPCMaxCalls bounds the node-to-node calls this node runs at once
	// for one peer connection of the transport (--rpc-max-calls). It is
	// announced to the peer, whose calls beyond it wait on the peer's side,
	// so members need not agree on it.
	RPCMaxCalls int
	// HandoffRate caps the bytes per second that ownership handoff sends
	// when the ring changes (--handoff-rate), so that moving data never
	// starves client requests.
	HandoffRate int64
	// HintInterval is the time between hinted-handoff delivery passes
	// (--hint-interval): hints for an owner that is alive again are
	// delivered within about this long (failed deliveries back off up to
	// 30s).
	HintInterval time.Duration
	// AAEInterval is the time between active anti-entropy rounds
	// (--aae-interval); a round fetches each live peer's partition roots
	// once and exchanges (up to a budget) the partitions whose roots
	// differ, repairing the keys that differ.
	AAEInterval time.Duration
	// AAERate caps the bytes per second anti-entropy exchanges (--aae-rate).
	AAERate int64

	// Gossip timing (--gossip-probe-interval, --gossip-probe-timeout,
	// --gossip-interval, --gossip-suspicion-mult). Zero keeps memberlist's
	// LAN defaults (1s, 500ms, 200ms, 4); tests shorten them so that a
	// dead member is noticed in well under a second.
	GossipProbeInterval time.Duration
	GossipProbeTimeout  time.Duration
	GossipInterval      time.Duration
	GossipSuspicionMult int

	// Replicas is N, the number of replicas of each key (--replicas).
	Replicas int
	// ReadQuorum is R, the default number of replicas a read waits for
	// (--read-quorum); a request's `r` query overrides it.
	ReadQuorum int
	// WriteQuorum is W, the default number of replicas a write waits for
	// (--write-quorum); a request's `w` query overrides it.
	WriteQuorum int

	// LogLevel is a zap level name: debug, info, warn, error (--log-level).
	LogLevel string
	// LogFormat is "json" or "console" (--log-format).
	LogFormat string

	// Fsync is "always" (an acknowledged write is fsynced) or a Go duration
	// such as "10ms" between background fsyncs (--fsync).
	Fsync string

	// MaxValueBytes is the largest value a PUT accepts (--max-value-bytes);
	// larger bodies get 413.
	MaxValueBytes int64

	// Databases is the number of databases, numbered 0..Databases-1
	// (--databases). /kv/... is database 0.
	Databases int

	// TombstoneGrace is how long a delete marker is kept before it is
	// reclaimed (--tombstone-grace). On a cluster it must outlast the
	// longest partition the operator expects to heal.
	TombstoneGrace time.Duration

	// GossipKey is a comma-separated list of base64 AES keys (16, 24 or
	// 32 bytes each) that encrypt gossip (--gossip-key); members without
	// them are not admitted. The first key encrypts what this node sends;
	// every key in the list decrypts what it receives, which is how keys
	// are rotated by rolling restarts (docs/operations.md). The keys are
	// also the cluster secret that signs node-to-node RPC (HMAC,
	// peerauth.go), with or without mutual TLS.
	GossipKey string

	// TLSCert and TLSKey are PEM files (--tls-cert, --tls-key). When both
	// are set the HTTP API serves TLS only.
	TLSCert string
	TLSKey  string
	// TLSCA is a PEM bundle (--tls-ca). When set, client certificates are
	// verified against it if a client presents one, node-to-node RPC calls
	// must present one (mutual TLS between nodes), and this node trusts it
	// when it dials its peers.
	TLSCA string

	// AuthTokens are the accepted client bearer tokens (--auth-token, comma
	// separated on the command line). When any is set, every HTTP request
	// except /health and /ready needs `Authorization: Bearer <token>`, and
	// every Redis command except AUTH, HELLO and QUIT needs AUTH with one
	// of them.
	AuthTokens []string

	// MinFreeBytes is the free space below which the store refuses writes
	// with 507 instead of filling the disk.
	MinFreeBytes uint64

	// SegmentSize is the size at which the WAL starts a new segment file.
	SegmentSize int64

	// WALRepair lets the node start on a WAL with a corrupt record by
	// cutting the log at that record, losing what follows. Off by default:
	// corruption stops the node with a message naming file and offset.
	WALRepair bool

	// MaxInflight bounds the client requests served at once. Beyond it the
	// node answers 429 at once rather than queueing: a queue only hides
	// overload until every request times out.
	MaxInflight int

	// HTTP server hardening (--http-read-header-timeout,
	// --http-read-timeout, --http-write-timeout, --http-idle-timeout,
	// --http-max-header-bytes): how long a client may take to send its
	// headers and its whole request, to receive its response, how long an
	// idle keep-alive connection is kept, and the largest request header.
	HTTPReadHeaderTimeout time.Duration
	HTTPReadTimeout       time.Duration
	HTTPWriteTimeout      time.Duration
	HTTPIdleTimeout       time.Duration
	HTTPMaxHeaderBytes    int
	// HTTPLingerTimeout and HTTPLingerBytes bound the lingering close of
	// an HTTP/1.1 connection whose request body is refused with 413
	// (--http-linger-timeout, --http-linger-bytes; lingering.go): after
	// the answer the node reads and discards at most HTTPLingerBytes more
	// of the body for at most HTTPLingerTimeout, so that a client that
	// sends its whole body before it reads gets the 413 rather than a
	// reset. A timeout of 0 closes at once; 0 bytes means 4 times
	// MaxValueBytes, at least 4 MiB.
	HTTPLingerTimeout time.Duration
	HTTPLingerBytes   int64
	// HTTPMaxConns bounds the open connections of the HTTP port, clients
	// and peers together (--http-max-conns); one more is answered 429
	// and closed.
	HTTPMaxConns int
	// HTTP2MaxStreams bounds the concurrent requests (streams) of one
	// HTTP/2 connection (--http2-max-streams): clients', and the HTTP/2
	// RPC of peers of older versions during a rolling upgrade. It also
	// bounds the calls this node has in flight to such a peer, which ran
	// with the same value before the upgrade; between current nodes the
	// transport needs no agreement (--rpc-max-calls).
	HTTP2MaxStreams int
	// RESPIdleTimeout closes a Redis-protocol connection idle this long
	// (--resp-idle-timeout); 0 never does, as Redis's "timeout 0".
	RESPIdleTimeout time.Duration

	// ShutdownTimeout bounds how long Shutdown waits for in-flight requests
	// before it closes their connections.
	ShutdownTimeout time.Duration

	// ReclaimInterval is how often the store drops expired values and
	// tombstones older than TombstoneGrace.
	ReclaimInterval time.Duration

	// CheckpointInterval is how often the store checkpoints LevelDB and
	// releases absorbed WAL segments.
	CheckpointInterval time.Duration

	// Pprof serves Go's profiler under /debug/pprof/ on the HTTP port
	// (--pprof), behind the bearer tokens when they are set. Off by
	// default: a profile exposes internals and costs CPU while it runs.
	Pprof bool

	// Version is the dynkv version INFO reports over the Redis protocol;
	// cmd/dynkv sets it. Empty: the module version of the build.
	Version string

	// Now is the clock for TTLs, Last-Modified and reclaiming. Nil means
	// time.Now; tests inject a fake one.
	Now func() time.Time
}

// Defaults of the fields whose zero value WithDefaults replaces. Those a
// component owns are the component's constants (coordinator, store); the
// ones below are the node's own.
const (
	DefaultDataDir               = "./data"
	DefaultHTTPAddr              = "127.0.0.1:8080"
	DefaultGossipAddr            = "127.0.0.1:7946"
	DefaultRESPAddr              = "127.0.0.1:6380"
	DefaultRESPMaxConns          = resp.DefaultMaxConns
	DefaultRESPMaxBufferBytes    = resp.DefaultMaxBufferBytes
	DefaultReplicas              = 3
	DefaultReadQuorum            = 2
	DefaultWriteQuorum           = 2
	DefaultPartitions            = 256
	DefaultJoinTimeout           = 10 * time.Second
	DefaultRPCTimeout            = rpc.DefaultTimeout
	DefaultRPCMaxCalls           = 256
	DefaultHintInterval          = hints.DefaultHintInterval
	DefaultLogLevel              = "info"
	DefaultLogFormat             = "console"
	DefaultFsync                 = "always"
	DefaultMaxValueBytes         = httpapi.DefaultMaxValueBytes
	DefaultSegmentSize           = 64 << 20
	DefaultMaxInflight           = 1024
	DefaultHTTPReadHeaderTimeout = 10 * time.Second
	DefaultHTTPReadTimeout       = time.Minute
	DefaultHTTPWriteTimeout      = time.Minute
	DefaultHTTPIdleTimeout       = 2 * time.Minute
	DefaultHTTPMaxHeaderBytes    = 64 << 10
	DefaultHTTPLingerTimeout     = 5 * time.Second
	DefaultHTTPMaxConns          = 4096
	DefaultHTTP2MaxStreams       = 250
	DefaultShutdownTimeout       = 10 * time.Second
)

// DefaultConfig returns the configuration of `dynkv server` with no flags:
// a one-node cluster with data under ./data. It is the zero Config after
// WithDefaults, with the Redis protocol on DefaultRESPAddr.
func DefaultConfig() Config {
	return Config{RESPAddr: DefaultRESPAddr}.WithDefaults()
}

// WithDefaults is c with every zero field that has a default set to it:
// the zero Config after WithDefaults, given a data directory, validates and
// serves a one-node cluster. The fields whose zero value means something
// stay as they are: RESPAddr (empty disables the Redis protocol), the
// gossip tunings (memberlist's defaults), HTTPLingerBytes (derived from
// --max-value-bytes), RESPIdleTimeout (keep idle connections) and the
// optional ones (AdvertiseAddr, Join, GossipKey, TLS, AuthTokens, ...).
// The ID defaults to the host name, else "localhost".
func (c Config) WithDefaults() Config {
	if c.ID == "" {
		id, err := os.Hostname()
		if err != nil || id == "" {
			// Validate rejects an empty ID; "localhost" keeps a default
			// config usable on the rare host without a name.
			id = "localhost"
		}
		c.ID = id
	}
	defaults.Set(&c.DataDir, DefaultDataDir)
	defaults.Set(&c.HTTPAddr, DefaultHTTPAddr)
	defaults.Set(&c.GossipAddr, DefaultGossipAddr)
	defaults.Set(&c.RESPMaxConns, DefaultRESPMaxConns)
	defaults.Set(&c.RESPMaxBufferBytes, DefaultRESPMaxBufferBytes)
	defaults.Set(&c.Replicas, DefaultReplicas)
	defaults.Set(&c.ReadQuorum, DefaultReadQuorum)
	defaults.Set(&c.WriteQuorum, DefaultWriteQuorum)
	defaults.Set(&c.Partitions, DefaultPartitions)
	defaults.Set(&c.JoinTimeout, DefaultJoinTimeout)
	defaults.Set(&c.RequestTimeout, coordinator.DefaultRequestTimeout)
	defaults.Set(&c.BlindWriteHedge, coordinator.DefaultGatherHedge)
	defaults.Set(&c.RPCTimeout, DefaultRPCTimeout)
	defaults.Set(&c.RPCMaxCalls, DefaultRPCMaxCalls)
	defaults.Set(&c.HandoffRate, handoff.DefaultRate)
	defaults.Set(&c.HintInterval, DefaultHintInterval)
	defaults.Set(&c.AAEInterval, antientropy.DefaultInterval)
	defaults.Set(&c.AAERate, antientropy.DefaultRate)
	defaults.Set(&c.LogLevel, DefaultLogLevel)
	defaults.Set(&c.LogFormat, DefaultLogFormat)
	defaults.Set(&c.Fsync, DefaultFsync)
	defaults.Set(&c.MaxValueBytes, DefaultMaxValueBytes)
	defaults.Set(&c.Databases, store.DefaultDatabases)
	defaults.Set(&c.TombstoneGrace, store.DefaultTombstoneGrace)
	defaults.Set(&c.MinFreeBytes, store.DefaultMinFreeBytes)
	defaults.Set(&c.SegmentSize, DefaultSegmentSize)
	defaults.Set(&c.MaxInflight, DefaultMaxInflight)
	defaults.Set(&c.HTTPReadHeaderTimeout, DefaultHTTPReadHeaderTimeout)
	defaults.Set(&c.HTTPReadTimeout, DefaultHTTPReadTimeout)
	defaults.Set(&c.HTTPWriteTimeout, DefaultHTTPWriteTimeout)
	defaults.Set(&c.HTTPIdleTimeout, DefaultHTTPIdleTimeout)
	defaults.Set(&c.HTTPMaxHeaderBytes, DefaultHTTPMaxHeaderBytes)
	defaults.Set(&c.HTTPLingerTimeout, DefaultHTTPLingerTimeout)
	defaults.Set(&c.HTTPMaxConns, DefaultHTTPMaxConns)
	defaults.Set(&c.HTTP2MaxStreams, DefaultHTTP2MaxStreams)
	defaults.Set(&c.ShutdownTimeout, DefaultShutdownTimeout)
	defaults.Set(&c.ReclaimInterval, store.DefaultReclaimInterval)
	defaults.Set(&c.CheckpointInterval, store.DefaultCheckpointInterval)
	return c
}

// GossipKeys decodes --gossip-key: nil when it is empty, otherwise every
// key of the comma-separated list in order (the first is the primary).
func (c Config) GossipKeys() ([][]byte, error) {
	if c.GossipKey == "" {
		return nil, nil
	}
	var keys [][]byte
	for i, k := range strings.Split(c.GossipKey, ",") {
		k = strings.TrimSpace(k)
		key, err := base64.StdEncoding.DecodeString(k)
		if err != nil {
			return nil, fmt.Errorf("--gossip-key: key %d is not valid base64: %w", i+1, err)
		}
		if _, err := aes.NewCipher(key); err != nil {
			return nil, fmt.Errorf("--gossip-key: key %d decodes to %d bytes: want 16, 24 or 32 (an AES key)", i+1, len(key))
		}
		keys = append(keys, key)
	}
	return keys, nil
}

// NewLogger builds the zap logger that LogLevel and LogFormat describe, for
// cmd/dynkv to pass to New.
func (c Config) NewLogger() (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(c.LogLevel)
	if err != nil {
		return nil, fmt.Errorf("node: --log-level %q: %w", c.LogLevel, err)
	}
	var zc zap.Config
	switch c.LogFormat {
	case "json":
		zc = zap.NewProductionConfig()
	case "console":
		zc = zap.NewDevelopmentConfig()
		// Development mode turns warnings into stack traces and
		// DPanic into a crash; an operator wants neither.
		zc.Development = false
	default:
		return nil, fmt.Errorf("node: --log-format %q: want json or console", c.LogFormat)
	}
	zc.Level = zap.NewAtomicLevelAt(level)
	log, err := zc.Build()
	if err != nil {
		return nil, fmt.Errorf("node: building logger: %w", err)
	}
	return log.With(zap.String("node", c.ID)), nil
}

func (c Config) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func checkHostPort(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("want host:port such as 127.0.0.1:8080: %w", err)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port %q: want a number from 0 to 65535", port)
	}
	return nil
}
