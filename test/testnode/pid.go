package testnode

// PID is the process id of the node's current incarnation, 0 when it has
// not been started; it stays the last one's after an exit. Tests read
// /proc/<pid>/status with it, e.g. for the resident memory.
func (n *Node) PID() int {
	if p := n.current(); p != nil {
		return p.pid
	}
	return 0
}
