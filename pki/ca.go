package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"strings"
	"time"
)

// backdate is how far before "now" new certificates become valid, so a
// peer whose clock runs a few minutes behind ours still accepts them.
const backdate = 5 * time.Minute

// serialLimit bounds random serial numbers to 128 bits: enough that two
// certificates from one CA never share a serial (RFC 5280 asks for
// uniqueness), within the 20 octets RFC 5280 allows.
var serialLimit = new(big.Int).Lsh(big.NewInt(1), 128)

// Fingerprint returns the lowercase hex SHA-256 of a certificate's DER
// bytes. It is the form users register to pin a client certificate, so it
// must be stable and match what `openssl x509 -fingerprint -sha256` shows
// once colons are removed and letters lowercased.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// CA is the internal certificate authority. It is immutable after
// creation, so one value can be shared by every goroutine that issues
// certificates.
type CA struct {
	cert    *x509.Certificate
	key     crypto.Signer
	certPEM []byte
	keyPEM  []byte
}

// NewCA creates a CA with a fresh ECDSA P-256 key and a self-signed
// certificate valid for lifetime. The CA may sign only leaf certificates
// (path length 0), so a leaked client or server key can never be used to
// mint further certificates that warden would trust.
func NewCA(commonName string, lifetime time.Duration) (*CA, error) {
	if strings.TrimSpace(commonName) == "" {
		return nil, errors.New("pki: CA common name is empty")
	}
	if lifetime <= 0 {
		return nil, fmt.Errorf("pki: CA lifetime %v is not positive", lifetime)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: generate CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(lifetime),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("pki: self-sign CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: parse new CA certificate: %w", err)
	}
	return newCA(cert, key)
}

// LoadCA rebuilds a CA from its PEM certificate and PKCS#8 PEM private
// key, as written by CertPEM and KeyPEM. It refuses a key that does not
// belong to the certificate and a certificate that is not a CA, because
// either would make every certificate issued afterwards unverifiable.
func LoadCA(certPEM, keyPEM []byte) (*CA, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil {
		return nil, errors.New("pki: CA certificate is not PEM")
	}
	if block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("pki: CA certificate PEM block is %q, want \"CERTIFICATE\"", block.Type)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: parse CA certificate: %w", err)
	}
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return nil, errors.New("pki: certificate is not a CA certificate")
	}

	kblock, _ := pem.Decode(keyPEM)
	if kblock == nil {
		return nil, errors.New("pki: CA key is not PEM")
	}
	if kblock.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("pki: CA key PEM block is %q, want PKCS#8 \"PRIVATE KEY\"", kblock.Type)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(kblock.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: parse CA key: %w", err)
	}
	key, ok := parsed.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("pki: CA key of type %T cannot sign", parsed)
	}
	pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(key.Public()) {
		return nil, errors.New("pki: CA key does not match the CA certificate")
	}
	return newCA(cert, key)
}

// newCA fills in the PEM forms once, so CertPEM and KeyPEM never fail.
func newCA(cert *x509.Certificate, key crypto.Signer) (*CA, error) {
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("pki: encode CA key: %w", err)
	}
	return &CA{
		cert:    cert,
		key:     key,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// CertPEM returns the CA certificate in PEM form, for clients to trust and
// for persisting. The slice is a copy: callers may keep or change it.
func (c *CA) CertPEM() []byte { return bytes.Clone(c.certPEM) }

// KeyPEM returns the CA private key as PKCS#8 PEM, for persisting in the
// store shared by all nodes. It is the CA's secret: never log or serve it.
func (c *CA) KeyPEM() []byte { return bytes.Clone(c.keyPEM) }

// Certificate returns the parsed CA certificate. Callers must not modify
// it: the CA shares it with every certificate it issues.
func (c *CA) Certificate() *x509.Certificate { return c.cert }

// Fingerprint returns the CA certificate's SHA-256 fingerprint, so
// operators can check that every node loaded the same CA.
func (c *CA) Fingerprint() string { return Fingerprint(c.cert.Raw) }

// Pool returns a new certificate pool holding only the CA certificate, for
// tls.Config.RootCAs or ClientCAs. Each call returns a fresh pool so a
// caller can add other trusted CAs without affecting anyone else.
func (c *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c.cert)
	return p
}

// IssueServer issues a TLS server certificate for the listeners, with a
// fresh ECDSA P-256 key. Each host becomes an IP or DNS subject
// alternative name; localhost, 127.0.0.1, ::1 and this machine's host name
// are always included so local clients and health checks verify without
// configuration. The returned chain carries the CA certificate after the
// leaf so clients that only pinned the CA can build the path.
func (c *CA) IssueServer(hosts []string, lifetime time.Duration) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: generate server key: %w", err)
	}
	all := append([]string(nil), hosts...)
	all = append(all, "localhost", "127.0.0.1", "::1")
	if name, err := os.Hostname(); err == nil {
		// No host name is not worth failing startup over: the
		// configured hosts and loopback names still work.
		all = append(all, name)
	}
	dns, ips := splitHosts(all)

	cn := "localhost"
	if len(dns) > 0 {
		cn = dns[0]
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		DNSNames:    dns,
		IPAddresses: ips,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	cert, der, err := c.issue(tmpl, key.Public(), lifetime)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{
		Certificate: [][]byte{der, c.cert.Raw},
		PrivateKey:  key,
		Leaf:        cert,
	}, nil
}

// splitHosts sorts host names into DNS names and IP addresses, in order of
// first appearance, dropping blanks and duplicates (names compare without
// case, addresses by value so "::ffff:127.0.0.1" and "127.0.0.1" are one).
func splitHosts(hosts []string) ([]string, []net.IP) {
	var dns []string
	var ips []net.IP
	seen := make(map[string]bool)
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			k := "ip:" + ip.String()
			if !seen[k] {
				seen[k] = true
				ips = append(ips, ip)
			}
			continue
		}
		h = strings.ToLower(h)
		if k := "dns:" + h; !seen[k] {
			seen[k] = true
			dns = append(dns, h)
		}
	}
	return dns, ips
}

// IssueClient issues a client certificate for pub whose common name is
// commonName: that is the username warden authenticates the certificate
// as. It is usable only for client authentication, so a device cannot
// present it as a server. It returns the parsed certificate and its PEM.
func (c *CA) IssueClient(pub crypto.PublicKey, commonName string, lifetime time.Duration) (*x509.Certificate, []byte, error) {
	if commonName == "" {
		return nil, nil, errors.New("pki: client certificate common name is empty")
	}
	if reason := checkPublicKey(pub); reason != "" {
		return nil, nil, fmt.Errorf("pki: client key: %s", reason)
	}
	usage := x509.KeyUsageDigitalSignature
	if _, ok := pub.(*rsa.PublicKey); ok {
		// RSA keys may also be used for key transport in older TLS
		// cipher suites; clients built against them expect the bit.
		usage |= x509.KeyUsageKeyEncipherment
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: commonName},
		KeyUsage:    usage,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	cert, der, err := c.issue(tmpl, pub, lifetime)
	if err != nil {
		return nil, nil, err
	}
	return cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// issue signs a leaf from tmpl, filling serial and validity. A leaf never
// outlives the CA: the CA's NotAfter caps the lifetime, because a chain is
// invalid once its issuer has expired anyway.
func (c *CA) issue(tmpl *x509.Certificate, pub crypto.PublicKey, lifetime time.Duration) (*x509.Certificate, []byte, error) {
	if lifetime <= 0 {
		return nil, nil, fmt.Errorf("pki: certificate lifetime %v is not positive", lifetime)
	}
	now := time.Now()
	if !now.Before(c.cert.NotAfter) {
		return nil, nil, fmt.Errorf("pki: CA certificate expired at %s", c.cert.NotAfter.UTC().Format(time.RFC3339))
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = now.Add(-backdate)
	tmpl.NotAfter = now.Add(lifetime)
	if tmpl.NotAfter.After(c.cert.NotAfter) {
		tmpl.NotAfter = c.cert.NotAfter
	}
	tmpl.BasicConstraintsValid = true
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, pub, c.key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: sign certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: parse issued certificate: %w", err)
	}
	return cert, der, nil
}

// newSerial returns a random, positive 128-bit serial number.
func newSerial() (*big.Int, error) {
	for {
		n, err := rand.Int(rand.Reader, serialLimit)
		if err != nil {
			return nil, fmt.Errorf("pki: serial number: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// CertificateError reports why certificate input (a PEM bundle uploaded
// as trusted certificates, or a --client-ca file) was refused. The reason
// is written for the person who supplied the input and names no secret,
// so callers can map every *CertificateError to a 400 with errors.As.
type CertificateError struct {
	Reason string
}

// Error returns "invalid certificate input: " followed by the reason.
func (e *CertificateError) Error() string { return "invalid certificate input: " + e.Reason }

func certErrorf(format string, args ...any) *CertificateError {
	return &CertificateError{Reason: fmt.Sprintf(format, args...)}
}

// ParseCertificatesPEM parses every certificate in a PEM bundle, such as
// an extra trusted CA uploaded through /api/certificates. Text between
// blocks (comments in CA bundles) is ignored, but any PEM block that is
// not a certificate is an error, so a private key pasted by mistake is
// refused rather than stored, and so is a block cut short (a truncated
// copy and paste), which would otherwise be skipped as text. Every
// refusal is a *CertificateError.
func ParseCertificatesPEM(data []byte) ([]*x509.Certificate, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, certErrorf("no certificate: input is empty")
	}
	var certs []*x509.Certificate
	rest := data
	n := 1
	for ; ; n++ {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, certErrorf("PEM block %d is %q, not a CERTIFICATE", n, block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, certErrorf("PEM block %d: %v", n, err)
		}
		certs = append(certs, cert)
	}
	if bytes.Contains(rest, []byte("-----BEGIN")) {
		return nil, certErrorf("PEM block %d is incomplete or malformed", n)
	}
	if len(certs) == 0 {
		return nil, certErrorf("no PEM certificate found")
	}
	return certs, nil
}
