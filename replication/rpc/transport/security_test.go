package transport

import (
	"bufio"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// countingEcho is echo that counts its calls, to show that refused callers
// ran nothing.
func countingEcho(n *atomic.Int32) Handler {
	return func(ctx context.Context, call byte, payload []byte) ([]byte, error) {
		n.Add(1)
		return echo(ctx, call, payload)
	}
}

func TestMutualTLSAdmitsOnlyCertificatesOfTheCA(t *testing.T) {
	pki := newTestPKI(t)
	var ran atomic.Int32
	var alpn atomic.Value
	authorize := func(r *http.Request) bool {
		if r.TLS != nil {
			alpn.Store(r.TLS.NegotiatedProtocol)
		}
		return requireClientCert(r)
	}
	p := startPeer(t, &Server{Handler: countingEcho(&ran), Authorize: authorize}, pki.serverTLS())

	member := newTestClient(t, ClientConfig{TLS: pki.clientTLS(&pki.client)})
	resp, err := member.Call(ctxTimeout(t, 5*time.Second), p.addr, 1, []byte("tls"))
	if err != nil || string(resp) != "\x01tls" {
		t.Fatalf("member with a CA certificate: %q, %v", resp, err)
	}
	if got := alpn.Load(); got != "http/1.1" {
		t.Fatalf("the upgrade negotiated ALPN %q, want http/1.1", got)
	}

	for _, tc := range []struct {
		name         string
		cfg          ClientConfig
		unauthorized bool
	}{
		// The port is shared with clients, so a handshake without a
		// certificate succeeds and the upgrade is refused.
		{"no client certificate", ClientConfig{TLS: pki.clientTLS(nil)}, true},
		// A certificate of another CA is not sent (the server names
		// its CA in the handshake), and the upgrade is refused likewise.
		{"certificate of a stranger CA", ClientConfig{TLS: pki.clientTLS(&pki.stranger)}, true},
		// A client that does not trust the server's CA gives up in the
		// TLS handshake.
		{"server of a stranger CA", ClientConfig{TLS: &tls.Config{RootCAs: x509.NewCertPool(), Certificates: []tls.Certificate{pki.client}}}, false},
		// Nor may a client that does not know the TLS talk plain text.
		{"plain text to a TLS port", ClientConfig{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestClient(t, tc.cfg)
			_, err := c.Call(ctxTimeout(t, 5*time.Second), p.addr, 1, nil)
			if !errors.Is(err, ErrNotDelivered) || errors.Is(err, ErrUnauthorized) != tc.unauthorized {
				t.Fatalf("%v: want ErrNotDelivered, ErrUnauthorized %v", err, tc.unauthorized)
			}
		})
	}
	if n := ran.Load(); n != 1 {
		t.Fatalf("the handler ran %d times, want once (for the member)", n)
	}
}

func TestKeyedHandshakeAcceptsEveryStepOfARollingRotation(t *testing.T) {
	// Rotation from "old" to "new" by rolling restarts: add the new secret
	// second, make it first, drop the old one. Any two nodes in adjacent
	// steps must talk.
	steps := [][]string{{"old"}, {"old", "new"}, {"new", "old"}, {"new"}}
	for i := range steps {
		for j := i; j <= i+1 && j < len(steps); j++ {
			for _, pair := range [][2][]string{{steps[i], steps[j]}, {steps[j], steps[i]}} {
				client, server := pair[0], pair[1]
				name := strings.Join(client, "+") + " calls " + strings.Join(server, "+")
				t.Run(name, func(t *testing.T) {
					p := startPeer(t, &Server{Handler: echo, Keys: mustKeys(t, server...)}, nil)
					c := newTestClient(t, ClientConfig{Keys: mustKeys(t, client...)})
					resp, err := c.Call(ctxTimeout(t, 5*time.Second), p.addr, 1, []byte("k"))
					if err != nil || string(resp) != "\x01k" {
						t.Fatalf("%q, %v", resp, err)
					}
				})
			}
		}
	}
}

func TestKeyedHandshakeRefusesStrangers(t *testing.T) {
	for _, tc := range []struct {
		name           string
		client, server []string
		says           string
	}{
		{"another key", []string{"theirs"}, []string{"ours"}, "the peer's proof matches none of this node's keys"},
		{"a stale first key", []string{"retired", "ours"}, []string{"ours"}, "the caller's proof matches none of this node's keys"},
		{"no key against a keyed server", nil, []string{"ours"}, "demands the keyed handshake"},
		{"a key against an unkeyed server", []string{"ours"}, nil, "does not prove a cluster key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ran atomic.Int32
			p := startPeer(t, &Server{Handler: countingEcho(&ran), Keys: mustKeys(t, tc.server...)}, nil)
			c := newTestClient(t, ClientConfig{Keys: mustKeys(t, tc.client...)})
			_, err := c.Call(ctxTimeout(t, 5*time.Second), p.addr, 1, nil)
			if !errors.Is(err, ErrUnauthorized) || !errors.Is(err, ErrNotDelivered) {
				t.Fatalf("%v: want ErrUnauthorized and ErrNotDelivered", err)
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("%v: want it to say %q", err, tc.says)
			}
			if ran.Load() != 0 {
				t.Fatal("a refused caller ran a handler")
			}
		})
	}
}

func TestForgedReplayedOrReorderedFramesAreRefused(t *testing.T) {
	keys := mustKeys(t, "ours")
	var ran atomic.Int32
	p := startPeer(t, &Server{Handler: countingEcho(&ran), Keys: keys}, nil)

	r := dialRaw(t, p.addr, keys)
	r.send(t, header{typ: frameRequest, code: 1, id: 1}, []byte("good"))
	if h, payload := r.read(t); h.typ != frameResponse || string(payload) != "\x01good" {
		t.Fatalf("a well-MACed request got %s %q", h.typ, payload)
	}

	for _, tc := range []struct {
		name string
		junk func(r *rawConn) []byte
	}{
		{"altered payload", func(r *rawConn) []byte {
			b := appendFrame(nil, header{typ: frameRequest, code: 1, id: 1}, []byte("transfer 1"), r.sess.send)
			b[headerSize] ^= 1
			return b
		}},
		{"altered header", func(r *rawConn) []byte {
			b := appendFrame(nil, header{typ: frameRequest, code: 1, id: 1}, nil, r.sess.send)
			b[2] = 2 // another call
			return b
		}},
		{"frames without a MAC", func(r *rawConn) []byte {
			// The second frame's bytes are read as the first's MAC.
			b := appendFrame(nil, header{typ: frameRequest, code: 1, id: 1}, []byte("hi"), nil)
			return appendFrame(b, header{typ: frameRequest, code: 1, id: 2}, []byte("hi"), nil)
		}},
		{"MAC of another session", func(r *rawConn) []byte {
			other := dialRaw(t, p.addr, keys)
			return appendFrame(nil, header{typ: frameRequest, code: 1, id: 1}, nil, other.sess.send)
		}},
		{"replayed frame", func(r *rawConn) []byte {
			b := appendFrame(nil, header{typ: frameRequest, code: 1, id: 1}, []byte("once"), r.sess.send)
			if _, err := r.nc.Write(b); err != nil {
				t.Fatal(err)
			}
			if h, _ := r.read(t); h.typ != frameResponse {
				t.Fatalf("the original got %s", h.typ)
			}
			return b // the same bytes again, with a new ID would not help either
		}},
		{"reordered frames", func(r *rawConn) []byte {
			first := appendFrame(nil, header{typ: frameRequest, code: 1, id: 1}, []byte("1"), r.sess.send)
			second := appendFrame(nil, header{typ: frameRequest, code: 1, id: 2}, []byte("2"), r.sess.send)
			return append(second, first...)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := dialRaw(t, p.addr, keys)
			junk := tc.junk(r)
			after := ran.Load()
			if _, err := r.nc.Write(junk); err != nil {
				t.Fatal(err)
			}
			notice := readNoticeKeyed(t, r)
			if !strings.Contains(notice, "failed its MAC") {
				t.Fatalf("the server's notice %q does not name the MAC failure", notice)
			}
			if ran.Load() != after {
				t.Fatal("a forged frame ran a handler")
			}
		})
	}
}

// readNoticeKeyed reads a keyed connection's frames until it closes and
// returns the refusal notice, checking the server's own MACs.
func readNoticeKeyed(t *testing.T, r *rawConn) string {
	t.Helper()
	_ = r.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	notice := ""
	for {
		h, p, err := r.fr.read()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("the server did not close the connection")
			}
			return notice
		}
		if h.typ == frameRefused && h.id == 0 {
			notice = string(p)
		}
	}
}

func TestRecordedHandshakeCannotBeReplayed(t *testing.T) {
	keys := mustKeys(t, "ours")
	p := startPeer(t, &Server{Handler: echo, Keys: keys}, nil)
	// Record a member's hello and proof.
	nc := upgradeRaw(t, p.addr)
	br := bufio.NewReader(nc)
	rec := &recordingConn{Conn: nc}
	if _, err := clientHandshake(rec, br, keys, DefaultMaxFrameBytes); err != nil {
		t.Fatal(err)
	}
	if len(rec.writes) != 2 {
		t.Fatalf("recorded %d writes, want hello and proof", len(rec.writes))
	}
	// Replay them on a new connection: the server's fresh nonce makes the
	// old proof worthless.
	nc2 := upgradeRaw(t, p.addr)
	br2 := bufio.NewReader(nc2)
	if _, err := nc2.Write(rec.writes[0]); err != nil {
		t.Fatal(err)
	}
	fr := &frameReader{br: br2, limit: maxNoticePayload}
	if h, _, err := fr.read(); err != nil || h.typ != frameWelcome {
		t.Fatalf("replayed hello: %s, %v", h.typ, err)
	}
	if _, err := nc2.Write(rec.writes[1]); err != nil {
		t.Fatal(err)
	}
	if notice := expectClosed(t, nc2, br2); !strings.Contains(notice, "proof matches none") {
		t.Fatalf("replayed proof: notice %q, want a refusal of the proof", notice)
	}
}

type recordingConn struct {
	net.Conn
	writes [][]byte
}

func (c *recordingConn) Write(b []byte) (int, error) {
	c.writes = append(c.writes, append([]byte(nil), b...))
	return c.Conn.Write(b)
}

func TestClientRefusesAlteredResponses(t *testing.T) {
	keys := mustKeys(t, "ours")
	// A keyed server whose responses an on-path attacker alters.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		nc, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer nc.Close()
		_, _ = nc.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + Protocol + "\r\n\r\n"))
		s, err := serverHandshake(nc, brw.Reader, keys, DefaultMaxFrameBytes, 10)
		if err != nil {
			return
		}
		fr := &frameReader{br: brw.Reader, limit: DefaultMaxFrameBytes, mac: s.recv}
		h, _, err := fr.read()
		if err != nil {
			return
		}
		b := appendFrame(nil, header{typ: frameResponse, id: h.id}, []byte("balance: 100"), s.send)
		b[headerSize+9] = '9' // "balance: 900"
		_, _ = nc.Write(b)
		_, _, _ = fr.read() // until the client hangs up
	})}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })
	c := newTestClient(t, ClientConfig{Keys: keys})
	resp, err := c.Call(ctxTimeout(t, 5*time.Second), ln.Addr().String(), 1, nil)
	if !errors.Is(err, ErrUnauthorized) || !errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("altered response: %q, %v; want ErrUnauthorized with ErrOutcomeUnknown", resp, err)
	}
	_ = c.Close()
	_ = hs.Close()
}

// bearer mirrors node.validToken: "Bearer <token>", scheme in any case,
// the token compared in constant time.
func bearer(tokens ...string) func(*http.Request) bool {
	return func(r *http.Request) bool {
		scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
			return false
		}
		for _, t := range tokens {
			if subtle.ConstantTimeCompare([]byte(t), []byte(token)) == 1 {
				return true
			}
		}
		return false
	}
}

func TestBearerTokenGuardsTheUpgradeWhenNothingElseIsConfigured(t *testing.T) {
	var ran atomic.Int32
	p := startPeer(t, &Server{Handler: countingEcho(&ran), Authorize: bearer("new-token", "old-token")}, nil)
	for _, tc := range []struct {
		token string
		ok    bool
	}{{"new-token", true}, {"old-token", true}, {"wrong", false}, {"", false}} {
		c := newTestClient(t, ClientConfig{AuthToken: tc.token})
		_, err := c.Call(ctxTimeout(t, 5*time.Second), p.addr, 1, nil)
		if tc.ok && err != nil {
			t.Fatalf("token %q: %v", tc.token, err)
		}
		if !tc.ok && (!errors.Is(err, ErrUnauthorized) || !errors.Is(err, ErrNotDelivered)) {
			t.Fatalf("token %q: %v, want ErrUnauthorized, not delivered", tc.token, err)
		}
	}
	if n := ran.Load(); n != 2 {
		t.Fatalf("the handler ran %d times, want 2", n)
	}
	if st := p.srv.Load().Stats(); st.UpgradesRefused != 2 {
		t.Fatalf("server stats %+v, want 2 upgrades refused", st)
	}
}
