package membership

import (
	"errors"
	"fmt"
	"log"
	"net"
	"strconv"
	"time"

	"github.com/dynkv/dynkv/internal/defaults"
	"github.com/hashicorp/memberlist"
	"go.uber.org/zap"
)

// Config configures a Membership. Zero durations and counts take
// memberlist's DefaultLANConfig values: they are conservative but measured
// by hashicorp for LANs; tests on loopback pass faster values instead of
// this package changing the defaults.
//
// GossipKeys encrypt and authenticate gossip (memberlist's keyring): the
// first encrypts, every one decrypts, so keys rotate by a three-step
// rolling restart (docs/operations.md). None: gossip in the clear.
type Config struct {
	NodeID        string   // unique in the cluster; memberlist's node name
	BindAddr      string   // gossip host:port (TCP and UDP); port 0 picks one
	AdvertiseAddr string   // host peers dial, when BindAddr's host is 0.0.0.0; "" = memberlist's choice
	HTTPAddr      string   // HTTP host:port peers use for RPC
	DataDir       string   // holds ring.state; "" keeps the state in memory only (tests)
	Partitions    int      // default DefaultPartitions; must match the cluster
	GossipKeys    [][]byte // AES keys (16, 24 or 32 bytes); members without one are not admitted; see above
	Join          []string // gossip host:port of existing members

	ProbeInterval    time.Duration // LAN default 1s
	ProbeTimeout     time.Duration // LAN default 500ms
	GossipInterval   time.Duration // LAN default 200ms
	SuspicionMult    int           // LAN default 4
	PushPullInterval time.Duration // LAN default 30s: a backstop, changes are broadcast
	JoinTimeout      time.Duration // how long Join keeps retrying; default 10s
	// RejoinInterval is how often a node that cannot see some ring member
	// retries gossip-joining it (after a restart of the whole cluster, or a
	// healed partition memberlist has given up on); default 5s.
	RejoinInterval time.Duration
	Logger         *zap.Logger
}

// Errors callers branch on.
var (
	ErrUnknownMember = errors.New("membership: unknown member")
	ErrSelf          = errors.New("membership: cannot remove this node; use leave")
	ErrLastMember    = errors.New("membership: the last member cannot leave")
	ErrNotMember     = errors.New("membership: this node is not a member")
	ErrLeft          = errors.New("membership: this node has left; restart it to join again")
	// ErrJoinSelf: a join address is this node's own gossip address.
	ErrJoinSelf = errors.New("membership: cannot join this node itself")
	// ErrJoinInProgress: another Join of this node has not returned yet.
	ErrJoinInProgress = errors.New("membership: a join of this node is already in progress")
)

// stateFile is the ring state's name inside DataDir.

func (c *Config) fill() error {
	if c.NodeID == "" {
		return errors.New("membership: node id is empty")
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	defaults.Set(&c.Partitions, DefaultPartitions)
	if c.Partitions < 1 || c.Partitions > MaxPartitions {
		return fmt.Errorf("membership: partitions %d out of range 1..%d", c.Partitions, MaxPartitions)
	}
	defaults.Set(&c.BindAddr, "127.0.0.1:7946")
	if _, _, err := splitHostPort(c.BindAddr); err != nil {
		return fmt.Errorf("membership: gossip address %q: %w", c.BindAddr, err)
	}
	for i, k := range c.GossipKeys {
		switch len(k) {
		case 16, 24, 32:
		default:
			return fmt.Errorf("membership: gossip key %d of %d is %d bytes, want 16, 24 or 32", i+1, len(c.GossipKeys), len(k))
		}
	}
	if c.AdvertiseAddr != "" && net.ParseIP(c.AdvertiseAddr) == nil {
		// memberlist advertises an IP only; a host name (a container's or a
		// pod's) is resolved once, here, so --advertise-addr accepts both.
		ips, err := net.LookupIP(c.AdvertiseAddr)
		if err != nil || len(ips) == 0 {
			return fmt.Errorf("membership: advertise address %q is not an IP and does not resolve: %v", c.AdvertiseAddr, err)
		}
		c.AdvertiseAddr = ips[0].String()
		for _, ip := range ips {
			if ip.To4() != nil {
				c.AdvertiseAddr = ip.String()
				break
			}
		}
	}
	if c.JoinTimeout <= 0 {
		c.JoinTimeout = 10 * time.Second
	}
	if c.RejoinInterval <= 0 {
		c.RejoinInterval = 5 * time.Second
	}
	return nil
}

// gossipListeners are this node's gossip address as bound (the host of

func splitHostPort(addr string) (string, int, error) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", ps)
	}
	return host, port, nil
}

func (m *Membership) memberlistConfig() *memberlist.Config {
	c := memberlist.DefaultLANConfig()
	c.Name = m.cfg.NodeID
	host, port, _ := splitHostPort(m.cfg.BindAddr) // checked by fill
	c.BindAddr, c.BindPort = host, port
	c.AdvertiseAddr, c.AdvertisePort = m.cfg.AdvertiseAddr, port
	if m.cfg.ProbeInterval > 0 {
		c.ProbeInterval = m.cfg.ProbeInterval
	}
	if m.cfg.ProbeTimeout > 0 {
		c.ProbeTimeout = m.cfg.ProbeTimeout
	}
	if m.cfg.GossipInterval > 0 {
		c.GossipInterval = m.cfg.GossipInterval
	}
	if m.cfg.SuspicionMult > 0 {
		c.SuspicionMult = m.cfg.SuspicionMult
	}
	if m.cfg.PushPullInterval > 0 {
		c.PushPullInterval = m.cfg.PushPullInterval
	}
	// A node id keeps its identity across restarts but not necessarily its
	// address (a rescheduled container); without a reclaim time memberlist
	// would refuse the new address until the old entry is reaped (30s).
	c.DeadNodeReclaimTime = 10 * time.Second
	if len(m.cfg.GossipKeys) > 0 {
		// Sizes are checked by fill, the only error NewKeyring has.
		c.Keyring, _ = memberlist.NewKeyring(m.cfg.GossipKeys[1:], m.cfg.GossipKeys[0])
	}
	d := delegate{m}
	c.Delegate, c.Alive, c.Merge, c.Ping, c.Events = d, d, d, d, d
	c.Logger = log.New(zapWriter{log: m.log.Named("memberlist"), onSuspect: m.markSuspect, closed: &m.closed, refused: &m.refusedLog}, "", 0)
	return c
}

// markJoining sets self joining and resets the committed ring to epoch 0, so
