package replication

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

// TestCallsUseHTTP2OverMutualTLS: with TLS configured, calls negotiate h2
// and present the node's client certificate, which the peer verifies.
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
