package testnode

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// Ports of every node in a namespace: each node has an address of its own,
// so they can all use the same ones.
const (
	nsHTTPPort   = 8080
	nsGossipPort = 7946
)

// Namespaces is a Network that runs node i in its own network namespace
// dk-<run>-<i> with the address 10.77.<subnet>.<10+i>, so that links
// between nodes can be cut (Partition) and healed, as on a real network.
//
// Topology: a hub namespace dk-<run>-hub holds a bridge; every node
// namespace has a veth pair into it, and one more pair joins the root
// namespace (10.77.<subnet>.1) to the bridge, so the test process reaches
// every node whatever the partition. The bridge lives in a namespace of its
// own rather than the root one because a host running Docker drops bridged
// traffic in the root namespace (br_netfilter sends it through iptables'
// FORWARD chain, policy DROP); a fresh namespace has no such rules.
//
// Cuts are nftables rules inside each node's namespace (table inet
// dkchaos: input and output drop packets to and from a set of peer
// addresses), so a cut is symmetric, silent (packets vanish, connections
// time out) and never touches the host's own firewall.
//
// Requires root and the ip (iproute2) and nft (nftables) commands; see
// NamespacesAvailable.
type Namespaces struct {
	run    string
	subnet int
	n      int

	mu sync.Mutex // serialises Partition and Heal: each rewrites every node's set
}

var nsRuns atomic.Uint32

// NamespacesAvailable says why Namespaces cannot work here, or nil.
func NamespacesAvailable() error {
	if os.Geteuid() != 0 {
		return errors.New("network namespaces need root (running as uid " + strconv.Itoa(os.Geteuid()) + ")")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("network namespaces need the %s command (apt-get install iproute2 nftables): %w", tool, err)
		}
	}
	return nil
}

// NewNamespaces creates the namespaces, bridge and links of n nodes and
// removes them all in tb's cleanup. It first sweeps leftovers of earlier
// test processes that died without cleaning up (SweepStaleNamespaces).
func NewNamespaces(tb testing.TB, n int) (*Namespaces, error) {
	tb.Helper()
	if err := NamespacesAvailable(); err != nil {
		return nil, err
	}
	if err := SweepStaleNamespaces(); err != nil {
		tb.Logf("testnode: sweeping stale namespaces: %v", err)
	}
	// The run id embeds our pid (base 36) so the sweeper can tell a
	// crashed run's leftovers from a live run's.
	run := strconv.FormatInt(int64(os.Getpid()), 36) + strconv.FormatInt(int64(nsRuns.Add(1)%36), 36)
	subnet, err := freeSubnet(os.Getpid() + int(nsRuns.Load()))
	if err != nil {
		return nil, err
	}
	ns := &Namespaces{run: run, subnet: subnet, n: n}
	tb.Cleanup(func() {
		if err := ns.remove(); err != nil {
			tb.Errorf("testnode: removing namespaces of run %s: %v", ns.run, err)
		}
	})
	if err := ns.create(); err != nil {
		return nil, err
	}
	return ns, nil
}

func (ns *Namespaces) hub() string       { return "dk-" + ns.run + "-hub" }
func (ns *Namespaces) name(i int) string { return "dk-" + ns.run + "-" + strconv.Itoa(i) }
func (ns *Namespaces) rootLink() string  { return "dkr" + ns.run }
func (ns *Namespaces) gateway() string   { return fmt.Sprintf("10.77.%d.1", ns.subnet) }
func (ns *Namespaces) addr(i int) string { return fmt.Sprintf("10.77.%d.%d", ns.subnet, 10+i) }

// Len is the number of node namespaces.
func (ns *Namespaces) Len() int { return ns.n }

// Namespace is the name of node i's namespace (for `ip netns exec`).
func (ns *Namespaces) Namespace(i int) string { return ns.name(i) }

// nftTable is loaded into every node namespace; Partition fills the set.
const nftTable = `table inet dkchaos {
	set cut { type ipv4_addr; }
	chain input { type filter hook input priority -10; policy accept; ip saddr @cut drop; }
	chain output { type filter hook output priority -10; policy accept; ip daddr @cut drop; }
}
`

func (ns *Namespaces) create() error {
	hub := ns.hub()
	steps := [][]string{
		{"ip", "netns", "add", hub},
		{"ip", "-n", hub, "link", "add", "br0", "type", "bridge"},
		{"ip", "-n", hub, "link", "set", "br0", "up"},
		{"ip", "-n", hub, "link", "set", "lo", "up"},
		{"ip", "link", "add", ns.rootLink(), "type", "veth", "peer", "name", "root0", "netns", hub},
		{"ip", "-n", hub, "link", "set", "root0", "master", "br0", "up"},
		{"ip", "addr", "add", ns.gateway() + "/24", "dev", ns.rootLink()},
		{"ip", "link", "set", ns.rootLink(), "up"},
	}
	for i := range ns.n {
		name := ns.name(i)
		port := "n" + strconv.Itoa(i)
		steps = append(steps,
			[]string{"ip", "netns", "add", name},
			[]string{"ip", "-n", hub, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", name},
			[]string{"ip", "-n", hub, "link", "set", port, "master", "br0", "up"},
			[]string{"ip", "-n", name, "addr", "add", ns.addr(i) + "/24", "dev", "eth0"},
			[]string{"ip", "-n", name, "link", "set", "eth0", "up"},
			[]string{"ip", "-n", name, "link", "set", "lo", "up"},
		)
	}
	for _, s := range steps {
		if err := runCmd(nil, s...); err != nil {
			return err
		}
	}
	for i := range ns.n {
		if err := runCmd([]byte(nftTable), "ip", "netns", "exec", ns.name(i), "nft", "-f", "-"); err != nil {
			return err
		}
	}
	return nil
}

// remove deletes every namespace of the run; the veth pairs go with them.
func (ns *Namespaces) remove() error {
	var errs []error
	for i := range ns.n {
		if err := runCmd(nil, "ip", "netns", "del", ns.name(i)); err != nil && nsExists(ns.name(i)) {
			errs = append(errs, err)
		}
	}
	if err := runCmd(nil, "ip", "netns", "del", ns.hub()); err != nil && nsExists(ns.hub()) {
		errs = append(errs, err)
	}
	// Normally gone with its peer; left over only if the hub never got it.
	// The kernel tears a deleted namespace down in the background, so the
	// link may vanish between the check and the delete: only a link that
	// is still there afterwards is an error.
	if linkExists(ns.rootLink()) {
		if err := runCmd(nil, "ip", "link", "del", ns.rootLink()); err != nil && linkExists(ns.rootLink()) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Host implements Network.
func (ns *Namespaces) Host(i int) string { return ns.addr(i) }

// Command implements Network: the binary runs inside the node's namespace.
// `ip netns exec` execs it in place, so the process id is the server's and
// signals (SIGKILL, SIGSTOP) reach it directly.
func (ns *Namespaces) Command(i int, bin string, args []string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns.name(i), bin}, args...)...)
}

// Ports implements PortAssigner: the address is the node's alone, so fixed
// ports need no probing (which the root namespace could not do anyway: it
// cannot bind the node's address).
func (ns *Namespaces) Ports(i int) (httpAddr, gossipAddr string, err error) {
	if i < 0 || i >= ns.n {
		return "", "", fmt.Errorf("testnode: node %d has no namespace (run %s made %d)", i, ns.run, ns.n)
	}
	h := ns.addr(i)
	return net.JoinHostPort(h, strconv.Itoa(nsHTTPPort)), net.JoinHostPort(h, strconv.Itoa(nsGossipPort)), nil
}

// Partition cuts every link between nodes on different sides, both ways;
// a node on no side keeps all its links. Links to the test process are
// never cut (it plays clients that can reach every node). It replaces any
// earlier partition.
func (ns *Namespaces) Partition(sides ...[]int) error {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	side := make(map[int]int)
	for s, nodes := range sides {
		for _, i := range nodes {
			if i < 0 || i >= ns.n {
				return fmt.Errorf("testnode: partition: node %d out of range [0,%d)", i, ns.n)
			}
			if _, dup := side[i]; dup {
				return fmt.Errorf("testnode: partition: node %d on two sides of %v", i, sides)
			}
			side[i] = s
		}
	}
	for i := range ns.n {
		var peers []string
		si, inSide := side[i]
		for j := range ns.n {
			if sj, ok := side[j]; inSide && ok && sj != si {
				peers = append(peers, ns.addr(j))
			}
		}
		script := "flush set inet dkchaos cut\n"
		if len(peers) > 0 {
			script += "add element inet dkchaos cut { " + strings.Join(peers, ", ") + " }\n"
		}
		if err := runCmd([]byte(script), "ip", "netns", "exec", ns.name(i), "nft", "-f", "-"); err != nil {
			return fmt.Errorf("testnode: partition %v: %w", sides, err)
		}
	}
	return nil
}

// Isolate cuts node i from every other node.
func (ns *Namespaces) Isolate(i int) error {
	var rest []int
	for j := range ns.n {
		if j != i {
			rest = append(rest, j)
		}
	}
	return ns.Partition([]int{i}, rest)
}

// Heal restores every link.
func (ns *Namespaces) Heal() error {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	var errs []error
	for i := range ns.n {
		if err := runCmd([]byte("flush set inet dkchaos cut\n"), "ip", "netns", "exec", ns.name(i), "nft", "-f", "-"); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("testnode: heal: %w", err)
	}
	return nil
}

// Cut lists, for node i, the addresses its firewall drops now (for
// failure messages and the harness's own test).
func (ns *Namespaces) Cut(i int) ([]string, error) {
	var out bytes.Buffer
	cmd := exec.Command("ip", "netns", "exec", ns.name(i), "nft", "list", "set", "inet", "dkchaos", "cut")
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("testnode: listing the cut set of %s: %w", ns.name(i), err)
	}
	var addrs []string
	for _, f := range strings.FieldsFunc(out.String(), func(r rune) bool { return r == ' ' || r == ',' || r == '\n' || r == '\t' || r == '{' || r == '}' }) {
		if ip := net.ParseIP(f); ip != nil && ip.To4() != nil {
			addrs = append(addrs, f)
		}
	}
	slices.Sort(addrs)
	return addrs, nil
}

// SweepStaleNamespaces removes namespaces named dk-<run>-* (and root links
// dkr<run>) left by test processes that are gone: a run id starts with
// the pid of the process that made it, base 36, before its last character.
func SweepStaleNamespaces() error {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return fmt.Errorf("ip netns list: %w", err)
	}
	var errs []error
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], "dk-") {
			continue
		}
		run, _, ok := strings.Cut(strings.TrimPrefix(f[0], "dk-"), "-")
		if !ok || runAlive(run) {
			continue
		}
		if err := runCmd(nil, "ip", "netns", "del", f[0]); err != nil {
			errs = append(errs, err)
		}
	}
	out, err = exec.Command("ip", "-o", "link", "show").Output()
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("ip link show: %w", err))...)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		if !strings.HasPrefix(name, "dkr") || runAlive(strings.TrimPrefix(name, "dkr")) {
			continue
		}
		if err := runCmd(nil, "ip", "link", "del", name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// runAlive reports whether the process that made run still exists; an id
// that does not parse is not ours and counts as alive (left alone).
func runAlive(run string) bool {
	if len(run) < 2 {
		return true
	}
	pid, err := strconv.ParseInt(run[:len(run)-1], 36, 64)
	if err != nil {
		return true
	}
	_, err = os.Stat("/proc/" + strconv.FormatInt(pid, 10))
	return err == nil
}

// freeSubnet picks n in 1..254 such that no address of this host is in
// 10.77.n.0/24, starting from a per-process guess so concurrent runs
// rarely collide.
func freeSubnet(guess int) (int, error) {
	out, err := exec.Command("ip", "-4", "-o", "addr", "show").Output()
	if err != nil {
		return 0, fmt.Errorf("ip -4 addr show: %w", err)
	}
	for k := range 254 {
		n := (guess+k)%254 + 1
		if !bytes.Contains(out, []byte(fmt.Sprintf(" 10.77.%d.", n))) {
			return n, nil
		}
	}
	return 0, errors.New("testnode: no free 10.77.n.0/24 subnet")
}

func nsExists(name string) bool {
	_, err := os.Stat("/run/netns/" + name)
	return err == nil
}

func linkExists(name string) bool {
	return exec.Command("ip", "link", "show", name).Run() == nil
}

// runCmd runs a setup command, returning its output in the error.
func runCmd(stdin []byte, args ...string) error {
	cmd := exec.Command(args[0], args[1:]...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}
