package testnode

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"testing"
)

func loadCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("%s: no PEM CERTIFICATE block", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}

// TestPKICertificatesVerifyForWhatTheyAreFor: a node certificate chains to
// the cluster CA for its host and localhost, as a server and as a client
// (nodes dial each other with it); the client certificate only as a
// client; the stranger's certificate does not chain to the cluster CA; the
// key files load.
func TestPKICertificatesVerifyForWhatTheyAreFor(t *testing.T) {
	p := NewPKI(t)
	roots := x509.NewCertPool()
	roots.AddCert(loadCert(t, p.CA))
	verify := func(path, host string, usage x509.ExtKeyUsage) error {
		_, err := loadCert(t, path).Verify(x509.VerifyOptions{Roots: roots, DNSName: host, KeyUsages: []x509.ExtKeyUsage{usage}})
		return err
	}
	node := p.Node("127.0.0.12")
	if again := p.Node("127.0.0.12"); again != node {
		t.Errorf("Node twice for one host: %+v then %+v, want the same files", node, again)
	}
	for _, host := range []string{"127.0.0.12", "127.0.0.1", "localhost"} {
		for _, u := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
			if err := verify(node.CertFile, host, u); err != nil {
				t.Errorf("node certificate for %s, usage %v: %v", host, u, err)
			}
		}
	}
	if err := verify(node.CertFile, "127.0.0.13", x509.ExtKeyUsageServerAuth); err == nil {
		t.Errorf("node certificate of 127.0.0.12 verified for 127.0.0.13")
	}
	if err := verify(p.Client.CertFile, "", x509.ExtKeyUsageClientAuth); err != nil {
		t.Errorf("client certificate as a client: %v", err)
	}
	if err := verify(p.Client.CertFile, "", x509.ExtKeyUsageServerAuth); err == nil {
		t.Errorf("client certificate verified as a server")
	}
	if err := verify(p.Stranger.CertFile, "127.0.0.1", x509.ExtKeyUsageClientAuth); err == nil {
		t.Errorf("stranger certificate verified against the cluster CA")
	}
	for _, kp := range []KeyPair{node, p.Client, p.Stranger} {
		if _, err := tls.LoadX509KeyPair(kp.CertFile, kp.KeyFile); err != nil {
			t.Errorf("loading %s and %s: %v", kp.CertFile, kp.KeyFile, err)
		}
	}
	if got := p.ServerFlags("127.0.0.12"); len(got) != 6 || got[1] != node.CertFile || got[3] != node.KeyFile || got[5] != p.CA {
		t.Errorf("ServerFlags = %q, want --tls-cert %s --tls-key %s --tls-ca %s", got, node.CertFile, node.KeyFile, p.CA)
	}
}
