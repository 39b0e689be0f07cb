package rpc

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dynkv/dynkv/replication/rpc/transport"
)

// testPKI is a CA with one server certificate for 127.0.0.1 and one client
// certificate, as an operator would issue with --tls-cert/--tls-key/--tls-ca.
type testPKI struct {
	pool           *x509.CertPool
	server, client tls.Certificate
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "dynkv test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(serial int64, usage x509.ExtKeyUsage) tls.Certificate {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "node"},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return testPKI{pool: pool, server: issue(2, x509.ExtKeyUsageServerAuth), client: issue(3, x509.ExtKeyUsageClientAuth)}
}

// TestCallsUseTheTransportOverMutualTLS: with TLS configured, calls take
// the transport over TLS (ALPN http/1.1, then the upgrade) and present the
// node's client certificate, which the peer demands on the upgrade as node
// does (a port shared with clients verifies a certificate if given, and the
// RPC's Authorize requires one). A caller without one is refused with 401
// and writes nothing.
func TestCallsUseTheTransportOverMutualTLS(t *testing.T) {
	checkLeaks(t)
	pki := newTestPKI(t)
	st := openStore(t)
	srv := &Server{Store: st, Authorize: func(r *http.Request) bool {
		return r.TLS != nil && len(r.TLS.VerifiedChains) > 0
	}}
	ts := &transport.Server{Handler: srv.ServeCall, Authorize: srv.Authorize}
	var upgrades, http2Calls atomic.Int64
	var sawALPN atomic.Value
	mux := http.NewServeMux()
	h := srv.Handler()
	mux.Handle(PathPrefix, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http2Calls.Add(1)
		h.ServeHTTP(w, r)
	}))
	mux.HandleFunc(transport.DefaultPath, func(w http.ResponseWriter, r *http.Request) {
		upgrades.Add(1)
		if r.TLS != nil {
			sawALPN.Store(r.TLS.NegotiatedProtocol)
		}
		ts.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(true)
	hs := &http.Server{
		Protocols: &protocols,
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{pki.server},
			ClientCAs:    pki.pool,
			ClientAuth:   tls.VerifyClientCertIfGiven,
			MinVersion:   tls.VersionTLS12,
		},
		Handler:  mux,
		ErrorLog: log.New(io.Discard, "", 0),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = hs.ServeTLS(ln, "", "")
	}()
	t.Cleanup(func() { _ = hs.Close(); <-done; _ = ts.Close() })
	addr := ln.Addr().String()

	c := newTestClient(t, ClientConfig{TLS: &tls.Config{
		RootCAs: pki.pool, Certificates: []tls.Certificate{pki.client}, MinVersion: tls.VersionTLS12,
	}})
	for range 3 {
		if err := c.Merge(ctxTimeout(t), addr, 0, []byte("k"), sampleSet("v")); err != nil {
			t.Fatalf("Merge over TLS: %v", err)
		}
	}
	if u, n, alpn := upgrades.Load(), http2Calls.Load(), sawALPN.Load(); u != 1 || n != 0 || alpn != "http/1.1" {
		t.Fatalf("3 merges made %d upgrades (ALPN %v) and %d HTTP/2 calls, want one upgrade over http/1.1 and no HTTP/2", u, alpn, n)
	}

	anonymous := newTestClient(t, ClientConfig{Retries: -1, TLS: &tls.Config{RootCAs: pki.pool, MinVersion: tls.VersionTLS12}})
	err = anonymous.Merge(ctxTimeout(t), addr, 0, []byte("anonymous"), sampleSet("v"))
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("Merge over TLS without a client certificate: %v, want ErrUnauthorized", err)
	}
	if _, err := st.Get(0, []byte("anonymous")); err == nil {
		t.Fatal("a merge without a client certificate was written")
	}
}

// TestCallsUseHTTP2OverMutualTLS: with TLS configured, calls to a peer of
// an older version (no transport: its RPC answers the upgrade with 404)
// negotiate h2 and present the node's client certificate, which the peer
// verifies.
func TestCallsUseHTTP2OverMutualTLS(t *testing.T) {
	checkLeaks(t)
	pki := newTestPKI(t)
	st := openStore(t)
	h := (&Server{Store: st}).Handler()
	var sawH2, sawClientCert atomic.Bool
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(true)
	srv := &http.Server{
		Protocols: &protocols,
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{pki.server},
			ClientCAs:    pki.pool,
			ClientAuth:   tls.RequireAndVerifyClientCert,
			MinVersion:   tls.VersionTLS12,
		},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == transport.DefaultPath {
				h.ServeHTTP(w, r) // 404, as an older node answers the upgrade
				return
			}
			sawH2.Store(r.ProtoMajor == 2)
			sawClientCert.Store(r.TLS != nil && len(r.TLS.PeerCertificates) == 1)
			h.ServeHTTP(w, r)
		}),
		// The refused handshake below is expected; keep it out of the output.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.ServeTLS(ln, "", "")
	}()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	addr := ln.Addr().String()

	c := newTestClient(t, ClientConfig{TLS: &tls.Config{
		RootCAs: pki.pool, Certificates: []tls.Certificate{pki.client}, MinVersion: tls.VersionTLS12,
	}})
	if err := c.Merge(ctxTimeout(t), addr, 0, []byte("k"), sampleSet("v")); err != nil {
		t.Fatalf("Merge over TLS: %v", err)
	}
	if !sawH2.Load() || !sawClientCert.Load() {
		t.Fatalf("server saw HTTP/2=%v client certificate=%v, want both", sawH2.Load(), sawClientCert.Load())
	}

	// Without a client certificate the peer refuses the handshake.
	anonymous := newTestClient(t, ClientConfig{Retries: -1, TLS: &tls.Config{RootCAs: pki.pool, MinVersion: tls.VersionTLS12}})
	err = anonymous.Merge(ctxTimeout(t), addr, 0, []byte("k"), sampleSet("v"))
	var re *RemoteError
	if err == nil || errors.As(err, &re) {
		t.Fatalf("Merge over TLS without a client certificate: %v, want a transport error", err)
	}
}
