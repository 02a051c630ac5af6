package admin_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/warden-mqtt/warden/admin"
	"github.com/warden-mqtt/warden/pki"
)

// cCert is a certificate as the API returns it.
type cCert struct {
	ID       string `json:"id"`
	IssuedBy struct {
		CommonName         string `json:"commonName"`
		Organization       string `json:"organization"`
		OrganizationalUnit string `json:"organizationalUnit"`
	} `json:"issuedBy"`
	IssuedTo struct {
		CommonName         string   `json:"commonName"`
		Organization       string   `json:"organization"`
		OrganizationalUnit string   `json:"organizationalUnit"`
		AlternativeNames   []string `json:"alternativeNames"`
	} `json:"issuedTo"`
	KeyUsage         []string `json:"keyUsage"`
	ExtendedKeyUsage []string `json:"extendedKeyUsage"`
	BasicConstraints struct {
		IsCA       bool `json:"isCA"`
		PathLength *int `json:"pathLength"`
	} `json:"basicConstraints"`
	IssuedOn     int64 `json:"issuedOn"`
	ExpiresOn    int64 `json:"expiresOn"`
	Fingerprints struct {
		SHA1   string `json:"sha1"`
		SHA256 string `json:"sha256"`
	} `json:"fingerprints"`
	Removable bool `json:"removable"`
}

// cIssued is a certificate made by the test, with its key.
type cIssued struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func (c cIssued) pem() string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.cert.Raw}))
}

func (c cIssued) id() string {
	sum := sha256.Sum256(c.cert.Raw)
	return hex.EncodeToString(sum[:])
}

// cMake signs tmpl with parent (self-signed when parent is nil) for a
// fresh key of the given RSA size, or P-256 when bits is 0.
func cMake(t *testing.T, tmpl *x509.Certificate, parent *cIssued, bits int) cIssued {
	t.Helper()
	var key crypto.Signer
	var err error
	if bits > 0 {
		key, err = rsa.GenerateKey(rand.Reader, bits)
	} else {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	// Whole seconds: certificates store times at second precision.
	tmpl.NotBefore = time.Now().Add(-time.Hour).Truncate(time.Second)
	tmpl.NotAfter = time.Now().Add(48 * time.Hour).Truncate(time.Second)
	issuer, signer := tmpl, key
	if parent != nil {
		issuer, signer = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, key.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cIssued{cert: cert, key: key}
}

// cCA makes a CA that may sign one level of intermediates.
func cCA(t *testing.T, cn string) cIssued {
	t.Helper()
	return cMake(t, &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"Plant"}, OrganizationalUnit: []string{"OT"}},
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            1,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}, nil, 0)
}

// cLeaf makes a client and server certificate signed by ca, with
// alternative names of every kind.
func cLeaf(t *testing.T, ca cIssued, cn string) cIssued {
	t.Helper()
	u, _ := url.Parse("spiffe://plant/device")
	return cMake(t, &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn},
		DNSNames:              []string{"device.example"},
		IPAddresses:           []net.IP{net.ParseIP("10.0.0.7")},
		EmailAddresses:        []string{"ops@example.com"},
		URIs:                  []*url.URL{u},
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	}, &ca, 0)
}

// cList returns GET /api/certificates.
func cList(t *testing.T, a *api) []cCert {
	t.Helper()
	var out []cCert
	a.must("GET", "/api/certificates", nil, http.StatusOK, &out)
	return out
}

func cIDs(list []cCert) []string {
	out := make([]string, len(list))
	for i, c := range list {
		out[i] = c.ID
	}
	return out
}

// cPost sends body to POST /api/certificates with the content type, as
// the admin.
func cPost(t *testing.T, a *api, contentType string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest("POST", a.url+"/api/certificates", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Authorization", "Bearer "+a.admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

// cInternalCA returns the internal CA the server lists (and created).
func cInternalCA(t *testing.T, a *api) *pki.CA {
	t.Helper()
	ca, err := pki.LoadOrCreateCA(t.Context(), a.st, pki.DefaultCAName)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// cWithTrust starts a second server on a's store and tokens (so a's admin
// token works) whose inventory is ts, as cmd/warden wires it.
func cWithTrust(t *testing.T, a *api, ts *pki.TrustStore) *api {
	t.Helper()
	srv, err := admin.New(admin.WithRegistryAndTrust(t, admin.Options{Store: a.st, Tokens: a.tokens, Params: fastParams, Trust: ts, Logger: slog.New(slog.DiscardHandler)}))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return &api{t: t, url: hs.URL, st: a.st, srv: srv, tokens: a.tokens, admin: a.admin}
}

func TestCertificatesListAddContentDelete(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, a *api) {
		internal := cInternalCA(t, a)

		// Before anything is added, the list is the internal CA alone.
		list := cList(t, a)
		if len(list) != 1 || list[0].ID != internal.Fingerprint() {
			t.Fatalf("fresh list = %v, want only the internal CA %s", cIDs(list), internal.Fingerprint())
		}
		got := list[0]
		if got.Removable || !got.BasicConstraints.IsCA || got.BasicConstraints.PathLength == nil || *got.BasicConstraints.PathLength != 0 {
			t.Errorf("internal CA: removable %v, basicConstraints %+v; want not removable, a CA with path length 0", got.Removable, got.BasicConstraints)
		}
		if got.IssuedBy.CommonName != pki.DefaultCAName || got.IssuedTo.CommonName != pki.DefaultCAName {
			t.Errorf("internal CA issuedBy/issuedTo = %q/%q", got.IssuedBy.CommonName, got.IssuedTo.CommonName)
		}
		if !slices.Equal(got.KeyUsage, []string{"keyCertSign", "cRLSign"}) || len(got.ExtendedKeyUsage) != 0 {
			t.Errorf("internal CA keyUsage %v extendedKeyUsage %v", got.KeyUsage, got.ExtendedKeyUsage)
		}

		// The seed's form: a JSON string holding PEM, here two certificates.
		ca := cCA(t, "Plant CA")
		leaf := cLeaf(t, ca, "device-1")
		var added []cCert
		code, body := cPost(t, a, "application/json", mustJSON(t, ca.pem()+leaf.pem()))
		if code != http.StatusCreated {
			t.Fatalf("POST: %d %s", code, body)
		}
		if err := json.Unmarshal(body, &added); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(cIDs(added), []string{ca.id(), leaf.id()}) {
			t.Fatalf("POST returned %v, want the CA then the leaf", cIDs(added))
		}

		// Every field, for the CA and for the leaf.
		c, l := added[0], added[1]
		sha1sum := sha1.Sum(ca.cert.Raw)
		if c.Fingerprints.SHA256 != ca.id() || c.Fingerprints.SHA1 != hex.EncodeToString(sha1sum[:]) {
			t.Errorf("CA fingerprints %+v", c.Fingerprints)
		}
		if c.IssuedBy.CommonName != "Plant CA" || c.IssuedBy.Organization != "Plant" || c.IssuedBy.OrganizationalUnit != "OT" {
			t.Errorf("CA issuedBy %+v", c.IssuedBy)
		}
		if !c.BasicConstraints.IsCA || c.BasicConstraints.PathLength == nil || *c.BasicConstraints.PathLength != 1 {
			t.Errorf("CA basicConstraints %+v, want a CA with path length 1", c.BasicConstraints)
		}
		if !slices.Equal(c.KeyUsage, []string{"digitalSignature", "keyCertSign", "cRLSign"}) {
			t.Errorf("CA keyUsage %v", c.KeyUsage)
		}
		if c.IssuedOn != ca.cert.NotBefore.UnixMilli() || c.ExpiresOn != ca.cert.NotAfter.UnixMilli() {
			t.Errorf("CA issuedOn/expiresOn %d/%d, want %d/%d (Unix ms)", c.IssuedOn, c.ExpiresOn, ca.cert.NotBefore.UnixMilli(), ca.cert.NotAfter.UnixMilli())
		}
		if !c.Removable || !l.Removable {
			t.Error("added certificates are not removable")
		}
		if l.IssuedTo.CommonName != "device-1" || l.IssuedBy.CommonName != "Plant CA" {
			t.Errorf("leaf issuedTo/issuedBy %q/%q", l.IssuedTo.CommonName, l.IssuedBy.CommonName)
		}
		if want := []string{"device.example", "10.0.0.7", "ops@example.com", "spiffe://plant/device"}; !slices.Equal(l.IssuedTo.AlternativeNames, want) {
			t.Errorf("leaf alternativeNames %v, want %v", l.IssuedTo.AlternativeNames, want)
		}
		if !slices.Equal(l.ExtendedKeyUsage, []string{"clientAuth", "serverAuth"}) || !slices.Equal(l.KeyUsage, []string{"digitalSignature", "keyEncipherment"}) {
			t.Errorf("leaf extendedKeyUsage %v keyUsage %v", l.ExtendedKeyUsage, l.KeyUsage)
		}
		if l.BasicConstraints.IsCA || l.BasicConstraints.PathLength != nil {
			t.Errorf("leaf basicConstraints %+v, want not a CA, no path length", l.BasicConstraints)
		}

		// Raw PEM works too, by content type or by its BEGIN line, and
		// adding a trusted certificate again duplicates nothing.
		if code, body := cPost(t, a, "application/x-pem-file", []byte("# Plant CA\n"+ca.pem())); code != http.StatusCreated {
			t.Fatalf("POST application/x-pem-file: %d %s", code, body)
		}
		if code, body := cPost(t, a, "text/plain", []byte(leaf.pem())); code != http.StatusCreated {
			t.Fatalf("POST raw PEM as text/plain: %d %s", code, body)
		}
		// The internal CA itself: listed once, still not removable.
		var again []cCert
		a.must("POST", "/api/certificates", string(internal.CertPEM()), http.StatusCreated, &again)
		if len(again) != 1 || again[0].ID != internal.Fingerprint() || again[0].Removable {
			t.Errorf("POST of the internal CA returned %+v", again)
		}
		if ids := cIDs(cList(t, a)); !slices.Equal(ids, []string{internal.Fingerprint(), ca.id(), leaf.id()}) {
			t.Fatalf("list = %v, want internal CA, CA, leaf, each once", ids)
		}

		// Content, by id as listed or as openssl prints it.
		var content string
		a.must("GET", "/api/certificates/content?id="+ca.id(), nil, http.StatusOK, &content)
		if content != ca.pem() {
			t.Errorf("content = %q, want the CA's PEM", content)
		}
		openssl := strings.ToUpper(ca.id()[:2] + ":" + ca.id()[2:])
		a.must("GET", "/api/certificates/content?id="+url.QueryEscape(openssl), nil, http.StatusOK, &content)
		a.must("GET", "/api/certificates/content?id="+internal.Fingerprint(), nil, http.StatusOK, &content)
		if content != string(internal.CertPEM()) {
			t.Errorf("internal CA content = %q", content)
		}

		// Delete: the leaf goes; the internal CA cannot.
		a.must("DELETE", "/api/certificates?id="+leaf.id(), nil, http.StatusOK, nil)
		if ids := cIDs(cList(t, a)); !slices.Equal(ids, []string{internal.Fingerprint(), ca.id()}) {
			t.Errorf("list after DELETE = %v", ids)
		}
		for _, tc := range []struct {
			name, method, path string
			want               int
		}{
			{"deleting it again is not found", "DELETE", "/api/certificates?id=" + leaf.id(), http.StatusNotFound},
			{"its content is not found", "GET", "/api/certificates/content?id=" + leaf.id(), http.StatusNotFound},
			{"the internal CA is not removable", "DELETE", "/api/certificates?id=" + internal.Fingerprint(), http.StatusConflict},
			{"delete needs an id", "DELETE", "/api/certificates", http.StatusBadRequest},
			{"delete needs a fingerprint as id", "DELETE", "/api/certificates?id=plant-ca", http.StatusBadRequest},
			{"content needs an id", "GET", "/api/certificates/content", http.StatusBadRequest},
			{"content needs a whole fingerprint", "GET", "/api/certificates/content?id=" + ca.id()[:40], http.StatusBadRequest},
		} {
			code, body := a.do(tc.method, tc.path, a.admin, nil)
			if code != tc.want || errorCode(t, body) != tc.want {
				t.Errorf("%s: %s %s = %d %s, want %d", tc.name, tc.method, tc.path, code, body, tc.want)
			}
		}
		if ids := cIDs(cList(t, a)); !slices.Equal(ids, []string{internal.Fingerprint(), ca.id()}) {
			t.Errorf("refused requests changed the list to %v", ids)
		}
	})
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCertificatesRefusesUnusableInput(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, a *api) {
		ca := cCA(t, "Plant CA")
		weak := cMake(t, &x509.Certificate{Subject: pkix.Name{CommonName: "weak"}, IsCA: true, BasicConstraintsValid: true}, nil, 1024)
		keyDER, err := x509.MarshalPKCS8PrivateKey(ca.key)
		if err != nil {
			t.Fatal(err)
		}
		keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
		for _, tc := range []struct {
			name, contentType string
			body              []byte
			want              int
			mention           string
		}{
			{"an empty body", "application/json", nil, http.StatusBadRequest, "empty"},
			{"a JSON object", "application/json", []byte(`{"certificate":"x"}`), http.StatusBadRequest, "JSON string"},
			{"a JSON array of PEM", "application/json", mustJSON(t, []string{ca.pem()}), http.StatusBadRequest, "JSON string"},
			{"a JSON string without PEM", "application/json", mustJSON(t, "hello"), http.StatusBadRequest, "no PEM certificate"},
			{"a broken JSON string", "application/json", []byte(`"-----BEGIN`), http.StatusBadRequest, "malformed JSON"},
			{"a private key after the CA", "application/json", mustJSON(t, ca.pem()+keyPEM), http.StatusBadRequest, "PRIVATE KEY"},
			{"a certificate cut short", "application/x-pem-file", []byte(ca.pem()[:200]), http.StatusBadRequest, "incomplete"},
			{"an RSA key of 1024 bits", "application/json", mustJSON(t, weak.pem()), http.StatusBadRequest, "1024 bits"},
			{"text that is neither", "text/plain", []byte("hello"), http.StatusBadRequest, "JSON string"},
			{"a body over 1 MiB", "application/x-pem-file", bytes.Repeat([]byte(ca.pem()), admin.MaxBodyBytes/len(ca.pem())+1), http.StatusRequestEntityTooLarge, "larger than"},
		} {
			code, body := cPost(t, a, tc.contentType, tc.body)
			if code != tc.want || errorCode(t, body) != tc.want || !strings.Contains(string(body), tc.mention) {
				t.Errorf("%s: %d %s, want %d mentioning %q", tc.name, code, body, tc.want, tc.mention)
			}
		}
		if list := cList(t, a); len(list) != 1 {
			t.Errorf("refused input changed the list: %v", cIDs(list))
		}
	})
}

func TestCertificatesNeedHTTPPermissions(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, a *api) {
		pw := "Reader-password-1"
		a.must("POST", "/api/users", map[string]any{"username": "auditor", "password": pw, "initialPermissions": []map[string]string{
			{"resource": "/api/certificates/#", "operation": "read", "context": "http"},
		}}, http.StatusCreated, nil)
		a.must("POST", "/api/users", map[string]any{"username": "nobody", "password": pw}, http.StatusCreated, nil)
		auditor, nobody := a.login("auditor", pw), a.login("nobody", pw)
		id := cInternalCA(t, a).Fingerprint()
		ca := cCA(t, "Plant CA")

		for _, tc := range []struct {
			who, token, method, path string
			body                     any
			want                     int
		}{
			{"no token", "", "GET", "/api/certificates", nil, http.StatusUnauthorized},
			{"no token", "", "POST", "/api/certificates", ca.pem(), http.StatusUnauthorized},
			{"no token", "", "DELETE", "/api/certificates?id=" + id, nil, http.StatusUnauthorized},
			{"no token", "", "GET", "/api/certificates/content?id=" + id, nil, http.StatusUnauthorized},
			{"no permission", nobody, "GET", "/api/certificates", nil, http.StatusForbidden},
			{"no permission", nobody, "GET", "/api/certificates/content?id=" + id, nil, http.StatusForbidden},
			{"read only", auditor, "GET", "/api/certificates", nil, http.StatusOK},
			{"read only", auditor, "GET", "/api/certificates/content?id=" + id, nil, http.StatusOK},
			{"read only", auditor, "POST", "/api/certificates", ca.pem(), http.StatusForbidden},
			{"read only", auditor, "DELETE", "/api/certificates?id=" + id, nil, http.StatusForbidden},
		} {
			if code, body := a.do(tc.method, tc.path, tc.token, tc.body); code != tc.want {
				t.Errorf("%s: %s %s = %d %s, want %d", tc.who, tc.method, tc.path, code, body, tc.want)
			}
		}
		if list := cList(t, a); len(list) != 1 {
			t.Errorf("a refused caller changed the list: %v", cIDs(list))
		}
	})
}

// TestCertificatesChangeTheListenersTrust: with the TrustStore cmd/warden
// also gives the TLS listeners, the --client-ca certificates are listed
// and not removable, and a CA added or removed over HTTP is in or out of
// the listeners' pool as soon as the request returns.
func TestCertificatesChangeTheListenersTrust(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, a *api) {
		internal := cInternalCA(t, a)
		configured := cCA(t, "Configured CA")
		ts, err := pki.NewTrustStore(t.Context(), a.st, pki.TrustOptions{CA: internal, Config: []*x509.Certificate{configured.cert}, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		b := cWithTrust(t, a, ts)

		list := cList(t, b)
		if ids := cIDs(list); !slices.Equal(ids, []string{internal.Fingerprint(), configured.id()}) {
			t.Fatalf("list = %v, want the internal CA and the --client-ca one", ids)
		}
		if list[1].Removable {
			t.Error("a --client-ca certificate is listed as removable")
		}
		code, body := b.do("DELETE", "/api/certificates?id="+configured.id(), b.admin, nil)
		if code != http.StatusConflict || !strings.Contains(string(body), "cannot be removed") {
			t.Errorf("DELETE of a --client-ca certificate: %d %s, want 409", code, body)
		}

		ca := cCA(t, "Plant CA")
		device := cLeaf(t, ca, "device-1")
		verifies := func() bool {
			_, err := device.cert.Verify(x509.VerifyOptions{Roots: ts.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
			return err == nil
		}
		if verifies() {
			t.Fatal("the device verifies before its CA is added")
		}
		b.must("POST", "/api/certificates", ca.pem(), http.StatusCreated, nil)
		if !verifies() {
			t.Fatal("the device does not verify once POST /api/certificates returned")
		}
		b.must("DELETE", "/api/certificates?id="+ca.id(), nil, http.StatusOK, nil)
		if verifies() {
			t.Fatal("the device still verifies once DELETE /api/certificates returned")
		}
	})
}
