package redistest

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
	"time"
)

// certs is a CA and one server certificate signed by it, as PEM. A cluster shares
// one set between its nodes so that a single client configuration trusts them all
// and the nodes trust each other on the bus and for replication.
type certs struct {
	caPEM   []byte
	certPEM []byte
	keyPEM  []byte
}

// authority is a generated certificate authority able to sign leaf certificates.
type authority struct {
	cert *x509.Certificate
	der  []byte
	key  *ecdsa.PrivateKey
}

func newAuthority() (*authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "redistest CA", Organization: []string{"redistest"}},
		NotBefore:             now.Add(-time.Hour), // tolerate clock skew between here and OpenSSL
		NotAfter:              now.Add(7 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &authority{cert: cert, der: der, key: key}, nil
}

// newCerts generates a CA and a server certificate for localhost, 127.0.0.1, ::1
// and hosts. The certificate is good for client authentication too, because
// redis-server presents the same certificate when it dials other nodes.
func newCerts(hosts []string) (*certs, error) {
	ca, err := newAuthority()
	if err != nil {
		return nil, fmt.Errorf("redistest: generate CA: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("redistest: generate server key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "localhost", Organization: []string{"redistest"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("redistest: sign server certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("redistest: encode server key: %w", err)
	}
	return &certs{
		caPEM:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.der}),
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

func randomSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("redistest: certificate serial: %w", err)
	}
	return serial, nil
}

// write stores the PEM files in dir and returns the redis-server arguments that
// use them.
func (c *certs) write(dir string) ([]string, error) {
	ca := filepath.Join(dir, "ca.crt")
	cert := filepath.Join(dir, "redis.crt")
	key := filepath.Join(dir, "redis.key")
	for _, f := range []struct {
		path string
		data []byte
	}{{ca, c.caPEM}, {cert, c.certPEM}, {key, c.keyPEM}} {
		if err := os.WriteFile(f.path, f.data, 0o600); err != nil {
			return nil, fmt.Errorf("redistest: write %s: %w", f.path, err)
		}
	}
	return []string{
		"--tls-cert-file", cert,
		"--tls-key-file", key,
		"--tls-ca-cert-file", ca,
		"--tls-auth-clients", "no",
	}, nil
}

// clientConfig is a fresh client configuration trusting only the generated CA.
func (c *certs) clientConfig() *tls.Config {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.caPEM)
	return &tls.Config{
		RootCAs:    pool,
		ServerName: "localhost",
		MinVersion: tls.VersionTLS12,
	}
}

// NewCAPool returns a pool holding a freshly generated CA that signed nothing
// any server uses. A client trusting only this pool must fail the TLS handshake
// with every server of this package, which lets tests check that certificate
// verification is really on.
func NewCAPool() (*x509.CertPool, error) {
	ca, err := newAuthority()
	if err != nil {
		return nil, fmt.Errorf("redistest: generate CA: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	return pool, nil
}
