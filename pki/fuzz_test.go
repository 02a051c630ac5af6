package pki

import (
	"crypto/x509"
	"encoding/base64"
	"errors"
	"testing"
)

// FuzzParseCSR checks that ParseCSR never panics on device input, refuses
// only with *CSRError, and never accepts a request whose signature does
// not verify.
func FuzzParseCSR(f *testing.F) {
	for _, kind := range []string{"p256", "ed25519"} {
		p := csrPEM(f, newKey(f, kind), "device")
		f.Add(p)
		f.Add([]byte(base64.StdEncoding.EncodeToString(p)))
	}
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\n-----END CERTIFICATE REQUEST-----\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		csr, err := ParseCSR(data)
		if err != nil {
			var ce *CSRError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v (%T) is not a *CSRError", err, err)
			}
			if csr != nil {
				t.Fatal("ParseCSR returned both a request and an error")
			}
			return
		}
		if err := csr.CheckSignature(); err != nil {
			t.Fatalf("accepted a CSR whose signature does not verify: %v", err)
		}
		if reason := checkPublicKey(csr.PublicKey); reason != "" {
			t.Fatalf("accepted a CSR with a refused key: %s", reason)
		}
	})
}

// FuzzParseCertificatesPEM checks that ParseCertificatesPEM never panics on
// uploaded input, refuses only with *CertificateError, and returns only
// certificates that parse again from their own DER.
func FuzzParseCertificatesPEM(f *testing.F) {
	ca := newTestCA(f)
	f.Add(ca.CertPEM())
	f.Add(append([]byte("# bundle\n"), append(ca.CertPEM(), newTestCA(f).CertPEM()...)...))
	f.Add(append(ca.CertPEM(), ca.KeyPEM()...))
	f.Add(ca.CertPEM()[:len(ca.CertPEM())/2])
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := ParseCertificatesPEM(data)
		if err != nil {
			var ce *CertificateError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v (%T) is not a *CertificateError", err, err)
			}
			if certs != nil {
				t.Fatal("ParseCertificatesPEM returned both certificates and an error")
			}
			return
		}
		if len(certs) == 0 {
			t.Fatal("no error and no certificate")
		}
		for i, c := range certs {
			if _, err := x509.ParseCertificate(c.Raw); err != nil {
				t.Fatalf("certificate %d does not parse from its DER: %v", i, err)
			}
		}
	})
}
