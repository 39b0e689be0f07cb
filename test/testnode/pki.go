package testnode

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// KeyPair is a certificate and its private key, as PEM files.
type KeyPair struct {
	CertFile, KeyFile string
}

// PKI is a throwaway public-key infrastructure for TLS tests, written to a
// temporary directory: the cluster's CA, certificates it issues for nodes
// and clients, and a stranger: a CA of its own with a certificate, as an
// attacker who can make certificates, but not with the cluster's CA, has.
//
// A node certificate carries both ExtKeyUsages, server and client auth,
// because a node presents the same certificate when it serves and when it
// dials a peer (node-to-node mutual TLS).
type PKI struct {
	tb  testing.TB
	dir string
	ca  *authority
	// stranger is the other CA; Stranger is the certificate it issued.
	stranger *authority

	// CA is the cluster's CA certificate (what --tls-ca names).
	CA string
	// Client is a certificate for a client (client auth only) from the
	// cluster's CA.
	Client KeyPair
	// Stranger is a node-like certificate (server and client auth, every
	// loopback SAN) issued by the stranger CA, which no node trusts.
	Stranger KeyPair
	// StrangerCA is the stranger's CA certificate.
	StrangerCA string

	mu    sync.Mutex
	nodes map[string]KeyPair // by host
}

// authority is one CA: its certificate and key in memory and its PEM file.
type authority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string
	pool *x509.CertPool
}

// certValidity is long enough for any test and short enough that a leaked
// test key is worthless soon.
const certValidity = 24 * time.Hour

// NewPKI creates the cluster CA, a client certificate, and the stranger CA
// and its certificate under a temporary directory of tb. It fails tb on any
// error.
func NewPKI(tb testing.TB) *PKI {
	tb.Helper()
	p := &PKI{tb: tb, dir: tb.TempDir(), nodes: map[string]KeyPair{}}
	var err error
	if p.ca, err = newAuthority(p.dir, "ca", "dynkv test CA"); err != nil {
		tb.Fatalf("testnode: PKI: %v", err)
	}
	if p.stranger, err = newAuthority(p.dir, "stranger-ca", "stranger CA"); err != nil {
		tb.Fatalf("testnode: PKI: %v", err)
	}
	p.CA, p.StrangerCA = p.ca.file, p.stranger.file
	if p.Client, err = p.ca.issue(p.dir, "client", "dynkv test client", nil, x509.ExtKeyUsageClientAuth); err != nil {
		tb.Fatalf("testnode: PKI: %v", err)
	}
	if p.Stranger, err = p.stranger.issue(p.dir, "stranger", "stranger", loopbackSANs(), x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth); err != nil {
		tb.Fatalf("testnode: PKI: %v", err)
	}
	return p
}

// Dir is the directory holding every file.
func (p *PKI) Dir() string { return p.dir }

// Node returns the certificate of the node at host (an IP address or a
// name), issued once by the cluster CA for server and client auth, with
// host, 127.0.0.1, ::1 and localhost as SANs.
func (p *PKI) Node(host string) KeyPair {
	p.tb.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if kp, ok := p.nodes[host]; ok {
		return kp
	}
	name := fmt.Sprintf("node-%d", len(p.nodes))
	kp, err := p.ca.issue(p.dir, name, "dynkv node "+host, append(loopbackSANs(), host),
		x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
	if err != nil {
		p.tb.Fatalf("testnode: PKI: certificate for node %s: %v", host, err)
	}
	p.nodes[host] = kp
	return kp
}

// ServerFlags are the `dynkv server` flags for the node at host: its
// certificate and key, and the cluster CA, which makes node-to-node calls
// mutual TLS.
func (p *PKI) ServerFlags(host string) []string {
	p.tb.Helper()
	kp := p.Node(host)
	return []string{"--tls-cert", kp.CertFile, "--tls-key", kp.KeyFile, "--tls-ca", p.CA}
}

// ClientTLS trusts the cluster CA and presents no certificate: what a
// client of the HTTP API or the Redis port uses.
func (p *PKI) ClientTLS() *tls.Config {
	return &tls.Config{RootCAs: p.ca.pool, MinVersion: tls.VersionTLS12}
}

// TLSWith trusts the cluster CA and presents kp, e.g. a node's own
// certificate (to act as a member) or Stranger. It presents kp whatever
// CAs the server asks for: crypto/tls on its own sends no certificate
// that the server's list of acceptable CAs rules out, so a stranger's
// certificate would never reach the server's verification.
func (p *PKI) TLSWith(kp KeyPair) *tls.Config {
	p.tb.Helper()
	cert, err := tls.LoadX509KeyPair(kp.CertFile, kp.KeyFile)
	if err != nil {
		p.tb.Fatalf("testnode: PKI: loading %s: %v", kp.CertFile, err)
	}
	c := p.ClientTLS()
	c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	return c
}

// StrangerTrust trusts only the stranger CA: a client that does not know
// the cluster's CA, whose handshake with a node must fail.
func (p *PKI) StrangerTrust() *tls.Config {
	return &tls.Config{RootCAs: p.stranger.pool, MinVersion: tls.VersionTLS12}
}

func loopbackSANs() []string { return []string{"localhost", "127.0.0.1", "::1"} }

func newAuthority(dir, name, cn string) (*authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating the key of %s: %w", cn, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"dynkv tests"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(certValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("self-signing %s: %w", cn, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", cn, err)
	}
	file := filepath.Join(dir, name+".pem")
	if err := writePEM(file, "CERTIFICATE", der, 0o644); err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &authority{cert: cert, key: key, file: file, pool: pool}, nil
}

// issue writes name.pem and name-key.pem: a leaf certificate for hosts
// (IP addresses become IP SANs, anything else a DNS SAN) with usages.
func (a *authority) issue(dir, name, cn string, hosts []string, usages ...x509.ExtKeyUsage) (KeyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return KeyPair{}, fmt.Errorf("generating the key of %s: %w", cn, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"dynkv tests"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(certValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  usages,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, &key.PublicKey, a.key)
	if err != nil {
		return KeyPair{}, fmt.Errorf("signing %s: %w", cn, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return KeyPair{}, fmt.Errorf("encoding the key of %s: %w", cn, err)
	}
	kp := KeyPair{CertFile: filepath.Join(dir, name+".pem"), KeyFile: filepath.Join(dir, name+"-key.pem")}
	if err := writePEM(kp.CertFile, "CERTIFICATE", der, 0o644); err != nil {
		return KeyPair{}, err
	}
	if err := writePEM(kp.KeyFile, "PRIVATE KEY", keyDER, 0o600); err != nil {
		return KeyPair{}, err
	}
	return kp, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // never fails on Linux
	}
	return n
}

func writePEM(path, typ string, der []byte, perm os.FileMode) error {
	b := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	if err := os.WriteFile(path, b, perm); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
