package membership

import (
	"context"
	"net"
	"slices"
	"time"
)

// lookupTimeout bounds the name lookups of IsLocalAddr: a join address
// that does not resolve promptly is taken for another node.
const lookupTimeout = 2 * time.Second

// IsLocalAddr reports whether dialling addr (host:port) from this host
// would reach one of listeners: this process's listening addresses, each
// as it was bound (host 0.0.0.0, [::] or empty for every interface) or as
// it is advertised. The ports must be equal and the hosts must meet: the
// same IP (names are resolved, so localhost meets 127.0.0.1), or a
// listener bound to every interface and an address of this host (loopback
// or an interface's). Dialling 0.0.0.0 or [::] reaches the loopback
// listener. An address or listener that does not parse or resolve meets
// nothing: a typo is taken for another node, whose join then fails.
func IsLocalAddr(addr string, listeners ...string) bool {
	host, port, err := splitHostPort(addr)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
	defer cancel()
	var dialled []net.IP
	for _, ip := range resolve(ctx, host) {
		if ip.IsUnspecified() {
			// Linux (and the BSDs) deliver a connection to 0.0.0.0 or
			// :: to the loopback interface.
			dialled = append(dialled, net.IPv4(127, 0, 0, 1), net.IPv6loopback)
			continue
		}
		dialled = append(dialled, ip)
	}
	if len(dialled) == 0 {
		return false
	}
	var local []net.IP // this host's addresses, looked up once if needed
	for _, l := range listeners {
		lhost, lport, err := splitHostPort(l)
		if err != nil || lport != port {
			continue
		}
		if ip := net.ParseIP(lhost); lhost == "" || (ip != nil && ip.IsUnspecified()) {
			if local == nil {
				local = hostIPs()
			}
			// Such a listener takes the whole loopback network too.
			if slices.ContainsFunc(dialled, net.IP.IsLoopback) || anyEqual(dialled, local) {
				return true
			}
			continue
		}
		if anyEqual(dialled, resolve(ctx, lhost)) {
			return true
		}
	}
	return false
}

// resolve returns host's IPs: itself for an IP literal, the unspecified
// address for an empty host, the lookup's answer (nil on error) otherwise.
func resolve(ctx context.Context, host string) []net.IP {
	if host == "" {
		return []net.IP{net.IPv4zero}
	}
	if ip := net.ParseIP(host); ip != nil {
		return []net.IP{ip}
	}
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return nil
	}
	ips := make([]net.IP, 0, len(addrs))
	for _, a := range addrs {
		ips = append(ips, a.IP)
	}
	return ips
}

// hostIPs lists the addresses of this host's interfaces, loopback
// included.
func hostIPs() []net.IP {
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ips
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			ips = append(ips, n.IP)
		}
	}
	return ips
}

func anyEqual(a, b []net.IP) bool {
	for _, x := range a {
		for _, y := range b {
			if x.Equal(y) {
				return true
			}
		}
	}
	return false
}
