package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestFingerprintIsLowercaseHexSHA256OfDER(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	sum := sha256.Sum256(ca.Certificate().Raw)
	want := hex.EncodeToString(sum[:])
	if got := Fingerprint(ca.Certificate().Raw); got != want {
		t.Errorf("Fingerprint = %s, want %s", got, want)
	}
	if got := ca.Fingerprint(); got != want {
		t.Errorf("CA.Fingerprint = %s, want %s", got, want)
	}
	if strings.ToLower(want) != want || len(want) != 64 {
		t.Errorf("fingerprint %q is not 64 lowercase hex digits", want)
	}
}

func TestNewCAIsASelfSignedCAThatSignsOnlyLeaves(t *testing.T) {
	t.Parallel()
	before := time.Now()
	ca, err := NewCA("warden CA", 48*time.Hour)
	if err != nil {
		t.Fatalf("NewCA: %v", err)
	}
	c := ca.Certificate()
	if c.Subject.CommonName != "warden CA" {
		t.Errorf("CN = %q", c.Subject.CommonName)
	}
	if !c.IsCA || !c.BasicConstraintsValid {
		t.Errorf("IsCA=%v BasicConstraintsValid=%v, want both true", c.IsCA, c.BasicConstraintsValid)
	}
	if c.MaxPathLen != 0 || !c.MaxPathLenZero {
		t.Errorf("MaxPathLen=%d MaxPathLenZero=%v, want 0 and true", c.MaxPathLen, c.MaxPathLenZero)
	}
	if c.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Errorf("KeyUsage = %v, want CertSign|CRLSign", c.KeyUsage)
	}
	pub, ok := c.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("CA key is %T, want ECDSA P-256", c.PublicKey)
	}
	if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() > 128 {
		t.Errorf("serial %v is not a positive 128-bit number", c.SerialNumber)
	}
	if !c.NotBefore.Before(before.Add(-4 * time.Minute)) {
		t.Errorf("NotBefore %v is not backdated ~5 minutes from %v", c.NotBefore, before)
	}
	if d := c.NotAfter.Sub(before); d < 47*time.Hour || d > 49*time.Hour {
		t.Errorf("NotAfter is %v after creation, want ~48h", d)
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Errorf("CA is not self-signed: %v", err)
	}
	other := newTestCA(t)
	if other.Certificate().SerialNumber.Cmp(c.SerialNumber) == 0 {
		t.Error("two CAs got the same serial number")
	}
}

func TestNewCARefusesEmptyNameAndLifetime(t *testing.T) {
	t.Parallel()
	if _, err := NewCA(" ", time.Hour); err == nil {
		t.Error("NewCA with a blank common name succeeded")
	}
	if _, err := NewCA("ca", 0); err == nil {
		t.Error("NewCA with zero lifetime succeeded")
	}
}

func TestCARoundTripsThroughPEM(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	loaded, err := LoadCA(ca.CertPEM(), ca.KeyPEM())
	if err != nil {
		t.Fatalf("LoadCA: %v", err)
	}
	if loaded.Fingerprint() != ca.Fingerprint() {
		t.Errorf("fingerprint changed: %s -> %s", ca.Fingerprint(), loaded.Fingerprint())
	}
	if string(loaded.KeyPEM()) != string(ca.KeyPEM()) || string(loaded.CertPEM()) != string(ca.CertPEM()) {
		t.Error("PEM forms differ after a round trip")
	}
	if b, _ := pem.Decode(ca.KeyPEM()); b == nil || b.Type != "PRIVATE KEY" {
		t.Errorf("KeyPEM is not a PKCS#8 PEM block")
	}
	// The loaded CA signs certificates the original CA's pool trusts.
	cert, _, err := loaded.IssueClient(newKey(t, "p256").Public(), "alice", time.Hour)
	if err != nil {
		t.Fatalf("IssueClient: %v", err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("certificate from the reloaded CA does not verify against the original: %v", err)
	}
}

func TestCAPEMAccessorsReturnCopies(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	p := ca.CertPEM()
	p[0] = 'X'
	if ca.CertPEM()[0] != '-' {
		t.Error("changing the slice from CertPEM changed the CA")
	}
}

func TestLoadCARefuses(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	other := newTestCA(t)
	_, leafPEM, err := ca.IssueClient(newKey(t, "p256").Public(), "alice", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	sec1 := func() []byte {
		b, _ := pem.Decode(ca.KeyPEM())
		k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalECPrivateKey(k.(*ecdsa.PrivateKey))
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	}()
	cases := map[string]struct {
		cert, key []byte
		want      string
	}{
		"a key from another CA":       {ca.CertPEM(), other.KeyPEM(), "does not match"},
		"a leaf certificate as CA":    {leafPEM, ca.KeyPEM(), "not a CA"},
		"a certificate that is text":  {[]byte("hello"), ca.KeyPEM(), "not PEM"},
		"a key that is text":          {ca.CertPEM(), []byte("hello"), "not PEM"},
		"a SEC1 key instead of PKCS8": {ca.CertPEM(), sec1, "PKCS#8"},
		"a key PEM as certificate":    {ca.KeyPEM(), ca.KeyPEM(), "want \"CERTIFICATE\""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := LoadCA(tc.cert, tc.key)
			if err == nil {
				t.Fatal("LoadCA succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestServerCertificateVerifiesForLocalAndConfiguredNames(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	cert, err := ca.IssueServer([]string{"mqtt.example.com", "10.1.2.3", "localhost", "127.0.0.1", " ", "[fd00::1]"}, time.Hour)
	if err != nil {
		t.Fatalf("IssueServer: %v", err)
	}
	if cert.Leaf == nil {
		t.Fatal("Leaf is not set")
	}
	if len(cert.Certificate) != 2 || string(cert.Certificate[1]) != string(ca.Certificate().Raw) {
		t.Fatalf("chain has %d certificates, want leaf then CA", len(cert.Certificate))
	}
	if string(cert.Certificate[0]) != string(cert.Leaf.Raw) {
		t.Error("Leaf is not the first certificate in the chain")
	}
	names := []string{"localhost", "127.0.0.1", "::1", "mqtt.example.com", "10.1.2.3", "fd00::1"}
	if h, err := os.Hostname(); err == nil {
		names = append(names, h)
	}
	for _, name := range names {
		_, err := cert.Leaf.Verify(x509.VerifyOptions{
			DNSName:   name,
			Roots:     ca.Pool(),
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		})
		if err != nil {
			t.Errorf("server certificate does not verify for %q: %v", name, err)
		}
	}
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{DNSName: "other.example.com", Roots: ca.Pool()}); err == nil {
		t.Error("server certificate verifies for a name it was not issued for")
	}
	// Names given twice appear once.
	if n := countIP(cert.Leaf.IPAddresses, "127.0.0.1"); n != 1 {
		t.Errorf("127.0.0.1 appears %d times in %v", n, cert.Leaf.IPAddresses)
	}
	if n := len(slices.DeleteFunc(slices.Clone(cert.Leaf.DNSNames), func(s string) bool { return s != "localhost" })); n != 1 {
		t.Errorf("localhost appears %d times in %v", n, cert.Leaf.DNSNames)
	}
	if !slices.Equal(cert.Leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
		t.Errorf("ExtKeyUsage = %v, want ServerAuth only", cert.Leaf.ExtKeyUsage)
	}
	if cert.Leaf.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("KeyUsage = %v, want DigitalSignature", cert.Leaf.KeyUsage)
	}
}

func countIP(ips []net.IP, s string) int {
	want := net.ParseIP(s)
	n := 0
	for _, ip := range ips {
		if ip.Equal(want) {
			n++
		}
	}
	return n
}

func TestServerCertificateCompletesATLSHandshake(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	cert, err := ca.IssueServer(nil, time.Hour)
	if err != nil {
		t.Fatalf("IssueServer: %v", err)
	}
	clientErr, serverErr, _ := handshake(t,
		&tls.Config{Certificates: []tls.Certificate{cert}},
		&tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"},
	)
	if clientErr != nil || serverErr != nil {
		t.Fatalf("handshake failed: client %v, server %v", clientErr, serverErr)
	}

	// A client trusting a different CA refuses the server.
	clientErr, _, _ = handshake(t,
		&tls.Config{Certificates: []tls.Certificate{cert}},
		&tls.Config{RootCAs: newTestCA(t).Pool(), ServerName: "localhost"},
	)
	if clientErr == nil {
		t.Error("a client trusting another CA accepted the server")
	}
}

func TestClientCertificateAuthenticatesOverMutualTLS(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	serverCert, err := ca.IssueServer(nil, time.Hour)
	if err != nil {
		t.Fatalf("IssueServer: %v", err)
	}
	serverCfg := &tls.Config{
		Certificates: []tls.Certificate{serverCert},
		ClientCAs:    ca.Pool(),
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}
	for _, kind := range []string{"p256", "rsa2048", "ed25519"} {
		t.Run(kind, func(t *testing.T) {
			key := newKey(t, kind)
			leaf, leafPEM, err := ca.IssueClient(key.Public(), "device-42", time.Hour)
			if err != nil {
				t.Fatalf("IssueClient: %v", err)
			}
			pair, err := tls.X509KeyPair(leafPEM, pkcs8PEM(t, key))
			if err != nil {
				t.Fatalf("X509KeyPair from issued PEM: %v", err)
			}
			clientErr, serverErr, state := handshake(t, serverCfg, &tls.Config{
				RootCAs:      ca.Pool(),
				ServerName:   "localhost",
				Certificates: []tls.Certificate{pair},
			})
			if clientErr != nil || serverErr != nil {
				t.Fatalf("mutual TLS failed: client %v, server %v", clientErr, serverErr)
			}
			if len(state.PeerCertificates) == 0 {
				t.Fatal("server saw no client certificate")
			}
			peer := state.PeerCertificates[0]
			if peer.Subject.CommonName != "device-42" {
				t.Errorf("server saw CN %q, want device-42", peer.Subject.CommonName)
			}
			if Fingerprint(peer.Raw) != Fingerprint(leaf.Raw) {
				t.Error("server saw a different certificate than the one issued")
			}
		})
	}

	t.Run("no client certificate is refused", func(t *testing.T) {
		_, serverErr, _ := handshake(t, serverCfg, &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
		if serverErr == nil {
			t.Error("server accepted a client without a certificate")
		}
	})
}

func pkcs8PEM(t *testing.T, key any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func TestClientCertificateIsForClientAuthOnly(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	for kind, wantUsage := range map[string]x509.KeyUsage{
		"p256":    x509.KeyUsageDigitalSignature,
		"ed25519": x509.KeyUsageDigitalSignature,
		"rsa2048": x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	} {
		t.Run(kind, func(t *testing.T) {
			cert, _, err := ca.IssueClient(newKey(t, kind).Public(), "alice", time.Hour)
			if err != nil {
				t.Fatalf("IssueClient: %v", err)
			}
			if !slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
				t.Errorf("ExtKeyUsage = %v, want ClientAuth only", cert.ExtKeyUsage)
			}
			if cert.KeyUsage != wantUsage {
				t.Errorf("KeyUsage = %v, want %v", cert.KeyUsage, wantUsage)
			}
			if cert.IsCA {
				t.Error("client certificate is a CA")
			}
			if len(cert.DNSNames)+len(cert.IPAddresses)+len(cert.EmailAddresses)+len(cert.URIs) != 0 {
				t.Error("client certificate has SANs")
			}
			if _, err := cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Errorf("does not verify for client auth: %v", err)
			}
			if _, err := cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
				t.Error("client certificate verifies for server auth")
			}
		})
	}
}

func TestIssuedCertificatesNeverOutliveTheCA(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t) // valid for 24h
	cert, _, err := ca.IssueClient(newKey(t, "p256").Public(), "alice", 365*24*time.Hour)
	if err != nil {
		t.Fatalf("IssueClient: %v", err)
	}
	if cert.NotAfter.After(ca.Certificate().NotAfter) {
		t.Errorf("client NotAfter %v is after the CA's %v", cert.NotAfter, ca.Certificate().NotAfter)
	}
}

func TestIssueClientRefusesWeakKeysAndBadArguments(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	cases := map[string]func() error{
		"an RSA 1024 key": func() error {
			_, _, err := ca.IssueClient(newKey(t, "rsa1024").Public(), "alice", time.Hour)
			return err
		},
		"a P-521 key": func() error {
			_, _, err := ca.IssueClient(newKey(t, "p521").Public(), "alice", time.Hour)
			return err
		},
		"an empty common name": func() error {
			_, _, err := ca.IssueClient(newKey(t, "p256").Public(), "", time.Hour)
			return err
		},
		"a zero lifetime": func() error {
			_, _, err := ca.IssueClient(newKey(t, "p256").Public(), "alice", 0)
			return err
		},
	}
	for name, run := range cases {
		t.Run(name, func(t *testing.T) {
			if err := run(); err == nil {
				t.Error("IssueClient succeeded")
			}
		})
	}
}

func TestParseCertificatesPEM(t *testing.T) {
	t.Parallel()
	a, b := newTestCA(t), newTestCA(t)
	bundle := "# first\n" + string(a.CertPEM()) + "\n# second\n" + string(b.CertPEM())
	certs, err := ParseCertificatesPEM([]byte(bundle))
	if err != nil {
		t.Fatalf("ParseCertificatesPEM: %v", err)
	}
	if len(certs) != 2 || Fingerprint(certs[0].Raw) != a.Fingerprint() || Fingerprint(certs[1].Raw) != b.Fingerprint() {
		t.Fatalf("got %d certificates, want the two CAs in order", len(certs))
	}

	for name, tc := range map[string]struct{ in, want string }{
		"empty input is refused":      {"  \n", "empty"},
		"text without PEM is refused": {"not a certificate", "no PEM certificate"},
		"a private key is refused":    {string(a.CertPEM()) + string(a.KeyPEM()), `"PRIVATE KEY", not a CERTIFICATE`},
		"a corrupt certificate fails": {"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "PEM block 1"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseCertificatesPEM([]byte(tc.in))
			if err == nil {
				t.Fatal("ParseCertificatesPEM succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}
