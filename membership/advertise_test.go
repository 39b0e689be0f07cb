package membership

import (
	"net"
	"testing"
)

func TestAdvertiseHostNameIsResolvedToAnIP(t *testing.T) {
	c := Config{NodeID: "a", AdvertiseAddr: "localhost"}
	if err := c.fill(); err != nil {
		t.Fatalf("fill with advertise localhost: %v", err)
	}
	if net.ParseIP(c.AdvertiseAddr) == nil {
		t.Fatalf("advertise address after fill = %q, want an IP", c.AdvertiseAddr)
	}

	bad := Config{NodeID: "a", AdvertiseAddr: "no-such-host.invalid"}
	if err := bad.fill(); err == nil {
		t.Fatalf("fill with an unresolvable advertise host succeeded (%q), want an error", bad.AdvertiseAddr)
	}
}

func TestJoinNamingOnlyItselfFoundsACluster(t *testing.T) {
	// Every node of a deployment may get the same seed list; the seed
	// itself must found the cluster rather than wait forever as a joiner.
	l, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.LocalAddr().String()
	l.Close()
	cfg := fastConfig(t, "n1")
	cfg.BindAddr = addr
	cfg.Join = []string{addr}
	m := start(t, cfg)
	st := m.State()
	if st.Committed.Epoch != 1 || len(st.Committed.Members) != 1 || st.Committed.Members[0] != "n1" {
		t.Fatalf("a node whose --join names only itself: committed ring %+v, want epoch 1 with [n1]", st.Committed)
	}
	if !m.Ready() {
		t.Fatalf("a node that founded its cluster is not ready")
	}

	// A second node with the same seed list joins it.
	cfg2 := fastConfig(t, "n2")
	cfg2.Join = []string{addr}
	m2 := start(t, cfg2)
	if self, _ := m2.Member("n2"); self.Status != StatusJoining {
		t.Fatalf("a node joining the seed has status %v, want joining", self.Status)
	}
}
