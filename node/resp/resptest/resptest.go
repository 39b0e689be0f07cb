// Package resptest holds what the Redis-protocol tests of node/resp (over
// a fake backend) and of node (end to end) share: a raw connection for
// what go-redis cannot send, and a go-redis client set up for tests.
package resptest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// HangBound bounds a wait that only a broken server would exceed; it is
// not a performance limit.
const HangBound = 30 * time.Second

// Conn is a plain TCP connection to a Redis-protocol port, for what
// go-redis cannot send: garbage, inline commands, several commands in one
// write.
type Conn struct {
	T testing.TB
	C net.Conn
	R *bufio.Reader
}

// Dial connects to addr; the connection closes when the test ends.
func Dial(t testing.TB, addr string) *Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dialling %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(HangBound))
	return &Conn{T: t, C: c, R: bufio.NewReader(c)}
}

// Send writes s as it is.
func (r *Conn) Send(s string) {
	r.T.Helper()
	if _, err := io.WriteString(r.C, s); err != nil {
		r.T.Fatalf("writing %q: %v", s, err)
	}
}

// Line reads one reply line without its CRLF.
func (r *Conn) Line() string {
	r.T.Helper()
	l, err := r.R.ReadString('\n')
	if err != nil {
		r.T.Fatalf("reading a reply line: %v (got %q)", err, l)
	}
	return strings.TrimSuffix(l, "\r\n")
}

// Reply reads one whole reply and renders it: bulk and simple strings as
// their text, integers as digits, nil as <nil>, arrays in brackets,
// errors with their leading "-".
func (r *Conn) Reply() string {
	r.T.Helper()
	l := r.Line()
	if l == "" {
		r.T.Fatal("empty reply line")
	}
	switch l[0] {
	case '+', ':':
		return l[1:]
	case '$':
		if l == "$-1" {
			return "<nil>"
		}
		return r.Line()
	case '*':
		var n int
		fmt.Sscan(l[1:], &n)
		parts := make([]string, n)
		for i := range parts {
			parts[i] = r.Reply()
		}
		return "[" + strings.Join(parts, " ") + "]"
	}
	return l
}

// Client is a go-redis client of addr with one connection (so that SELECT
// and AUTH state is the test's) and no retries (errors are the test's to
// see); it closes when the test ends. opts may be nil.
func Client(t testing.TB, addr string, opts *redis.Options) *redis.Client {
	t.Helper()
	if opts == nil {
		opts = &redis.Options{}
	}
	opts.Addr = addr
	opts.PoolSize = 1
	opts.MaxRetries = -1
	c := redis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Multibulk is the RESP encoding of a command.
func Multibulk(args ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.String()
}
