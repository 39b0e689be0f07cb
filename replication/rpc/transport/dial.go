package transport

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

const (
	// Protocol is the HTTP Upgrade token of this transport; its version
	// is the protocol's.
	Protocol = "dynkv-rpc/1"
	// DefaultPath is where a node serves the upgrade, under the RPC's
	// /internal/v1/ prefix so that the node's routing and authentication
	// treat it as node-to-node RPC.
	DefaultPath = "/internal/v1/rpc"
	// maxRefusalBody is how much of a refused upgrade's body goes into
	// the error.
	maxRefusalBody = 512
	// maxFrameLimit is the largest limit a side may announce (uint32).
	maxFrameLimit = 1<<32 - 1
)

// dial opens a connection to addr: TCP, TLS when configured, the HTTP/1.1
// upgrade, then the handshake. Every error wraps ErrNotDelivered.
func (c *Client) dial(ctx context.Context, addr string) (*clientConn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	nc, err := c.cfg.Dial(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%w: dial: %w", ErrNotDelivered, err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = nc.Close()
		}
	}()
	if dl, has := ctx.Deadline(); has {
		_ = nc.SetDeadline(dl)
	}
	// A Close of the client aborts the upgrade and handshake too.
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if c.cfg.TLS != nil {
		tc := tls.Client(nc, tlsConfigFor(c.cfg.TLS, addr))
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, fmt.Errorf("%w: TLS handshake: %w", ErrNotDelivered, err)
		}
		nc = tc
	}
	received := &countingReader{r: nc}
	br := bufio.NewReaderSize(received, readBufferSize)
	if err := c.upgrade(nc, br, addr); err != nil {
		return nil, err
	}
	s, err := clientHandshake(nc, br, c.cfg.Keys, c.cfg.MaxFrameBytes)
	if err != nil {
		return nil, err
	}
	if !stop() {
		return nil, fmt.Errorf("%w: %w", ErrNotDelivered, context.Cause(ctx))
	}
	_ = nc.SetDeadline(time.Time{})
	ok = true
	return c.newConn(addr, nc, br, received, s), nil
}

// tlsConfigFor is base for one connection: ALPN http/1.1 only (an HTTP/2
// connection cannot be upgraded) and the server name of addr.
func tlsConfigFor(base *tls.Config, addr string) *tls.Config {
	tc := base.Clone()
	tc.NextProtos = []string{"http/1.1"}
	if tc.ServerName == "" {
		if host, _, err := net.SplitHostPort(addr); err == nil {
			tc.ServerName = host
		} else {
			tc.ServerName = addr
		}
	}
	return tc
}

// upgrade sends the upgrade request and reads the 101.
func (c *Client) upgrade(nc net.Conn, br *bufio.Reader, addr string) error {
	var b strings.Builder
	b.WriteString("GET ")
	b.WriteString(c.cfg.Path)
	b.WriteString(" HTTP/1.1\r\nHost: ")
	b.WriteString(addr)
	b.WriteString("\r\nConnection: Upgrade\r\nUpgrade: " + Protocol + "\r\nUser-Agent: dynkv\r\n")
	if c.cfg.AuthToken != "" {
		b.WriteString("Authorization: Bearer ")
		b.WriteString(c.cfg.AuthToken)
		b.WriteString("\r\n")
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(nc, b.String()); err != nil {
		return fmt.Errorf("%w: sending the upgrade request: %w", ErrNotDelivered, err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return fmt.Errorf("%w: reading the upgrade response: %w", ErrNotDelivered, err)
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		if !strings.EqualFold(resp.Header.Get("Upgrade"), Protocol) {
			return fmt.Errorf("%w: %w: 101 to %q", ErrNotDelivered, ErrNotSupported, resp.Header.Get("Upgrade"))
		}
		return nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxRefusalBody))
	_ = resp.Body.Close()
	msg := fmt.Sprintf("upgrade refused with %s: %s", resp.Status, strings.TrimSpace(string(body)))
	switch resp.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("%w: %w: %s", ErrNotDelivered, ErrUnauthorized, msg)
	case http.StatusTooManyRequests:
		return fmt.Errorf("%w: %w: %s", ErrNotDelivered, ErrBusy, msg)
	case http.StatusServiceUnavailable:
		return fmt.Errorf("%w: %s", ErrNotDelivered, msg)
	case http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusBadRequest,
		http.StatusUpgradeRequired, http.StatusHTTPVersionNotSupported, http.StatusNotImplemented:
		return fmt.Errorf("%w: %w: %s", ErrNotDelivered, ErrNotSupported, msg)
	default:
		return fmt.Errorf("%w: %s", ErrNotDelivered, msg)
	}
}
