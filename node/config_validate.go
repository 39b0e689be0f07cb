package node

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dynkv/dynkv/node/httpapi"
	"github.com/dynkv/dynkv/node/resp"
	"github.com/dynkv/dynkv/wal"
	"go.uber.org/zap/zapcore"
)

// Validate reports every problem of c at once, each naming the flag to fix.
// Each group of fields checks itself; Validate joins what they report, in
// the order of the fields.
func (c Config) Validate() error {
	errs := slices.Concat(
		c.validateAddrs(),
		c.validateQuorums(),
		c.validateCluster(),
		c.validateLogging(),
		c.validateData(),
		c.validateSecurity(),
		c.validateServer(),
	)
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("node: invalid configuration: %w", errors.Join(errs...))
}

// validateAddrs checks addresses: the node's identity, its listeners (the Redis protocol's limits with its address) and the cluster to join.
func (c Config) validateAddrs() []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}
	if strings.TrimSpace(c.ID) == "" {
		bad("--id must not be empty: give this node a name unique in the cluster")
	}
	if c.DataDir == "" {
		bad("--data-dir must not be empty")
	}
	if err := checkHostPort(c.HTTPAddr); err != nil {
		bad("--http-addr %q: %w", c.HTTPAddr, err)
	}
	if err := checkHostPort(c.GossipAddr); err != nil {
		bad("--gossip-addr %q: %w", c.GossipAddr, err)
	}
	if c.RESPAddr != "" {
		if err := checkHostPort(c.RESPAddr); err != nil {
			bad("--resp-addr %q: %w (leave it empty to disable the Redis protocol)", c.RESPAddr, err)
		}
	}
	if c.RESPMaxConns < 1 {
		bad("--resp-max-conns is %d: want at least 1", c.RESPMaxConns)
	}
	if largest := resp.MaxCommandBytes(c.MaxValueBytes); c.RESPMaxBufferBytes < largest {
		bad("--resp-max-buffer-bytes is %d: want at least %d, the largest Redis command (4 × --max-value-bytes + 1MiB)",
			c.RESPMaxBufferBytes, largest)
	}
	if strings.ContainsAny(c.AdvertiseAddr, " /") {
		bad("--advertise-addr %q: want a host name or IP address", c.AdvertiseAddr)
	}
	for _, j := range c.Join {
		if err := checkHostPort(j); err != nil {
			bad("--join %q: %w", j, err)
		}
	}
	return errs
}

// validateQuorums checks replication factor and quorums.
func (c Config) validateQuorums() []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}
	if c.Replicas < 1 {
		bad("--replicas is %d: want at least 1", c.Replicas)
	}
	if c.ReadQuorum < 1 || c.ReadQuorum > c.Replicas {
		bad("--read-quorum is %d: want 1 to --replicas (%d)", c.ReadQuorum, c.Replicas)
	}
	if c.WriteQuorum < 1 || c.WriteQuorum > c.Replicas {
		bad("--write-quorum is %d: want 1 to --replicas (%d)", c.WriteQuorum, c.Replicas)
	}
	return errs
}

// validateCluster checks the ring, the request path's timings and the background work between nodes (handoff, hints, anti-entropy, gossip).
func (c Config) validateCluster() []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}
	if c.Partitions < 1 || c.Partitions > maxPartitions {
		bad("--partitions is %d: want 1 to %d (the same on every member)", c.Partitions, maxPartitions)
	} else if c.Partitions < c.Replicas {
		bad("--partitions is %d: want at least --replicas (%d)", c.Partitions, c.Replicas)
	}
	if c.JoinTimeout <= 0 {
		bad("--join-timeout is %s: want a positive duration such as 10s", c.JoinTimeout)
	}
	if c.RequestTimeout <= 0 {
		bad("--request-timeout is %s: want a positive duration such as 5s", c.RequestTimeout)
	}
	if c.BlindWriteHedge <= 0 {
		bad("--blind-write-hedge is %s: want a positive duration such as 50ms", c.BlindWriteHedge)
	}
	if c.RPCTimeout <= 0 {
		bad("--rpc-timeout is %s: want a positive duration such as 2s", c.RPCTimeout)
	}
	if c.HandoffRate < 1 {
		bad("--handoff-rate is %d bytes/s: want a positive rate such as 8MiB", c.HandoffRate)
	}
	if c.HintInterval <= 0 {
		bad("--hint-interval is %s: want a positive duration such as 1s", c.HintInterval)
	}
	if c.AAEInterval <= 0 {
		bad("--aae-interval is %s: want a positive duration such as 10s", c.AAEInterval)
	}
	if c.AAERate < 1 {
		bad("--aae-rate is %d bytes/s: want a positive rate such as 4MiB", c.AAERate)
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{
		{"--gossip-probe-interval", c.GossipProbeInterval},
		{"--gossip-probe-timeout", c.GossipProbeTimeout},
		{"--gossip-interval", c.GossipInterval},
	} {
		if d.v < 0 {
			bad("%s is %s: want a positive duration, or 0 for memberlist's default", d.flag, d.v)
		}
	}
	if c.GossipProbeInterval > 0 && c.GossipProbeTimeout > c.GossipProbeInterval {
		bad("--gossip-probe-timeout (%s) is longer than --gossip-probe-interval (%s): a probe must end before the next starts",
			c.GossipProbeTimeout, c.GossipProbeInterval)
	}
	if c.GossipSuspicionMult < 0 {
		bad("--gossip-suspicion-mult is %d: want a positive number, or 0 for memberlist's default", c.GossipSuspicionMult)
	}
	return errs
}

// validateLogging checks logging and the WAL's fsync policy.
func (c Config) validateLogging() []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}
	if _, err := zapcore.ParseLevel(c.LogLevel); err != nil {
		bad("--log-level %q: want debug, info, warn or error", c.LogLevel)
	}
	if c.LogFormat != "json" && c.LogFormat != "console" {
		bad("--log-format %q: want json or console", c.LogFormat)
	}
	if _, err := wal.ParseSyncPolicy(c.Fsync); err != nil {
		bad("--fsync %q: want \"always\" or a duration such as 10ms: %w", c.Fsync, err)
	}
	return errs
}

// validateData checks the limits of the data served: values, databases, tombstones.
func (c Config) validateData() []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}
	if c.MaxValueBytes < 1 || c.MaxValueBytes > maxValueBytesLimit {
		bad("--max-value-bytes is %d: want 1 to %d", c.MaxValueBytes, maxValueBytesLimit)
	}
	if c.Databases < 1 || c.Databases > maxDatabases {
		bad("--databases is %d: want 1 to %d", c.Databases, maxDatabases)
	}
	if c.TombstoneGrace <= 0 {
		bad("--tombstone-grace is %s: want a positive duration such as 24h", c.TombstoneGrace)
	}
	return errs
}

// validateSecurity checks gossip keys, TLS and bearer tokens.
func (c Config) validateSecurity() []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}
	if _, err := c.GossipKeys(); err != nil {
		bad("%w", err)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		bad("--tls-cert and --tls-key go together: set both or neither")
	}
	if c.TLSCA != "" && c.TLSCert == "" {
		bad("--tls-ca needs --tls-cert and --tls-key: client certificates are only checked over TLS")
	}
	for i, t := range c.AuthTokens {
		if t == "" || strings.ContainsAny(t, " \t\r\n,") {
			bad("--auth-token: token %d is empty or contains a space or comma", i+1)
		}
	}
	return errs
}

// validateServer checks the store's and the servers' limits and timeouts.
func (c Config) validateServer() []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}
	if c.SegmentSize < minSegmentSize {
		bad("segment size is %d bytes: want at least %d", c.SegmentSize, minSegmentSize)
	}
	if c.MaxInflight < 1 {
		bad("--max-inflight is %d: want at least 1", c.MaxInflight)
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{
		{"--http-read-header-timeout", c.HTTPReadHeaderTimeout},
		{"--http-read-timeout", c.HTTPReadTimeout},
		{"--http-write-timeout", c.HTTPWriteTimeout},
		{"--http-idle-timeout", c.HTTPIdleTimeout},
	} {
		if d.v <= 0 {
			bad("%s is %s: want a positive duration", d.flag, d.v)
		}
	}
	if c.HTTPMaxHeaderBytes < 4<<10 || c.HTTPMaxHeaderBytes > 16<<20 {
		bad("--http-max-header-bytes is %d: want 4KiB to 16MiB (a key alone may take 3KiB percent-encoded)", c.HTTPMaxHeaderBytes)
	}
	if c.HTTPLingerTimeout < 0 || c.HTTPLingerTimeout > httpapi.MaxLingerTimeout {
		bad("--http-linger-timeout is %s: want 0 (close at once) to %s", c.HTTPLingerTimeout, httpapi.MaxLingerTimeout)
	}
	if c.HTTPLingerBytes < 0 || c.HTTPLingerBytes > httpapi.MaxLingerBytes {
		bad("--http-linger-bytes is %d: want 0 (4 times --max-value-bytes, at least 4MiB) to %d", c.HTTPLingerBytes, int64(httpapi.MaxLingerBytes))
	}
	if c.HTTPMaxConns < 1 {
		bad("--http-max-conns is %d: want at least 1", c.HTTPMaxConns)
	}
	if c.RPCMaxCalls < 1 || c.RPCMaxCalls > 1<<16 {
		bad("--rpc-max-calls is %d: want 1 to 65536", c.RPCMaxCalls)
	}
	if c.HTTP2MaxStreams < 1 || c.HTTP2MaxStreams > 1<<16 {
		bad("--http2-max-streams is %d: want 1 to 65536", c.HTTP2MaxStreams)
	}
	if c.RESPIdleTimeout < 0 {
		bad("--resp-idle-timeout is %s: want a positive duration, or 0 to keep idle connections", c.RESPIdleTimeout)
	}
	if c.ShutdownTimeout <= 0 {
		bad("shutdown timeout is %s: want a positive duration", c.ShutdownTimeout)
	}
	if c.ReclaimInterval <= 0 {
		bad("reclaim interval is %s: want a positive duration", c.ReclaimInterval)
	}
	if c.CheckpointInterval <= 0 {
		bad("checkpoint interval is %s: want a positive duration", c.CheckpointInterval)
	}
	return errs
}
