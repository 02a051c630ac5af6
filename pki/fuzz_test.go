package pki

import (
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
