package testnode

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// reach reports whether a TCP connection from node from's namespace to
// addr succeeds within a second (bash's /dev/tcp, so no extra tool).
func reach(ns *Namespaces, from int, addr string) bool {
	host, port, _ := strings.Cut(addr, ":")
	script := fmt.Sprintf("exec 3<>/dev/tcp/%s/%s", host, port)
	return exec.Command("ip", "netns", "exec", ns.Namespace(from), "timeout", "1", "bash", "-c", script).Run() == nil
}

// TestNamespacesCutAndHealLinks runs a node in one namespace and checks
// that the test process always reaches it, a peer namespace reaches it
// until Partition cuts them apart (both ways), and again after Heal.
func TestNamespacesCutAndHealLinks(t *testing.T) {
	if testing.Short() {
		t.Skip("testnode: skipped with -short: starts a dynkv server")
	}
	if err := NamespacesAvailable(); err != nil {
		t.Skipf("partition harness not available: %v", err)
	}
	ns, err := NewNamespaces(t, 3)
	if err != nil {
		t.Fatal(err)
	}
	n := NewNode(t, 0, NodeOptions{Network: ns})
	if want := ns.Host(0) + ":"; !strings.HasPrefix(n.Addr(), want) {
		t.Fatalf("node 0 HTTP address %q, want it on %s", n.Addr(), want)
	}
	n.Start()
	if _, err := n.Put("netns/key", []byte("v"), KV{}); err != nil {
		t.Fatalf("PUT from the root namespace: %v", err)
	}
	if !reach(ns, 1, n.Addr()) {
		t.Fatalf("namespace %s cannot reach node 0 at %s before any partition", ns.Namespace(1), n.Addr())
	}
	if err := ns.Partition([]int{0}, []int{1}); err != nil {
		t.Fatal(err)
	}
	if got, _ := ns.Cut(0); !slices.Equal(got, []string{ns.Host(1)}) {
		t.Fatalf("node 0 cut set %v, want [%s]", got, ns.Host(1))
	}
	if got, _ := ns.Cut(2); len(got) != 0 {
		t.Fatalf("node 2, on no side, cut set %v, want empty", got)
	}
	if reach(ns, 1, n.Addr()) {
		t.Fatalf("namespace %s reaches node 0 through a partition", ns.Namespace(1))
	}
	if !reach(ns, 2, n.Addr()) {
		t.Fatalf("namespace %s, on no side, cannot reach node 0", ns.Namespace(2))
	}
	if r, err := n.Get("netns/key", KV{}); err != nil || r.Status != 200 {
		t.Fatalf("GET from the root namespace during the partition: %v %v, want 200 (the test process is never cut)", r, err)
	}
	if err := ns.Heal(); err != nil {
		t.Fatal(err)
	}
	if !reach(ns, 1, n.Addr()) {
		t.Fatalf("namespace %s cannot reach node 0 after Heal", ns.Namespace(1))
	}
	n.Stop()
}

func TestSweepLeavesLiveRunsAlone(t *testing.T) {
	if !runAlive("") || !runAlive("x") || !runAlive("not!base36x") {
		t.Fatal("ids that are not a run's must count as alive (left alone)")
	}
	// Our own pid: alive. Pid 0x7fffffff does not exist.
	self := strconv.FormatInt(int64(os.Getpid()), 36) + "0"
	if !runAlive(self) {
		t.Fatalf("run %q of this process counted as dead", self)
	}
	if runAlive(strconv.FormatInt(0x7fffffff, 36) + "0") {
		t.Fatal("run of a pid that cannot exist counted as alive")
	}
}

// TestSweepRemovesNamespacesOfDeadRuns leaves a namespace named as if a
// process that cannot exist had made it, and one of this process, and
// checks that the sweeper removes the first only.
func TestSweepRemovesNamespacesOfDeadRuns(t *testing.T) {
	if err := NamespacesAvailable(); err != nil {
		t.Skipf("partition harness not available: %v", err)
	}
	dead := "dk-" + strconv.FormatInt(0x7fffffff, 36) + "0-0"
	live := "dk-" + strconv.FormatInt(int64(os.Getpid()), 36) + "z-0"
	for _, name := range []string{dead, live} {
		if err := runCmd(nil, "ip", "netns", "add", name); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if nsExists(name) {
				_ = runCmd(nil, "ip", "netns", "del", name)
			}
		})
	}
	if err := SweepStaleNamespaces(); err != nil {
		t.Fatal(err)
	}
	if nsExists(dead) {
		t.Errorf("namespace %s of a dead run survived the sweep", dead)
	}
	if !nsExists(live) {
		t.Errorf("namespace %s of this live process was swept", live)
	}
}
