package testnode

import (
	"fmt"
	"net"
	"os/exec"
)

// Network decides where node i lives: the IP address it binds and peers
// dial, and how its process is started. It is the seam for a chaos suite
// that puts each node in its own network namespace (Command would wrap the
// binary in `ip netns exec`); the default is Loopback.
type Network interface {
	// Host is the IP address node i binds for HTTP and gossip.
	Host(i int) string
	// Command returns the command that runs bin with args as node i.
	Command(i int, bin string, args []string) *exec.Cmd
}

// Loopback places node i on 127.0.0.<10+i>: Linux routes all of 127/8 to
// the loopback device, so every node has an address of its own (as on a
// real network) without any setup.
type Loopback struct{}

// Host implements Network.
func (Loopback) Host(i int) string { return fmt.Sprintf("127.0.0.%d", 10+i) }

// Command implements Network.
func (Loopback) Command(_ int, bin string, args []string) *exec.Cmd {
	return exec.Command(bin, args...)
}

// FreePort returns host:port where the port was free for both TCP and UDP
// a moment ago (gossip listens on both).
func FreePort(host string) (string, error) {
	var last error
	for range 20 {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return "", fmt.Errorf("finding a free port on %s: %w", host, err)
		}
		addr := l.Addr().String()
		u, err := net.ListenPacket("udp", addr)
		l.Close()
		if err != nil {
			last = err
			continue
		}
		u.Close()
		return addr, nil
	}
	return "", fmt.Errorf("finding a free port on %s: none free for both TCP and UDP after 20 tries (last: %v)", host, last)
}
