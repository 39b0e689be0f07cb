package testnode

// PortAssigner is an optional part of a Network: one that places nodes
// where the test process cannot bind (another network namespace) assigns
// their HTTP and gossip addresses itself instead of FreePort probing them.
type PortAssigner interface {
	Ports(i int) (httpAddr, gossipAddr string, err error)
}
