package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// newTestCA returns a fresh CA valid for a day.
func newTestCA(t testing.TB) *CA {
	t.Helper()
	ca, err := NewCA("warden test CA", 24*time.Hour)
	if err != nil {
		t.Fatalf("NewCA: %v", err)
	}
	return ca
}

// newKey generates a private key of the named kind: "rsa1024",
// "rsa2048", "p256", "p384", "p521" or "ed25519".
func newKey(t testing.TB, kind string) crypto.Signer {
	t.Helper()
	var (
		key crypto.Signer
		err error
	)
	switch kind {
	case "rsa1024":
		key, err = rsa.GenerateKey(rand.Reader, 1024)
	case "rsa2048":
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	case "p256":
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "p384":
		key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "p521":
		key, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "ed25519":
		_, key, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("unknown key kind %q", kind)
	}
	if err != nil {
		t.Fatalf("generate %s key: %v", kind, err)
	}
	return key
}

// csrDER builds a CSR for key with the given common name, asking for
// extras the CA is expected to ignore.
func csrDER(t testing.TB, key crypto.Signer, cn string) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:        pkix.Name{CommonName: cn},
		DNSNames:       []string{"evil.example.com"},
		EmailAddresses: []string{"admin@example.com"},
		IPAddresses:    []net.IP{net.ParseIP("10.0.0.1")},
	}, key)
	if err != nil {
		t.Fatalf("CreateCertificateRequest: %v", err)
	}
	return der
}

// csrPEM is csrDER in PEM form.
func csrPEM(t testing.TB, key crypto.Signer, cn string) []byte {
	t.Helper()
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER(t, key, cn)})
}

// handshake runs one TLS handshake between a server using serverCfg on
// 127.0.0.1 and a client using clientCfg. It returns the client's and the
// server's handshake errors and, on success, the server's view of the
// connection, so tests can see what the server verified.
func handshake(t *testing.T, serverCfg, clientCfg *tls.Config) (clientErr, serverErr error, state tls.ConnectionState) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", serverCfg)
	if err != nil {
		t.Fatalf("tls.Listen: %v", err)
	}
	t.Cleanup(func() { ln.Close() })

	type result struct {
		err   error
		state tls.ConnectionState
	}
	done := make(chan result, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer conn.Close()
		tc := conn.(*tls.Conn)
		err = tc.HandshakeContext(t.Context())
		if err == nil {
			// Wait for the client's byte so TLS 1.3 client
			// certificate checks have run on both sides.
			buf := make([]byte, 1)
			_, err = tc.Read(buf)
		}
		done <- result{err: err, state: tc.ConnectionState()}
	}()

	d := tls.Dialer{Config: clientCfg}
	conn, clientErr := d.DialContext(t.Context(), "tcp", ln.Addr().String())
	if clientErr == nil {
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		_, clientErr = conn.Write([]byte{1})
		// Read surfaces a server-side alert such as "bad certificate";
		// the server closes after one byte, so EOF means success.
		if clientErr == nil {
			buf := make([]byte, 1)
			if _, err := conn.Read(buf); err != nil && !errors.Is(err, io.EOF) {
				clientErr = err
			}
		}
		conn.Close()
	}
	r := <-done
	return clientErr, r.err, r.state
}
