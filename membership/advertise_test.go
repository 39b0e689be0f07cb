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
