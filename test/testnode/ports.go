package testnode

import "fmt"

// PortAssigner is an optional part of a Network: one that places nodes
// where the test process cannot bind (another network namespace) assigns
// their HTTP and gossip addresses itself instead of FreePort probing them.
type PortAssigner interface {
	Ports(i int) (httpAddr, gossipAddr string, err error)
}

// nodeAddrs are node i's HTTP and gossip addresses: the Network's own when
// it assigns them, otherwise ports free on its host a moment ago.
func nodeAddrs(net Network, i int) (httpAddr, gossipAddr string, err error) {
	if pa, ok := net.(PortAssigner); ok {
		return pa.Ports(i)
	}
	host := net.Host(i)
	if httpAddr, err = FreePort(host); err != nil {
		return "", "", err
	}
	// FreePort closes what it probed, so a second probe may hand out the
	// same port again (CI saw HTTP and gossip given one port, and the
	// node failed to bind its gossip): pick again until they differ.
	for range 20 {
		if gossipAddr, err = FreePort(host); err != nil {
			return "", "", err
		}
		if gossipAddr != httpAddr {
			return httpAddr, gossipAddr, nil
		}
	}
	return "", "", fmt.Errorf("finding a gossip port on %s: every probe returned the HTTP port %s", host, httpAddr)
}
