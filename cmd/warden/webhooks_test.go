package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// whCert is a certificate the test made, with its key.
type whCert struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// whIssue makes a CA (parent nil) or a client certificate signed by
// parent.
func whIssue(t *testing.T, cn string, parent *whCert) whCert {
	t.Helper()
	tmpl := &x509.Certificate{Subject: pkix.Name{CommonName: cn}}
	if parent == nil {
		tmpl.IsCA, tmpl.KeyUsage = true, x509.KeyUsageCertSign
	} else {
		tmpl.KeyUsage, tmpl.ExtKeyUsage = x509.KeyUsageDigitalSignature, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	return issueCert(t, tmpl, parent)
}

// issueCert signs tmpl, valid for the hour around now, for a fresh P-256
// key, with parent (self-signed when nil).
func issueCert(t *testing.T, tmpl *x509.Certificate, parent *whCert) whCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	tmpl.BasicConstraintsValid = true
	issuer, signer := tmpl, key
	if parent != nil {
		issuer, signer = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return whCert{cert: cert, key: key}
}

func (c whCert) pem() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.cert.Raw})
}

// TestAdminAsksBrokersForTheWebhookCACertificate runs the binary with
// --webhook-client-ca and the admin API over HTTPS: the listener asks for
// a client certificate naming the webhook CA, a broker's certificate from
// that CA completes the handshake, one from another CA does not, and a
// client without a certificate (an operator with a token) is served as
// before. The webhook routes themselves are the webhook package's and are
// mounted from its Routes(); the admin package's tests cover who may call
// them.
func TestAdminAsksBrokersForTheWebhookCACertificate(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs the binary")
	}
	bin := buildWarden(t)
	dir := t.TempDir()
	certFile, keyFile, roots := writeServerCert(t, dir, "admin-api")
	hookCA, otherCA := whIssue(t, "broker CA", nil), whIssue(t, "device CA", nil)
	caFile := filepath.Join(dir, "broker-ca.pem")
	if err := os.WriteFile(caFile, hookCA.pem(), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startWarden(t, bin, "WARDEN_DATA_DIR="+filepath.Join(dir, "data"),
		"WARDEN_HTTP_TLS_CERT="+certFile, "WARDEN_HTTP_TLS_KEY="+keyFile, "WARDEN_WEBHOOK_CLIENT_CA="+caFile)
	p.waitFor("warden ready")
	httpAddr := loopback(listenAddr(t, p.out.String(), "http"))

	get := func(cert *whCert) (*http.Response, [][]byte, error) {
		var asked [][]byte
		cfg := &tls.Config{RootCAs: roots, ServerName: "localhost",
			GetClientCertificate: func(req *tls.CertificateRequestInfo) (*tls.Certificate, error) {
				asked = req.AcceptableCAs
				if cert == nil {
					return &tls.Certificate{}, nil
				}
				return &tls.Certificate{Certificate: [][]byte{cert.cert.Raw}, PrivateKey: cert.key}, nil
			}}
		client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
		defer client.CloseIdleConnections()
		resp, err := client.Get("https://" + httpAddr + "/healthz")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		}
		return resp, asked, err
	}

	broker := whIssue(t, "vernemq", &hookCA)
	resp, asked, err := get(&broker)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz with the broker's certificate: %v %v", resp, err)
	}
	if len(asked) != 1 || !bytes.Equal(asked[0], hookCA.cert.RawSubject) {
		t.Errorf("the listener asked for certificates from %q, want the webhook CA alone", asked)
	}
	device := whIssue(t, "device", &otherCA)
	if _, _, err := get(&device); err == nil {
		t.Error("a certificate from another CA completed the handshake")
	}
	if resp, _, err := get(nil); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz without a certificate: %v %v", resp, err)
	}
	if !strings.Contains(p.out.String(), "webhook_client_ca=true") {
		t.Errorf("the listening line does not say the webhook CA is on:\n%s", p.out)
	}

	// VerneMQ's register hook, as vmq_webhooks calls it: with the broker's
	// certificate warden decides (an unknown user is not allowed); without
	// one the broker is not authenticated.
	register := func(cert *whCert) (int, string) {
		cfg := &tls.Config{RootCAs: roots, ServerName: "localhost"}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{{Certificate: [][]byte{cert.cert.Raw}, PrivateKey: cert.key}}
		}
		client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
		defer client.CloseIdleConnections()
		req, _ := http.NewRequest(http.MethodPost, "https://"+httpAddr+"/api/broker/auth/register",
			strings.NewReader(`{"peer_addr":"192.0.2.9","peer_port":50001,"username":"nobody","password":"x-Password-1","mountpoint":"","client_id":"dev-1","clean_session":true}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("vernemq-hook", "auth_on_register")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("register hook: %v", err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(body))
	}
	if code, body := register(&broker); code != http.StatusOK || body != `{"result":{"error":"not_allowed"}}` {
		t.Errorf("register hook with the broker's certificate: %d %s, want 200 not_allowed", code, body)
	}
	if code, _ := register(nil); code != http.StatusUnauthorized {
		t.Errorf("register hook without a certificate: %d, want 401", code)
	}
}

// TestLoadWebhookCAs: the file must hold certificates only; errors name
// the flag.
func TestLoadWebhookCAs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if pool, err := loadWebhookCAs(""); pool != nil || err != nil {
		t.Fatalf("empty path: %v %v, want no pool", pool, err)
	}
	ca := whIssue(t, "broker CA", nil)
	good := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(good, ca.pem(), 0o600); err != nil {
		t.Fatal(err)
	}
	pool, err := loadWebhookCAs(good)
	if err != nil {
		t.Fatal(err)
	}
	leaf := whIssue(t, "vernemq", &ca)
	if _, err := leaf.cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("a certificate of the CA does not verify against the loaded pool: %v", err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(ca.key)
	withKey := filepath.Join(dir, "with-key.pem")
	if err := os.WriteFile(withKey, append(ca.pem(), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})...), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{withKey, filepath.Join(dir, "missing.pem")} {
		if _, err := loadWebhookCAs(path); err == nil || !strings.Contains(err.Error(), "--webhook-client-ca") {
			t.Errorf("%s: %v, want an error naming --webhook-client-ca", path, err)
		}
	}
}

// TestRunRefusesAWebhookCAWithoutTLS: the configuration error is reported
// before anything starts, with exit code 2.
func TestRunRefusesAWebhookCAWithoutTLS(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	code := run(t.Context(), []string{"--webhook-client-ca=ca.pem", "--data-dir=" + t.TempDir()}, env(nil), &out)
	if code != exitConfig || !strings.Contains(out.String(), "--webhook-client-ca (WARDEN_WEBHOOK_CLIENT_CA): needs the admin API over TLS") {
		t.Fatalf("exit %d, output:\n%s", code, out.String())
	}
}
