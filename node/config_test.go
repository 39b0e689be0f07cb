package node

import (
	"strings"
	"testing"
	"time"
)

func TestDefaultConfigIsAValidOneNodeServer(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v, want nil", err)
	}
	if c.ID == "" || c.DataDir != "./data" || c.HTTPAddr != "127.0.0.1:8080" || c.GossipAddr != "127.0.0.1:7946" ||
		c.RESPAddr != "127.0.0.1:6380" || c.Replicas != 3 || c.ReadQuorum != 2 || c.WriteQuorum != 2 ||
		c.Fsync != "always" || c.MaxValueBytes != 1<<20 || c.Databases != 16 || c.TombstoneGrace != 24*time.Hour ||
		c.LogLevel != "info" || c.LogFormat != "console" || c.MaxInflight != 1024 || c.ShutdownTimeout != 10*time.Second ||
		c.MinFreeBytes != 64<<20 || c.SegmentSize != 64<<20 {
		t.Fatalf("DefaultConfig() = %+v, does not match SPEC section 2", c)
	}
	if _, err := c.NewLogger(); err != nil {
		t.Fatalf("NewLogger on defaults: %v", err)
	}
}

func TestValidateNamesTheFlagToFix(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"empty id", func(c *Config) { c.ID = " " }, "--id"},
		{"empty data dir", func(c *Config) { c.DataDir = "" }, "--data-dir"},
		{"http addr without port", func(c *Config) { c.HTTPAddr = "localhost" }, "--http-addr"},
		{"http port out of range", func(c *Config) { c.HTTPAddr = "127.0.0.1:70000" }, "--http-addr"},
		{"gossip addr", func(c *Config) { c.GossipAddr = "x" }, "--gossip-addr"},
		{"resp addr", func(c *Config) { c.RESPAddr = "1.2.3.4:http" }, "--resp-addr"},
		{"advertise addr", func(c *Config) { c.AdvertiseAddr = "a b" }, "--advertise-addr"},
		{"join", func(c *Config) { c.Join = []string{"127.0.0.1:7946", "nope"} }, "--join"},
		{"replicas", func(c *Config) { c.Replicas = 0 }, "--replicas"},
		{"read quorum above N", func(c *Config) { c.ReadQuorum = 4 }, "--read-quorum"},
		{"write quorum zero", func(c *Config) { c.WriteQuorum = 0 }, "--write-quorum"},
		{"log level", func(c *Config) { c.LogLevel = "loud" }, "--log-level"},
		{"log format", func(c *Config) { c.LogFormat = "xml" }, "--log-format"},
		{"fsync", func(c *Config) { c.Fsync = "sometimes" }, "--fsync"},
		{"fsync negative", func(c *Config) { c.Fsync = "-1s" }, "--fsync"},
		{"max value", func(c *Config) { c.MaxValueBytes = 0 }, "--max-value-bytes"},
		{"databases zero", func(c *Config) { c.Databases = 0 }, "--databases"},
		{"databases too many", func(c *Config) { c.Databases = 257 }, "--databases"},
		{"tombstone grace", func(c *Config) { c.TombstoneGrace = 0 }, "--tombstone-grace"},
		{"gossip key not base64", func(c *Config) { c.GossipKey = "!!" }, "--gossip-key"},
		{"gossip key wrong size", func(c *Config) { c.GossipKey = "AAAA" }, "--gossip-key"},
		{"second gossip key bad", func(c *Config) { c.GossipKey = "AAAAAAAAAAAAAAAAAAAAAA==,AAAA" }, "key 2"},
		{"empty gossip key in list", func(c *Config) { c.GossipKey = "AAAAAAAAAAAAAAAAAAAAAA==," }, "key 2"},
		{"read header timeout", func(c *Config) { c.HTTPReadHeaderTimeout = 0 }, "--http-read-header-timeout"},
		{"read timeout", func(c *Config) { c.HTTPReadTimeout = -time.Second }, "--http-read-timeout"},
		{"write timeout", func(c *Config) { c.HTTPWriteTimeout = 0 }, "--http-write-timeout"},
		{"idle timeout", func(c *Config) { c.HTTPIdleTimeout = 0 }, "--http-idle-timeout"},
		{"max header bytes", func(c *Config) { c.HTTPMaxHeaderBytes = 100 }, "--http-max-header-bytes"},
		{"max conns", func(c *Config) { c.HTTPMaxConns = 0 }, "--http-max-conns"},
		{"linger timeout negative", func(c *Config) { c.HTTPLingerTimeout = -time.Second }, "--http-linger-timeout"},
		{"linger timeout too long", func(c *Config) { c.HTTPLingerTimeout = time.Hour }, "--http-linger-timeout"},
		{"linger bytes negative", func(c *Config) { c.HTTPLingerBytes = -1 }, "--http-linger-bytes"},
		{"linger bytes too many", func(c *Config) { c.HTTPLingerBytes = 2 << 30 }, "--http-linger-bytes"},
		{"h2 streams", func(c *Config) { c.HTTP2MaxStreams = 0 }, "--http2-max-streams"},
		{"resp idle timeout", func(c *Config) { c.RESPIdleTimeout = -time.Second }, "--resp-idle-timeout"},
		{"tls cert without key", func(c *Config) { c.TLSCert = "cert.pem" }, "--tls-key"},
		{"tls ca without cert", func(c *Config) { c.TLSCA = "ca.pem" }, "--tls-ca"},
		{"auth token with comma", func(c *Config) { c.AuthTokens = []string{"a,b"} }, "--auth-token"},
		{"empty auth token", func(c *Config) { c.AuthTokens = []string{""} }, "--auth-token"},
		{"segment size", func(c *Config) { c.SegmentSize = 10 }, "segment size"},
		{"max inflight", func(c *Config) { c.MaxInflight = 0 }, "--max-inflight"},
		{"shutdown timeout", func(c *Config) { c.ShutdownTimeout = 0 }, "shutdown timeout"},
		{"reclaim interval", func(c *Config) { c.ReclaimInterval = -time.Second }, "reclaim interval"},
		{"checkpoint interval", func(c *Config) { c.CheckpointInterval = 0 }, "checkpoint interval"},
		{"partitions zero", func(c *Config) { c.Partitions = 0 }, "--partitions"},
		{"partitions below N", func(c *Config) { c.Partitions = 2 }, "--partitions"},
		{"request timeout", func(c *Config) { c.RequestTimeout = 0 }, "--request-timeout"},
		{"join timeout", func(c *Config) { c.JoinTimeout = 0 }, "--join-timeout"},
		{"rpc timeout", func(c *Config) { c.RPCTimeout = -time.Second }, "--rpc-timeout"},
		{"rpc max calls", func(c *Config) { c.RPCMaxCalls = 0 }, "--rpc-max-calls"},
		{"handoff rate", func(c *Config) { c.HandoffRate = 0 }, "--handoff-rate"},
		{"gossip interval negative", func(c *Config) { c.GossipInterval = -time.Second }, "--gossip-interval"},
		{"probe timeout past interval", func(c *Config) {
			c.GossipProbeInterval, c.GossipProbeTimeout = 100*time.Millisecond, time.Second
		}, "--gossip-probe-timeout"},
		{"suspicion mult", func(c *Config) { c.GossipSuspicionMult = -1 }, "--gossip-suspicion-mult"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.mutate(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error naming %q", err, tc.want)
			}
		})
	}
}

func TestValidateReportsEveryProblemAtOnce(t *testing.T) {
	c := DefaultConfig()
	c.Replicas = 0
	c.LogFormat = "xml"
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "--replicas") || !strings.Contains(err.Error(), "--log-format") {
		t.Fatalf("Validate() = %v, want both --replicas and --log-format named", err)
	}
}

func TestValidateAcceptsOptionalSettings(t *testing.T) {
	c := DefaultConfig()
	c.RESPAddr = ""
	c.Fsync = "10ms"
	c.GossipKey = "AAAAAAAAAAAAAAAAAAAAAA==, AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=" // 16 and 32 bytes
	c.Join = []string{"10.0.0.1:7946", "[::1]:7946"}
	c.AdvertiseAddr = "10.0.0.5"
	c.AuthTokens = []string{"s3cret", "other"}
	c.LogFormat = "json"
	c.LogLevel = "debug"
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate() = %v, want nil", err)
	}
}

func TestNewRejectsAnInvalidConfigBeforeTouchingTheDisk(t *testing.T) {
	c := testConfig(t)
	c.DataDir = t.TempDir() + "/never-created"
	c.Replicas = 0
	if _, err := New(c, nil); err == nil || !strings.Contains(err.Error(), "--replicas") {
		t.Fatalf("New with invalid config = %v, want the validation error", err)
	}
}

func TestStartReportsAnAddressInUse(t *testing.T) {
	first := startNode(t, nil, nil)
	c := testConfig(t)
	c.HTTPAddr = first.Addr()
	n, err := New(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown(t.Context())
	if err := n.Start(); err == nil || !strings.Contains(err.Error(), "--http-addr") {
		t.Fatalf("Start on a used port = %v, want an error naming --http-addr", err)
	}
}
