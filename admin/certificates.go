package admin

import (
	"bytes"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/warden-mqtt/warden/pki"
	"github.com/warden-mqtt/warden/store"
)

// registerCertificates serves /api/certificates: the certificates client
// certificates are verified against. Changes take effect on the TLS
// listeners of every node without a restart (pki.TrustStore).
func (s *Server) registerCertificates() {
	s.handle("GET /api/certificates", permitted, s.listCertificates)
	s.handle("POST /api/certificates", permitted, s.addCertificates)
	s.handle("DELETE /api/certificates", permitted, s.deleteCertificate)
	s.handle("GET /api/certificates/content", permitted, s.certificateContent)
}

// certificateName is a certificate's issuer or subject as the seed shows
// it; a name with several organizations joins them with ", ".
type certificateName struct {
	CommonName         string `json:"commonName"`
	Organization       string `json:"organization"`
	OrganizationalUnit string `json:"organizationalUnit"`
}

// certificateSubject is the subject with its alternative names (DNS
// names, IP addresses, e-mail addresses and URIs, as plain strings).
type certificateSubject struct {
	certificateName
	AlternativeNames []string `json:"alternativeNames"`
}

// basicConstraints: pathLength is null when unlimited or not a CA.
type basicConstraints struct {
	IsCA       bool `json:"isCA"`
	PathLength *int `json:"pathLength"`
}

// certificateFingerprints are lowercase hex digests of the DER encoding;
// sha256 is also the certificate's id.
type certificateFingerprints struct {
	SHA1   string `json:"sha1"`
	SHA256 string `json:"sha256"`
}

// trustedCertView is one certificate in the seed's shape. issuedOn and
// expiresOn are Unix times in milliseconds.
type trustedCertView struct {
	ID               string                  `json:"id"`
	IssuedBy         certificateName         `json:"issuedBy"`
	IssuedTo         certificateSubject      `json:"issuedTo"`
	KeyUsage         []string                `json:"keyUsage"`
	ExtendedKeyUsage []string                `json:"extendedKeyUsage"`
	BasicConstraints basicConstraints        `json:"basicConstraints"`
	IssuedOn         int64                   `json:"issuedOn"`
	ExpiresOn        int64                   `json:"expiresOn"`
	Fingerprints     certificateFingerprints `json:"fingerprints"`
	Removable        bool                    `json:"removable"`
}

func viewTrusted(tc pki.TrustedCert) trustedCertView {
	c := tc.Cert
	sum := sha1.Sum(c.Raw)
	v := trustedCertView{
		ID:               tc.ID(),
		IssuedBy:         viewName(c.Issuer),
		IssuedTo:         certificateSubject{certificateName: viewName(c.Subject), AlternativeNames: altNames(c)},
		KeyUsage:         keyUsages(c.KeyUsage),
		ExtendedKeyUsage: extKeyUsages(c),
		BasicConstraints: basicConstraints{IsCA: c.BasicConstraintsValid && c.IsCA},
		IssuedOn:         c.NotBefore.UnixMilli(),
		ExpiresOn:        c.NotAfter.UnixMilli(),
		Fingerprints:     certificateFingerprints{SHA1: hex.EncodeToString(sum[:]), SHA256: tc.ID()},
		Removable:        tc.Removable(),
	}
	// MaxPathLen is -1 when unset, and 0 without MaxPathLenZero means unset
	// too (crypto/x509's encoding of "no limit").
	if v.BasicConstraints.IsCA && (c.MaxPathLen > 0 || c.MaxPathLen == 0 && c.MaxPathLenZero) {
		n := c.MaxPathLen
		v.BasicConstraints.PathLength = &n
	}
	return v
}

func viewName(n pkix.Name) certificateName {
	return certificateName{
		CommonName:         n.CommonName,
		Organization:       strings.Join(n.Organization, ", "),
		OrganizationalUnit: strings.Join(n.OrganizationalUnit, ", "),
	}
}

func altNames(c *x509.Certificate) []string {
	out := append([]string{}, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	out = append(out, c.EmailAddresses...)
	for _, u := range c.URIs {
		out = append(out, u.String())
	}
	return out
}

// keyUsageNames are the RFC 5280 names of the key usage bits, in bit order.
var keyUsageNames = []struct {
	bit  x509.KeyUsage
	name string
}{
	{x509.KeyUsageDigitalSignature, "digitalSignature"},
	{x509.KeyUsageContentCommitment, "nonRepudiation"},
	{x509.KeyUsageKeyEncipherment, "keyEncipherment"},
	{x509.KeyUsageDataEncipherment, "dataEncipherment"},
	{x509.KeyUsageKeyAgreement, "keyAgreement"},
	{x509.KeyUsageCertSign, "keyCertSign"},
	{x509.KeyUsageCRLSign, "cRLSign"},
	{x509.KeyUsageEncipherOnly, "encipherOnly"},
	{x509.KeyUsageDecipherOnly, "decipherOnly"},
}

func keyUsages(ku x509.KeyUsage) []string {
	out := []string{}
	for _, k := range keyUsageNames {
		if ku&k.bit != 0 {
			out = append(out, k.name)
		}
	}
	return out
}

// extKeyUsageNames are the RFC 5280 (and common vendor) names of the
// extended key usages crypto/x509 knows; others are shown as dotted OIDs.
var extKeyUsageNames = map[x509.ExtKeyUsage]string{
	x509.ExtKeyUsageAny:                            "anyExtendedKeyUsage",
	x509.ExtKeyUsageServerAuth:                     "serverAuth",
	x509.ExtKeyUsageClientAuth:                     "clientAuth",
	x509.ExtKeyUsageCodeSigning:                    "codeSigning",
	x509.ExtKeyUsageEmailProtection:                "emailProtection",
	x509.ExtKeyUsageIPSECEndSystem:                 "ipsecEndSystem",
	x509.ExtKeyUsageIPSECTunnel:                    "ipsecTunnel",
	x509.ExtKeyUsageIPSECUser:                      "ipsecUser",
	x509.ExtKeyUsageTimeStamping:                   "timeStamping",
	x509.ExtKeyUsageOCSPSigning:                    "OCSPSigning",
	x509.ExtKeyUsageMicrosoftServerGatedCrypto:     "msSGC",
	x509.ExtKeyUsageNetscapeServerGatedCrypto:      "nsSGC",
	x509.ExtKeyUsageMicrosoftCommercialCodeSigning: "msCodeCom",
	x509.ExtKeyUsageMicrosoftKernelCodeSigning:     "msKernelCodeSigning",
}

func extKeyUsages(c *x509.Certificate) []string {
	out := []string{}
	for _, u := range c.ExtKeyUsage {
		if name, ok := extKeyUsageNames[u]; ok {
			out = append(out, name)
		}
	}
	for _, oid := range c.UnknownExtKeyUsage {
		out = append(out, oid.String())
	}
	return out
}

// listCertificates lists the internal CA, the --client-ca certificates
// and the added ones.
func (s *Server) listCertificates(w http.ResponseWriter, r *http.Request, _ *caller) error {
	list, err := s.opts.Trust.List(r.Context())
	if err != nil {
		return err
	}
	out := make([]trustedCertView, len(list))
	for i, c := range list {
		out[i] = viewTrusted(c)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// addCertificates trusts the certificates of a PEM bundle and answers 201
// with each of them, including those that were trusted already (adding is
// idempotent). Only a holder of connectware-admin may: a trusted CA
// vouches for a client certificate of any common name, so it logs in as
// any user with the certificate grant, an admin included.
func (s *Server) addCertificates(w http.ResponseWriter, r *http.Request, c *caller) error {
	if err := s.requireAdmin(r.Context(), c, "add trusted certificates: a trusted CA can issue a client certificate for any user"); err != nil {
		return err
	}
	data, err := certificatesBody(w, r)
	if err != nil {
		return err
	}
	added, err := s.opts.Trust.Add(r.Context(), data)
	if err != nil {
		return err
	}
	out := make([]trustedCertView, len(added))
	ids := make([]string, len(added))
	for i, a := range added {
		out[i] = viewTrusted(a)
		ids[i] = a.ID()
	}
	s.log.Info("trusted certificates added", "ids", ids, "by", c.user.Username)
	noteTarget(r, "ids", ids...)
	writeJSON(w, http.StatusCreated, out)
	return nil
}

// certificatesBody returns the PEM text of an add request: the body is a
// JSON string holding the PEM (the seed's form), or the PEM itself, sent as
// application/x-pem-file or recognisable by its "-----BEGIN" line (what
// `curl --data-binary @ca.pem` sends).
func certificatesBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err
		}
		return nil, errorf(http.StatusBadRequest, "cannot read the request body")
	}
	trimmed := bytes.TrimSpace(body)
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case len(trimmed) == 0:
		return nil, errorf(http.StatusBadRequest, "empty request body; a JSON string holding PEM certificates expected")
	case trimmed[0] == '"':
		if err := jsonContentType(r); err != nil {
			return nil, err
		}
		var text string
		if err := decodeJSON(bytes.NewReader(body), &text); err != nil {
			return nil, err
		}
		return []byte(text), nil
	case mediaType == "application/x-pem-file" || bytes.HasPrefix(trimmed, []byte("-----BEGIN")):
		return body, nil
	}
	return nil, errorf(http.StatusBadRequest, "the body must be a JSON string holding PEM certificates, or PEM text (Content-Type application/x-pem-file)")
}

// deleteCertificate stops trusting an added certificate.
func (s *Server) deleteCertificate(w http.ResponseWriter, r *http.Request, c *caller) error {
	id, err := certificateID(r)
	if err != nil {
		return err
	}
	noteTarget(r, "id", id)
	if err := s.opts.Trust.Remove(r.Context(), id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return errorf(http.StatusNotFound, "no trusted certificate with id %s", id)
		}
		return err
	}
	s.log.Info("trusted certificate removed", "id", id, "by", c.user.Username)
	w.WriteHeader(http.StatusOK)
	return nil
}

// certificateContent answers the certificate's PEM as a JSON string.
func (s *Server) certificateContent(w http.ResponseWriter, r *http.Request, _ *caller) error {
	id, err := certificateID(r)
	if err != nil {
		return err
	}
	tc, err := s.opts.Trust.Get(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, "no trusted certificate with id %s", id)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, string(tc.PEM()))
	return nil
}

// certificateID reads the id query parameter: a SHA-256 fingerprint. Case
// and colons are ignored, so the form `openssl x509 -fingerprint -sha256`
// prints is accepted too.
func certificateID(r *http.Request) (string, error) {
	raw := r.URL.Query().Get("id")
	if raw == "" {
		return "", errorf(http.StatusBadRequest, "query parameter id is required")
	}
	id := strings.ToLower(strings.ReplaceAll(raw, ":", ""))
	if b, err := hex.DecodeString(id); err != nil || len(b) != 32 {
		return "", errorf(http.StatusBadRequest, "id must be a certificate's SHA-256 fingerprint (64 hex digits)")
	}
	return id, nil
}
