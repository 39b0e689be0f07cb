package main

import (
	"bytes"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/dynkv/dynkv/node"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// signal.NotifyContext starts the runtime's one signal watcher,
		// which lives for the process by design.
		goleak.IgnoreTopFunction("os/signal.signal_recv"),
		goleak.IgnoreTopFunction("os/signal.loop"),
		// goleveldb's pool drainer notices a closed DB only on its next
		// 30s tick; store and node tests ignore it the same way.
		goleak.IgnoreTopFunction("github.com/syndtr/goleveldb/leveldb.(*DB).mpoolDrain"))
}

// envOf turns a map into the env lookup run takes.
func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestServerWithNoFlagsIsTheDefaultConfig(t *testing.T) {
	cfg, err := parseServerConfig(nil, envOf(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatalf("no flags: %v", err)
	}
	if want := node.DefaultConfig(); !reflect.DeepEqual(cfg, want) {
		t.Fatalf("no flags gave\n%+v\nwant node.DefaultConfig()\n%+v", cfg, want)
	}
	if cfg.DataDir != "./data" {
		t.Fatalf("default data dir %q, want ./data", cfg.DataDir)
	}
}

func TestEveryServerFlagMapsOntoConfig(t *testing.T) {
	args := []string{
		"--id", "n1", "--data-dir", "/d", "--http-addr", "127.0.0.1:1", "--gossip-addr", "127.0.0.1:2",
		"--resp-addr", "", "--advertise-addr", "10.0.0.1", "--join", "a:1, b:2", "--replicas", "5",
		"--read-quorum", "3", "--write-quorum", "4", "--log-level", "debug", "--log-format", "json",
		"--fsync", "10ms", "--max-value-bytes", "2MiB", "--databases", "4", "--tombstone-grace", "1h",
		"--gossip-key", "MDEyMzQ1Njc4OWFiY2RlZg==", "--auth-token", "t1,t2",
		"--min-free-bytes", "1GiB", "--segment-size", "128k", "--wal-repair", "--max-inflight", "7",
		"--shutdown-timeout", "3s", "--reclaim-interval", "2s", "--checkpoint-interval", "4s",
		"--partitions", "64", "--request-timeout", "7s", "--rpc-timeout", "900ms", "--handoff-rate", "1MiB",
		"--gossip-probe-interval", "300ms", "--gossip-probe-timeout", "100ms", "--gossip-interval", "50ms",
		"--gossip-suspicion-mult", "2", "--pprof", "--resp-max-conns", "9", "--hint-interval", "3s",
		"--http-linger-timeout", "2s", "--http-linger-bytes", "8MiB", "--resp-max-buffer-bytes", "300MiB",
		"--rpc-max-calls", "64",
	}
	cfg, err := parseServerConfig(args, envOf(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	want := node.DefaultConfig()
	want.ID, want.DataDir, want.HTTPAddr, want.GossipAddr, want.RESPAddr = "n1", "/d", "127.0.0.1:1", "127.0.0.1:2", ""
	want.AdvertiseAddr, want.Join = "10.0.0.1", []string{"a:1", "b:2"}
	want.Replicas, want.ReadQuorum, want.WriteQuorum = 5, 3, 4
	want.LogLevel, want.LogFormat, want.Fsync = "debug", "json", "10ms"
	want.MaxValueBytes, want.Databases, want.TombstoneGrace = 2<<20, 4, time.Hour
	want.GossipKey, want.AuthTokens = "MDEyMzQ1Njc4OWFiY2RlZg==", []string{"t1", "t2"}
	want.MinFreeBytes, want.SegmentSize, want.WALRepair, want.MaxInflight = 1<<30, 128<<10, true, 7
	want.ShutdownTimeout, want.ReclaimInterval, want.CheckpointInterval = 3*time.Second, 2*time.Second, 4*time.Second
	want.Partitions, want.RequestTimeout, want.RPCTimeout, want.HandoffRate = 64, 7*time.Second, 900*time.Millisecond, 1<<20
	want.GossipProbeInterval, want.GossipProbeTimeout = 300*time.Millisecond, 100*time.Millisecond
	want.GossipInterval, want.GossipSuspicionMult = 50*time.Millisecond, 2
	want.Pprof = true
	want.RESPMaxConns = 9
	want.HintInterval = 3 * time.Second
	want.HTTPLingerTimeout, want.HTTPLingerBytes = 2*time.Second, 8<<20
	want.RESPMaxBufferBytes = 300 << 20
	want.RPCMaxCalls = 64
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("got\n%+v\nwant\n%+v", cfg, want)
	}
}

func TestServerHelpListsEverySpecFlagWithDefaults(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run([]string{"server", "--help"}, envOf(nil), nil, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("server --help exit %d, want 0; stderr %q", code, stderr.String())
	}
	for _, f := range []string{"id", "data-dir", "http-addr", "gossip-addr", "resp-addr", "advertise-addr", "join",
		"replicas", "read-quorum", "write-quorum", "log-level", "log-format", "fsync", "max-value-bytes",
		"databases", "tombstone-grace", "gossip-key", "tls-cert", "tls-key", "tls-ca", "auth-token",
		"min-free-bytes", "segment-size", "wal-repair", "max-inflight", "shutdown-timeout", "reclaim-interval", "checkpoint-interval",
		"partitions", "request-timeout", "rpc-timeout", "rpc-max-calls", "handoff-rate", "gossip-probe-interval", "gossip-probe-timeout",
		"gossip-interval", "gossip-suspicion-mult", "pprof", "resp-max-conns"} {
		if !strings.Contains(stdout.String(), "--"+f+" ") && !strings.Contains(stdout.String(), "--"+f+"\n") {
			t.Errorf("--help does not list --%s", f)
		}
		if !strings.Contains(stdout.String(), "$"+envName(f)) {
			t.Errorf("--help does not name $%s", envName(f))
		}
	}
	if !strings.Contains(stdout.String(), `(default "./data")`) || !strings.Contains(stdout.String(), "(default 3)") {
		t.Errorf("--help does not show defaults:\n%s", stdout.String())
	}
}

func TestFlagBeatsEnvironmentWhichBeatsDefault(t *testing.T) {
	env := envOf(map[string]string{
		"DYNKV_HTTP_ADDR":  "127.0.0.1:9000",
		"DYNKV_DATA_DIR":   "/from-env",
		"DYNKV_WAL_REPAIR": "true",
		"DYNKV_JOIN":       "x:1,y:2",
	})
	cfg, err := parseServerConfig([]string{"--http-addr", "127.0.0.1:9100", "--join", "z:3"}, env, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPAddr != "127.0.0.1:9100" {
		t.Errorf("HTTPAddr = %q: the flag must beat DYNKV_HTTP_ADDR", cfg.HTTPAddr)
	}
	if !reflect.DeepEqual(cfg.Join, []string{"z:3"}) {
		t.Errorf("Join = %q: the flag must replace DYNKV_JOIN, not add to it", cfg.Join)
	}
	if cfg.DataDir != "/from-env" || !cfg.WALRepair {
		t.Errorf("DataDir %q WALRepair %v: unset flags must come from the environment", cfg.DataDir, cfg.WALRepair)
	}
	if cfg.GossipAddr != node.DefaultConfig().GossipAddr {
		t.Errorf("GossipAddr = %q, want the default", cfg.GossipAddr)
	}
}

func TestBadEnvironmentValueIsAUsageErrorNamingTheVariable(t *testing.T) {
	for name, val := range map[string]string{
		"DYNKV_REPLICAS":        "three",
		"DYNKV_TOMBSTONE_GRACE": "forever",
		"DYNKV_WAL_REPAIR":      "maybe",
		"DYNKV_SEGMENT_SIZE":    "12 parsecs",
	} {
		var stdout, stderr bytes.Buffer
		code := run([]string{"server"}, envOf(map[string]string{name: val}), nil, &stdout, &stderr)
		if code != exitUsage {
			t.Errorf("%s=%q: exit %d, want %d", name, val, code, exitUsage)
		}
		msg := stderr.String()
		if !strings.Contains(msg, name) || strings.Count(msg, "\n") != 1 {
			t.Errorf("%s=%q: stderr %q, want one line naming the variable", name, val, msg)
		}
	}
}

func TestInvalidServerConfigIsOneLineUsageError(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run([]string{"server", "--replicas", "1", "--read-quorum", "2", "--log-format", "xml"}, envOf(nil), nil, &stdout, &stderr)
	if code != exitUsage {
		t.Fatalf("exit %d, want %d (stderr %q)", code, exitUsage, stderr.String())
	}
	msg := stderr.String()
	if strings.Count(msg, "\n") != 1 || !strings.Contains(msg, "--read-quorum") || !strings.Contains(msg, "--log-format") {
		t.Fatalf("stderr %q: want one line naming both bad flags", msg)
	}
}

func TestFlagsMayFollowArgumentsAndDoubleDashEndsThem(t *testing.T) {
	c := newCommand("put", "put", "")
	ttl := c.fs.Duration("ttl", 0, "")
	w := c.fs.Int("w", 0, "")
	pos, err := c.parse([]string{"k", "--ttl", "30s", "v", "--w=2"}, envOf(nil), &bytes.Buffer{})
	if err != nil || !reflect.DeepEqual(pos, []string{"k", "v"}) || *ttl != 30*time.Second || *w != 2 {
		t.Fatalf("interleaved: pos %q ttl %v w %d err %v", pos, *ttl, *w, err)
	}
	c = newCommand("put", "put", "")
	c.fs.Duration("ttl", 0, "")
	pos, err = c.parse([]string{"--ttl", "1s", "--", "-k", "--ttl"}, envOf(nil), &bytes.Buffer{})
	if err != nil || !reflect.DeepEqual(pos, []string{"-k", "--ttl"}) {
		t.Fatalf("after --: pos %q err %v, want [-k --ttl]", pos, err)
	}
	c = newCommand("put", "put", "")
	pos, err = c.parse([]string{"k", "-"}, envOf(nil), &bytes.Buffer{})
	if err != nil || !reflect.DeepEqual(pos, []string{"k", "-"}) {
		t.Fatalf("stdin dash: pos %q err %v", pos, err)
	}
}

func TestClientCommandsReadOnlyConnectionSettingsFromEnvironment(t *testing.T) {
	var cf clientFlags
	c := newCommand("put", "put", "")
	cf.register(c)
	ctxFlag := c.fs.String("context", "", "")
	_, err := c.parse(nil, envOf(map[string]string{"DYNKV_ADDR": "http://h:1", "DYNKV_CONTEXT": "stale", "DYNKV_DB": "3"}), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if cf.addr != "http://h:1" || cf.db != 3 {
		t.Errorf("addr %q db %d, want them from DYNKV_ADDR and DYNKV_DB", cf.addr, cf.db)
	}
	if *ctxFlag != "" {
		t.Errorf("--context = %q: DYNKV_CONTEXT must not change what is written", *ctxFlag)
	}
}

func TestParseByteSize(t *testing.T) {
	good := map[string]uint64{"0": 0, "1048576": 1 << 20, "1MiB": 1 << 20, "64MB": 64 << 20, "512k": 512 << 10, "2 GiB": 2 << 30, "1t": 1 << 40, "7b": 7}
	for in, want := range good {
		got, err := parseByteSize(in)
		if err != nil || got != want {
			t.Errorf("parseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "-1", "1.5MiB", "10 parsecs", "99999999999999999999", "20000000TiB"} {
		if got, err := parseByteSize(in); err == nil {
			t.Errorf("parseByteSize(%q) = %d, want an error", in, got)
		}
	}
	var v int64
	if err := (byteSize[int64]{&v}).Set("18446744073709551615"); err == nil {
		t.Errorf("int64 byte size accepted 2^64-1 as %d", v)
	}
}

// FuzzParseByteSize: the size parser never panics, and a size it accepts
// reads back the same when written as a plain number.
func FuzzParseByteSize(f *testing.F) {
	for _, s := range []string{"0", "1MiB", "64 mb", "512k", "18446744073709551615", "16777216TiB", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseByteSize(s)
		if err != nil {
			return
		}
		again, err := parseByteSize(strconv.FormatUint(n, 10))
		if err != nil || again != n {
			t.Fatalf("%q -> %d -> %d, %v", s, n, again, err)
		}
	})
}

func TestUsageErrorsExitTwo(t *testing.T) {
	cases := [][]string{
		{},
		{"frobnicate"},
		{"put", "only-key"},
		{"put", "k", "v", "extra"},
		{"put", "k", "v", "--ttl", "soon"},
		{"put", "", "v"},
		{"get"},
		{"get", "k", "--output", "yaml"},
		{"delete"},
		{"cluster"},
		{"cluster", "join"},
		{"cluster", "dance"},
		{"cluster", "status", "--node", "x"},
		{"bench", "--read-ratio", "2"},
		{"bench", "--connections", "0"},
		{"server", "stray"},
	}
	for _, args := range cases {
		var stdout, stderr bytes.Buffer
		code := run(args, envOf(map[string]string{"DYNKV_ADDR": "http://127.0.0.1:1"}), strings.NewReader(""), &stdout, &stderr)
		if code != exitUsage {
			t.Errorf("dynkv %q: exit %d, want %d (stderr %q)", args, code, exitUsage, stderr.String())
			continue
		}
		if len(args) > 0 && strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("dynkv %q: stderr %q, want exactly one line", args, stderr.String())
		}
	}
}

func TestHelpAndVersionExitZero(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"help", "put"}, {"get", "--help"}, {"bench", "-h"}, {"cluster", "--help"}, {"version"}} {
		var stdout, stderr bytes.Buffer
		if code := run(args, envOf(nil), nil, &stdout, &stderr); code != exitOK || stdout.Len() == 0 {
			t.Errorf("dynkv %q: exit %d, stdout %d bytes; want 0 and text", args, code, stdout.Len())
		}
	}
}

func TestExitCodeMapping(t *testing.T) {
	if got := exitCode(errors.New("boom")); got != exitFailure {
		t.Errorf("plain error -> %d, want %d", got, exitFailure)
	}
	if got := exitCode(usagef("bad")); got != exitUsage {
		t.Errorf("usage error -> %d, want %d", got, exitUsage)
	}
}
