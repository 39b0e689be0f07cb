package node

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestBearerTokensGuardEverythingButHealth(t *testing.T) {
	cfg := testConfig(t)
	cfg.AuthTokens = []string{"first-secret", "second-secret"}
	tn := startNode(t, &cfg, nil)

	for _, h := range []string{"", "first-secret", "Bearer", "Bearer ", "Bearer wrong", "Basic Zmlyc3Qtc2VjcmV0", "Bearer first-secretX"} {
		for _, target := range []string{"/kv/k", "/db/1/kv/k", "/metrics", "/cluster/status", "/internal/v1/debug/local/0/k", "/nope"} {
			r := tn.get(target, map[string]string{"Authorization": h})
			if r.status != http.StatusUnauthorized || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("GET %s with Authorization %q = %d WWW-Authenticate %q, want 401 Bearer",
					target, h, r.status, r.header.Get("WWW-Authenticate"))
				continue
			}
			r.jsonError(t)
		}
	}
	if r := tn.put("/kv/k", "v", nil); r.status != http.StatusUnauthorized {
		t.Fatalf("PUT without a token = %d, want 401", r.status)
	}
	for _, target := range []string{"/cluster/join", "/cluster/leave"} {
		if r := tn.do(http.MethodPost, target, strings.NewReader(`{"addrs":["127.0.0.1:1"]}`), nil); r.status != http.StatusUnauthorized {
			t.Errorf("POST %s without a token = %d, want 401", target, r.status)
		}
	}
	for _, target := range []string{"/health", "/ready"} {
		if r := tn.get(target, nil); r.status != http.StatusOK {
			t.Fatalf("%s without a token = %d, want 200 (liveness and readiness probes carry no secret)", target, r.status)
		}
	}
	for _, tok := range []string{"first-secret", "second-secret"} {
		auth := map[string]string{"Authorization": "Bearer " + tok}
		if r := tn.put("/kv/k", tok, auth); r.status != http.StatusNoContent {
			t.Fatalf("PUT with token %q = %d, want 204", tok, r.status)
		}
		if r := tn.get("/kv/k", map[string]string{"Authorization": "bearer " + tok}); r.status != http.StatusOK || string(r.body) != tok {
			t.Fatalf("GET with lower-case scheme and token %q = %d %q, want 200 %q", tok, r.status, r.body, tok)
		}
	}
}

// testPKI writes a CA, a server certificate for 127.0.0.1 and a client
// certificate, all signed by the CA, and returns their paths.
type testPKI struct {
	dir                       string
	caFile, certFile, keyFile string
	pool                      *x509.CertPool
	clientCert, strangerCert  tls.Certificate
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	p := testPKI{dir: t.TempDir(), pool: x509.NewCertPool()}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "dynkv test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	p.pool.AddCert(ca)
	p.caFile = p.writePEM(t, "ca.pem", "CERTIFICATE", caDER)

	issue := func(serial int64, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, usage ...x509.ExtKeyUsage) (*ecdsa.PrivateKey, []byte) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "dynkv test"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: usage,
			KeyUsage: x509.KeyUsageDigitalSignature,
		}
		if parent == nil {
			parent, parentKey = tmpl, key
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
		if err != nil {
			t.Fatal(err)
		}
		return key, der
	}
	// A node's certificate serves clients and, for node-to-node RPC,
	// authenticates it to its peers.
	srvKey, srvDER := issue(2, ca, caKey, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
	p.certFile = p.writePEM(t, "server.pem", "CERTIFICATE", srvDER)
	keyDER, _ := x509.MarshalECPrivateKey(srvKey)
	p.keyFile = p.writePEM(t, "server-key.pem", "EC PRIVATE KEY", keyDER)

	cliKey, cliDER := issue(3, ca, caKey, x509.ExtKeyUsageClientAuth)
	p.clientCert = tls.Certificate{Certificate: [][]byte{cliDER}, PrivateKey: cliKey}
	// A self-signed client certificate the CA never issued.
	strKey, strDER := issue(4, nil, nil, x509.ExtKeyUsageClientAuth)
	p.strangerCert = tls.Certificate{Certificate: [][]byte{strDER}, PrivateKey: strKey}
	return p
}

func (p testPKI) writePEM(t *testing.T, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestTLSServesHTTPSAndChecksPresentedClientCertificates(t *testing.T) {
	pki := newTestPKI(t)
	cfg := testConfig(t)
	cfg.TLSCert, cfg.TLSKey, cfg.TLSCA = pki.certFile, pki.keyFile, pki.caFile
	tn := startNode(t, &cfg, nil)
	url := "https://" + tn.Addr() + "/kv/k"

	call := func(certs ...tls.Certificate) (int, error) {
		tc := &tls.Config{RootCAs: pki.pool}
		if len(certs) > 0 {
			// Certificates would be filtered by the server's
			// acceptable CAs; this sends the certificate regardless.
			tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &certs[0], nil }
		}
		tr := &http.Transport{TLSClientConfig: tc}
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequest(http.MethodPut, url, strings.NewReader("secure"))
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	if s, err := call(); err != nil || s != http.StatusNoContent {
		t.Fatalf("PUT over TLS without a client certificate = %d, %v; want 204", s, err)
	}
	if s, err := call(pki.clientCert); err != nil || s != http.StatusNoContent {
		t.Fatalf("PUT over TLS with a CA-issued client certificate = %d, %v; want 204", s, err)
	}
	if s, err := call(pki.strangerCert); err == nil {
		t.Fatalf("PUT with a client certificate the CA did not issue = %d, want a handshake failure", s)
	}
	// Plain HTTP to the TLS port gets Go's 400, not a stored value.
	if r := tn.put("/kv/plain", "v", nil); r.status != http.StatusBadRequest {
		t.Fatalf("plain HTTP to a TLS listener = %d, want 400", r.status)
	}
}

func TestNewFailsOnUnreadableTLSFiles(t *testing.T) {
	pki := newTestPKI(t)
	for name, mutate := range map[string]func(*Config){
		"missing cert": func(c *Config) { c.TLSCert, c.TLSKey = filepath.Join(pki.dir, "none.pem"), pki.keyFile },
		"key for cert": func(c *Config) { c.TLSCert, c.TLSKey = pki.keyFile, pki.keyFile },
		"missing ca": func(c *Config) {
			c.TLSCert, c.TLSKey, c.TLSCA = pki.certFile, pki.keyFile, filepath.Join(pki.dir, "none.pem")
		},
		"ca not pem": func(c *Config) { c.TLSCert, c.TLSKey, c.TLSCA = pki.certFile, pki.keyFile, pki.keyFile },
	} {
		cfg := testConfig(t)
		mutate(&cfg)
		if n, err := New(cfg, nil); err == nil {
			n.Shutdown(t.Context())
			t.Errorf("%s: New succeeded, want an error", name)
		} else if !strings.Contains(err.Error(), "--tls") {
			t.Errorf("%s: error %q does not name the flag", name, err)
		}
	}
}

func TestProfilerOnlyWhenAskedAndBehindTheToken(t *testing.T) {
	off := startNode(t, nil, nil)
	if r := off.get("/debug/pprof/", nil); r.status != http.StatusNotFound {
		t.Errorf("/debug/pprof/ without --pprof = %d, want 404", r.status)
	}
	cfg := testConfig(t)
	cfg.Pprof = true
	cfg.AuthTokens = []string{"tok"}
	on := startNode(t, &cfg, nil)
	if r := on.get("/debug/pprof/", nil); r.status != http.StatusUnauthorized {
		t.Errorf("/debug/pprof/ without a token = %d, want 401", r.status)
	}
	if r := on.get("/debug/pprof/", map[string]string{"Authorization": "Bearer tok"}); r.status != http.StatusOK {
		t.Errorf("/debug/pprof/ with the token = %d, want 200", r.status)
	}
}
