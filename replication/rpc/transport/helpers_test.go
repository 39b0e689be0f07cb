package transport

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"flag"
	"io"
	"log"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/dynkv/dynkv/internal/testutil"
)

var seedFlag = flag.Int64("transport.seed", 0, "seed of the randomized tests (0: "+testutil.SeedEnv+" or time-based, testutil.Seed)")

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testPeer is a node's HTTP server on loopback with the transport mounted
// at DefaultPath, as node mounts it: HTTP/1.1, h2c and (with TLS) h2 on one
// port. The transport Server can be swapped to simulate a restart.
type testPeer struct {
	addr  string
	http  *http.Server
	srv   atomic.Pointer[Server]
	extra http.Handler // served at /other, for the HTTP/2 benchmark
}

func startPeer(tb testing.TB, s *Server, tc *tls.Config) *testPeer {
	tb.Helper()
	return startPeerWith(tb, s, tc, nil)
}

func startPeerWith(tb testing.TB, s *Server, tc *tls.Config, extra http.Handler) *testPeer {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &testPeer{addr: ln.Addr().String(), extra: extra}
	p.srv.Store(s)
	mux := http.NewServeMux()
	mux.HandleFunc(DefaultPath, func(w http.ResponseWriter, r *http.Request) { p.srv.Load().ServeHTTP(w, r) })
	if extra != nil {
		mux.Handle("/other", extra)
	}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	protocols.SetHTTP2(true)
	p.http = &http.Server{Handler: mux, Protocols: &protocols, TLSConfig: tc,
		ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, WriteTimeout: time.Minute,
		ErrorLog: log.New(io.Discard, "", 0)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if tc != nil {
			_ = p.http.ServeTLS(ln, "", "")
		} else {
			_ = p.http.Serve(ln)
		}
	}()
	tb.Cleanup(func() {
		_ = p.http.Close()
		<-done
		_ = p.srv.Load().Close()
	})
	return p
}

// swap replaces the transport server, closing the old one (its
// connections die as if the peer had crashed).
func (p *testPeer) swap(s *Server) {
	old := p.srv.Swap(s)
	_ = old.Close()
}

func newTestClient(tb testing.TB, cfg ClientConfig) *Client {
	tb.Helper()
	c := NewClient(cfg)
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// echo answers every call with its call byte and payload.
func echo(_ context.Context, call byte, payload []byte) ([]byte, error) {
	return append([]byte{call}, payload...), nil
}

func mustKeys(tb testing.TB, secrets ...string) *Keyring {
	tb.Helper()
	var b [][]byte
	for _, s := range secrets {
		b = append(b, []byte(s))
	}
	k, err := NewKeyring(b)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func ctxTimeout(tb testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	tb.Cleanup(cancel)
	return ctx
}

// eventually polls cond every few milliseconds until it holds or the
// deadline passes.
func eventually(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	testutil.Eventually(tb, d, 5*time.Millisecond, what, cond)
}

// rawConn is a hand-driven client: it upgrades a TCP connection and runs
// the client handshake, then lets a test write any bytes it likes.
type rawConn struct {
	nc   net.Conn
	br   *bufio.Reader
	sess session
	fr   *frameReader
}

func dialRaw(tb testing.TB, addr string, keys *Keyring) *rawConn {
	tb.Helper()
	nc := upgradeRaw(tb, addr)
	br := bufio.NewReader(nc)
	s, err := clientHandshake(nc, br, keys, DefaultMaxFrameBytes)
	if err != nil {
		tb.Fatalf("handshake: %v", err)
	}
	return &rawConn{nc: nc, br: br, sess: s, fr: &frameReader{br: br, limit: DefaultMaxFrameBytes, mac: s.recv}}
}

// upgradeRaw dials addr and performs the HTTP upgrade, leaving the
// connection right after the 101.
func upgradeRaw(tb testing.TB, addr string) net.Conn {
	tb.Helper()
	nc, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = io.WriteString(nc, "GET "+DefaultPath+" HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: "+Protocol+"\r\n\r\n")
	if err != nil {
		tb.Fatal(err)
	}
	// Read the 101 byte by byte, so nothing after it is buffered away.
	var resp []byte
	one := make([]byte, 1)
	for !strings.HasSuffix(string(resp), "\r\n\r\n") {
		if _, err := nc.Read(one); err != nil {
			tb.Fatalf("reading the 101: %v (so far %q)", err, resp)
		}
		resp = append(resp, one[0])
	}
	if !strings.HasPrefix(string(resp), "HTTP/1.1 101 ") {
		tb.Fatalf("upgrade answered %q", resp)
	}
	return nc
}

func (r *rawConn) send(tb testing.TB, h header, payload []byte) {
	tb.Helper()
	if _, err := r.nc.Write(appendFrame(nil, h, payload, r.sess.send)); err != nil {
		tb.Fatal(err)
	}
}

func (r *rawConn) read(tb testing.TB) (header, []byte) {
	tb.Helper()
	h, p, err := r.fr.read()
	if err != nil {
		tb.Fatalf("reading a frame: %v", err)
	}
	return h, p
}

// expectClosed reads until the server closes the connection, and returns
// the notice of a refused frame with ID 0 if one came first.
func expectClosed(tb testing.TB, nc net.Conn, br *bufio.Reader) string {
	tb.Helper()
	_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	fr := &frameReader{br: br, limit: DefaultMaxFrameBytes}
	notice := ""
	for {
		h, p, err := fr.read()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				tb.Fatalf("the server did not close the connection (notice %q)", notice)
			}
			return notice
		}
		if h.typ == frameRefused && h.id == 0 {
			notice = string(p)
		}
	}
}

// testPKI is a CA with a server certificate for 127.0.0.1, a client
// certificate, and a certificate of a stranger CA, as the node's
// --tls-cert/--tls-key/--tls-ca would hold.
type testPKI struct {
	pool                     *x509.CertPool
	server, client, stranger tls.Certificate
}

func newTestPKI(tb testing.TB) testPKI {
	tb.Helper()
	ca, caKey, pool := newCA(tb, "dynkv test CA")
	sca, scaKey, _ := newCA(tb, "stranger CA")
	return testPKI{
		pool:     pool,
		server:   issue(tb, ca, caKey, 2, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth),
		client:   issue(tb, ca, caKey, 3, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth),
		stranger: issue(tb, sca, scaKey, 4, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth),
	}
}

func newCA(tb testing.TB, name string) (*x509.Certificate, *ecdsa.PrivateKey, *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return cert, key, pool
}

func issue(tb testing.TB, ca *x509.Certificate, caKey *ecdsa.PrivateKey, serial int64, usage ...x509.ExtKeyUsage) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "node"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: usage,
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// serverTLS is the node's server side: its certificate, and with the CA
// client certificates verified if given (VerifyClientCertIfGiven, as the
// port is shared with clients).
func (p testPKI) serverTLS() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{p.server}, ClientCAs: p.pool,
		ClientAuth: tls.VerifyClientCertIfGiven, MinVersion: tls.VersionTLS12}
}

func (p testPKI) clientTLS(cert *tls.Certificate) *tls.Config {
	c := &tls.Config{RootCAs: p.pool, MinVersion: tls.VersionTLS12}
	if cert != nil {
		c.Certificates = []tls.Certificate{*cert}
	}
	return c
}

// requireClientCert is the node's mutual-TLS rule (node.authorizePeer).
func requireClientCert(r *http.Request) bool {
	return r.TLS != nil && len(r.TLS.VerifiedChains) > 0
}

func newRand(seed int64) *mrand.Rand { return mrand.New(mrand.NewPCG(uint64(seed), 0)) }
