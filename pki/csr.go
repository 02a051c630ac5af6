package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"time"
)

// MaxCSRSize is the largest CSR input ParseCSR accepts, in bytes. Real
// CSRs are a few KiB even with an 8192-bit RSA key; the cap bounds the
// work an unauthenticated device can make the registry do.
const MaxCSRSize = 64 << 10

// RSA key sizes accepted in a CSR. Below the minimum the key is breakable;
// above the maximum, verifying each handshake gets needlessly slow and a
// huge key is a cheap way to make the server burn CPU.
const (
	minRSABits = 2048
	maxRSABits = 8192
)

// CSRError reports why a certificate signing request was refused. The
// reason is written for the device owner (it is safe to return to the
// client), so callers can map every *CSRError to a 400 with errors.As.
type CSRError struct {
	Reason string
}

// Error returns "invalid CSR: " followed by the reason.
func (e *CSRError) Error() string { return "invalid CSR: " + e.Reason }

func csrErrorf(format string, args ...any) *CSRError {
	return &CSRError{Reason: fmt.Sprintf(format, args...)}
}

// ParseCSR parses and checks a certificate signing request. It accepts a
// PEM "CERTIFICATE REQUEST" (or the older "NEW CERTIFICATE REQUEST"), or
// the standard base64 of such a PEM, padded or not, as the Connectware
// registry API sends it. The request's signature must verify (proving the
// sender holds the private key) and its key must be RSA of at least 2048
// bits, ECDSA on P-256 or P-384, or Ed25519. Every refusal is a *CSRError.
func ParseCSR(data []byte) (*x509.CertificateRequest, error) {
	if len(data) > MaxCSRSize {
		return nil, csrErrorf("input of %d bytes exceeds the %d-byte limit", len(data), MaxCSRSize)
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, csrErrorf("input is empty")
	}
	if !bytes.Contains(data, []byte("-----BEGIN")) {
		// '-' is not in the base64 alphabet, so anything without a PEM
		// header can only be the base64 form.
		decoded, err := decodeBase64(data)
		if err != nil {
			return nil, csrErrorf("not a PEM certificate request (nor base64 of one)")
		}
		data = decoded
	}
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, csrErrorf("not a PEM certificate request")
	}
	if block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST" {
		return nil, csrErrorf("PEM block is %q, not a certificate request", block.Type)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, csrErrorf("unexpected data after the certificate request")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, csrErrorf("malformed certificate request: %v", err)
	}
	if err := checkCSR(csr); err != nil {
		return nil, err
	}
	return csr, nil
}

// decodeBase64 decodes standard base64 with or without padding, ignoring
// line breaks and other whitespace that mail clients and shells insert.
func decodeBase64(data []byte) ([]byte, error) {
	compact := make([]byte, 0, len(data))
	for _, b := range data {
		switch b {
		case ' ', '\t', '\r', '\n':
		default:
			compact = append(compact, b)
		}
	}
	compact = bytes.TrimRight(compact, "=")
	out := make([]byte, base64.RawStdEncoding.DecodedLen(len(compact)))
	n, err := base64.RawStdEncoding.Decode(out, compact)
	if err != nil {
		return nil, err
	}
	return out[:n], nil
}

// checkCSR applies the signing policy to a parsed request: key first (so
// an oversized RSA key is refused before we spend time verifying with it),
// then the proof-of-possession signature.
func checkCSR(csr *x509.CertificateRequest) error {
	if reason := checkPublicKey(csr.PublicKey); reason != "" {
		return &CSRError{Reason: reason}
	}
	if err := csr.CheckSignature(); err != nil {
		var insecure x509.InsecureAlgorithmError
		if errors.As(err, &insecure) {
			return csrErrorf("signature algorithm %s is not accepted", csr.SignatureAlgorithm)
		}
		return csrErrorf("signature does not verify")
	}
	return nil
}

// checkPublicKey returns why pub is not acceptable for a client
// certificate, or "" if it is. The accepted set is what every TLS stack
// warden's clients use can handle and what is still considered strong.
func checkPublicKey(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		bits := k.N.BitLen()
		if bits < minRSABits {
			return fmt.Sprintf("RSA key of %d bits; at least %d required", bits, minRSABits)
		}
		if bits > maxRSABits {
			return fmt.Sprintf("RSA key of %d bits; at most %d accepted", bits, maxRSABits)
		}
		return ""
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384():
			return ""
		}
		name := "unknown"
		if k.Curve != nil && k.Curve.Params() != nil {
			name = k.Curve.Params().Name
		}
		return fmt.Sprintf("unsupported curve %s; P-256 or P-384 required", name)
	case ed25519.PublicKey:
		return ""
	case nil:
		return "no public key"
	default:
		return fmt.Sprintf("unsupported key type %T; RSA, ECDSA P-256/P-384 or Ed25519 required", pub)
	}
}

// SignCSR issues a client certificate for the key in csr, for the user
// username. The request's common name must equal the username, because
// the common name is what warden authenticates the certificate as: a
// device registering as one user must not obtain a certificate for
// another. Requested extensions and SANs are ignored; the CA decides
// what the certificate may do. The policy checks of ParseCSR are applied
// again, so a request parsed elsewhere cannot bypass them.
func (c *CA) SignCSR(csr *x509.CertificateRequest, username string, lifetime time.Duration) (*x509.Certificate, []byte, error) {
	if csr == nil {
		return nil, nil, csrErrorf("no certificate request")
	}
	if csr.Subject.CommonName != username {
		return nil, nil, csrErrorf("common name %q does not match username %q", csr.Subject.CommonName, username)
	}
	if err := checkCSR(csr); err != nil {
		return nil, nil, err
	}
	return c.IssueClient(csr.PublicKey, username, lifetime)
}
