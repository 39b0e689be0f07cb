package testnode

import (
	"crypto/tls"
	"fmt"
	"testing"
	"time"
)

// FastGossip returns server flags that make failure detection and ring
// changes take a fraction of memberlist's LAN defaults, so tests wait
// seconds, not tens of seconds. They stay loose enough that a live node
// under -race on two loaded cores is not declared dead: with a 100ms probe
// timeout and a suspicion multiplier of 2, CI once saw a live member of a
// five-node cluster marked dead.
func FastGossip() []string {
	return []string{
		"--gossip-probe-interval", "300ms",
		"--gossip-probe-timeout", "250ms",
		"--gossip-interval", "50ms",
		"--gossip-suspicion-mult", "4",
	}
}

// ConvergeTimeout bounds how long a cluster may take to agree on its ring.
const ConvergeTimeout = 60 * time.Second

// Options describes a cluster.
type Options struct {
	// Args are extra server flags for every node, after FastGossip.
	Args []string
	// Network defaults to Loopback.
	Network Network
	// NodeArgs, when set, gives node i's own extra flags, after Args:
	// what differs between nodes, such as PKI.ServerFlags(host).
	NodeArgs func(i int, host string) []string
	// Token and TLS are every node's NodeOptions.Token and .TLS.
	Token string
	TLS   *tls.Config
}

// Cluster is a set of nodes started together; node 0 founds the cluster and
// the others --join it.
type Cluster struct {
	tb    testing.TB
	opts  Options
	Nodes []*Node
}

// Start runs n nodes, node 0 first, the others joining it, and waits until
// every node is ready and agrees on a ring of all n.
func Start(tb testing.TB, n int, opts Options) *Cluster {
	tb.Helper()
	if opts.Network == nil {
		opts.Network = Loopback{}
	}
	c := &Cluster{tb: tb, opts: opts}
	first := c.NewNode()
	first.Start()
	for range n - 1 {
		c.NewNode().StartNoWait()
	}
	for _, nd := range c.Nodes[1:] {
		nd.WaitReady()
	}
	c.WaitConverged(ConvergeTimeout, c.IDs()...)
	return c
}

// NewNode prepares the next node (index len(Nodes)); unless it is the
// first, it will --join the gossip address of the first running node. It
// is not started.
func (c *Cluster) NewNode() *Node {
	c.tb.Helper()
	var join []string
	for _, nd := range c.Nodes {
		if nd.Running() {
			join = []string{nd.GossipAddr()}
			break
		}
	}
	if len(c.Nodes) > 0 && join == nil {
		c.tb.Fatalf("cluster: no running node for node %d to join", len(c.Nodes))
	}
	return c.newNode(join)
}

// NewDetachedNode prepares the next node without --join: started, it
// founds a one-node cluster of its own, which POST /cluster/join can then
// merge into this one.
func (c *Cluster) NewDetachedNode() *Node {
	c.tb.Helper()
	return c.newNode(nil)
}

func (c *Cluster) newNode(join []string) *Node {
	c.tb.Helper()
	i := len(c.Nodes)
	args := append(FastGossip(), c.opts.Args...)
	if c.opts.NodeArgs != nil {
		args = append(args, c.opts.NodeArgs(i, c.opts.Network.Host(i))...)
	}
	nd := NewNode(c.tb, i, NodeOptions{
		Args:    args,
		Join:    join,
		Network: c.opts.Network,
		Token:   c.opts.Token,
		TLS:     c.opts.TLS,
	})
	c.Nodes = append(c.Nodes, nd)
	return nd
}

// IDs lists the ids of every node, running or not.
func (c *Cluster) IDs() []string {
	ids := make([]string, len(c.Nodes))
	for i, nd := range c.Nodes {
		ids[i] = nd.ID()
	}
	return ids
}

// Running lists the nodes whose process is alive.
func (c *Cluster) Running() []*Node {
	var out []*Node
	for _, nd := range c.Nodes {
		if nd.Running() {
			out = append(out, nd)
		}
	}
	return out
}

// Node returns the node with the given id, or nil.
func (c *Cluster) Node(id string) *Node {
	for _, nd := range c.Nodes {
		if nd.ID() == id {
			return nd
		}
	}
	return nil
}

// Statuses fetches GET /cluster/status from every given node.
func Statuses(nodes []*Node) (map[string]Status, error) {
	out := make(map[string]Status, len(nodes))
	for _, nd := range nodes {
		s, err := nd.Status()
		if err != nil {
			return nil, err
		}
		out[nd.ID()] = s
	}
	return out, nil
}

// WaitStatus polls the status of the given nodes (every running node
// when nodes is nil) until ok returns nil, and returns those statuses. It
// fails the test with ok's last complaint after timeout.
func (c *Cluster) WaitStatus(timeout time.Duration, nodes []*Node, ok func(map[string]Status) error) map[string]Status {
	c.tb.Helper()
	s, err := c.PollStatus(timeout, nodes, ok)
	if err != nil {
		c.tb.Fatal(err)
	}
	return s
}

// PollStatus is WaitStatus returning the failure instead.
func (c *Cluster) PollStatus(timeout time.Duration, nodes []*Node, ok func(map[string]Status) error) (map[string]Status, error) {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		ns := nodes
		if ns == nil {
			ns = c.Running()
		}
		s, err := Statuses(ns)
		if err == nil {
			if err = ok(s); err == nil {
				return s, nil
			}
		}
		last = err
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("cluster status not as wanted within %v: %w", timeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// WaitConverged waits until every running node agrees on a settled ring
// of exactly members (see Agreed) and returns the time it took.
func (c *Cluster) WaitConverged(timeout time.Duration, members ...string) time.Duration {
	c.tb.Helper()
	start := time.Now()
	c.WaitStatus(timeout, nil, func(s map[string]Status) error { return Agreed(s, members) })
	return time.Since(start)
}
