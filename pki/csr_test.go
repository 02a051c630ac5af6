package pki

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// encodings are the forms a device may send a CSR in.
var encodings = map[string]func(pemBytes []byte) []byte{
	"PEM": func(p []byte) []byte { return p },
	"PEM with the NEW header": func(p []byte) []byte {
		b, _ := pem.Decode(p)
		return pem.EncodeToMemory(&pem.Block{Type: "NEW CERTIFICATE REQUEST", Bytes: b.Bytes})
	},
	"PEM with surrounding text": func(p []byte) []byte { return append([]byte("\n  subject=CN=alice\n"), p...) },
	"base64 with padding":       func(p []byte) []byte { return []byte(base64.StdEncoding.EncodeToString(p)) },
	"base64 without padding":    func(p []byte) []byte { return []byte(base64.RawStdEncoding.EncodeToString(p)) },
	"base64 wrapped in lines with surrounding whitespace": func(p []byte) []byte {
		s := base64.StdEncoding.EncodeToString(p)
		var b strings.Builder
		b.WriteString("\n\t ")
		for len(s) > 64 {
			b.WriteString(s[:64] + "\r\n")
			s = s[64:]
		}
		b.WriteString(s + "\n\n")
		return []byte(b.String())
	},
}

func TestParseCSRAcceptsStrongKeysInEveryEncoding(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"rsa2048", "p256", "p384", "ed25519"} {
		p := csrPEM(t, newKey(t, kind), "alice")
		for enc, encode := range encodings {
			t.Run(kind+" as "+enc, func(t *testing.T) {
				csr, err := ParseCSR(encode(p))
				if err != nil {
					t.Fatalf("ParseCSR: %v", err)
				}
				if csr.Subject.CommonName != "alice" {
					t.Errorf("CN = %q, want alice", csr.Subject.CommonName)
				}
			})
		}
	}
}

func TestParseCSRRefuses(t *testing.T) {
	t.Parallel()
	p256 := csrDER(t, newKey(t, "p256"), "alice")
	tampered := slices.Clone(p256)
	tampered[len(tampered)-1] ^= 0x01 // last byte of the signature

	asPEM := func(der []byte) []byte {
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	}
	b64 := func(b []byte) []byte { return []byte(base64.StdEncoding.EncodeToString(b)) }

	cases := map[string]struct {
		in   []byte
		want string
	}{
		"an RSA 1024 key":           {asPEM(csrDER(t, newKey(t, "rsa1024"), "alice")), "RSA key of 1024 bits; at least 2048 required"},
		"an RSA 1024 key, base64":   {b64(asPEM(csrDER(t, newKey(t, "rsa1024"), "alice"))), "RSA key of 1024 bits; at least 2048 required"},
		"a P-521 key":               {asPEM(csrDER(t, newKey(t, "p521"), "alice")), "unsupported curve P-521"},
		"a P-521 key, base64":       {b64(asPEM(csrDER(t, newKey(t, "p521"), "alice"))), "unsupported curve P-521"},
		"a tampered signature":      {asPEM(tampered), "signature does not verify"},
		"a tampered signature, b64": {b64(asPEM(tampered)), "signature does not verify"},
		"garbage":                   {[]byte("this is not a CSR at all!"), "not a PEM certificate request"},
		"base64 of garbage":         {b64([]byte("hello world")), "not a PEM certificate request"},
		"base64 of the DER":         {b64(p256), "not a PEM certificate request"},
		"empty input":               {nil, "input is empty"},
		"only whitespace":           {[]byte(" \n\t"), "input is empty"},
		"oversized input":           {bytes.Repeat([]byte("A"), MaxCSRSize+1), "exceeds the 65536-byte limit"},
		"a certificate instead":     {newTestCA(t).CertPEM(), `PEM block is "CERTIFICATE", not a certificate request`},
		"a truncated PEM":           {asPEM(p256)[:100], "not a PEM certificate request"},
		"a malformed DER body":      {asPEM([]byte{0x30, 0x03, 0x02, 0x01, 0x01}), "malformed certificate request"},
		"two requests":              {append(asPEM(p256), asPEM(p256)...), "unexpected data after"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			csr, err := ParseCSR(tc.in)
			if err == nil {
				t.Fatalf("ParseCSR accepted it (CN %q)", csr.Subject.CommonName)
			}
			var ce *CSRError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v (%T) is not a *CSRError", err, err)
			}
			if !strings.Contains(ce.Reason, tc.want) {
				t.Errorf("reason %q does not say %q", ce.Reason, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "invalid CSR: ") {
				t.Errorf("error %q lacks the \"invalid CSR: \" prefix", err)
			}
		})
	}
}

func TestSignCSRIssuesAClientCertificateForTheUsername(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	key := newKey(t, "p256")
	csr, err := ParseCSR(csrPEM(t, key, "alice"))
	if err != nil {
		t.Fatalf("ParseCSR: %v", err)
	}
	cert, certPEM, err := ca.SignCSR(csr, "alice", 30*24*time.Hour)
	if err != nil {
		t.Fatalf("SignCSR: %v", err)
	}
	if cert.Subject.CommonName != "alice" {
		t.Errorf("CN = %q, want alice", cert.Subject.CommonName)
	}
	if !cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(key.Public()) {
		t.Error("certificate is not for the CSR's key")
	}
	// What the device asked for beyond its name and key is ignored.
	if len(cert.DNSNames)+len(cert.IPAddresses)+len(cert.EmailAddresses) != 0 {
		t.Errorf("requested SANs were copied: %v %v %v", cert.DNSNames, cert.IPAddresses, cert.EmailAddresses)
	}
	if !slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
		t.Errorf("ExtKeyUsage = %v, want ClientAuth only", cert.ExtKeyUsage)
	}
	certs, err := ParseCertificatesPEM(certPEM)
	if err != nil || len(certs) != 1 || Fingerprint(certs[0].Raw) != Fingerprint(cert.Raw) {
		t.Fatalf("returned PEM is not the returned certificate: %v", err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("signed certificate does not verify: %v", err)
	}
}

func TestSignCSRRefusesACommonNameOtherThanTheUsername(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	csr, err := ParseCSR(csrPEM(t, newKey(t, "p256"), "admin"))
	if err != nil {
		t.Fatalf("ParseCSR: %v", err)
	}
	_, _, err = ca.SignCSR(csr, "alice", time.Hour)
	var ce *CSRError
	if !errors.As(err, &ce) {
		t.Fatalf("SignCSR error = %v, want a *CSRError", err)
	}
	if want := `common name "admin" does not match username "alice"`; ce.Reason != want {
		t.Errorf("reason = %q, want %q", ce.Reason, want)
	}
}

func TestSignCSRAppliesThePolicyToUncheckedRequests(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	// Parsed with the standard library, bypassing ParseCSR.
	csr, err := x509.ParseCertificateRequest(csrDER(t, newKey(t, "rsa1024"), "alice"))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = ca.SignCSR(csr, "alice", time.Hour)
	var ce *CSRError
	if !errors.As(err, &ce) {
		t.Fatalf("SignCSR of a 1024-bit RSA request: error = %v, want a *CSRError", err)
	}
}

func BenchmarkSignCSR(b *testing.B) {
	ca := newTestCA(b)
	csr, err := ParseCSR(csrPEM(b, newKey(b, "p256"), "alice"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ca.SignCSR(csr, "alice", time.Hour); err != nil {
			b.Fatal(err)
		}
	}
}
