package main

import (
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// trustedIDs lists the ids (SHA-256 fingerprints) GET /api/certificates
// answers, with whether each is removable.
func (e *uiEnv) trustedIDs() map[string]bool {
	e.t.Helper()
	var certs []struct {
		ID        string `json:"id"`
		Removable bool   `json:"removable"`
	}
	e.api("GET", "/api/certificates", nil, &certs, 200)
	out := map[string]bool{}
	for _, c := range certs {
		out[c.ID] = c.Removable
	}
	return out
}

// TestUICertificates: a CA made by the test, read from a PEM file in the
// upload form, is trusted (the API lists it) and shown with its expiry
// and the badge of a certificate that expires within 30 days; removing it
// in the UI after the confirmation stops the API trusting it. The
// internal CA is listed without a remove button.
func TestUICertificates(t *testing.T) {
	t.Parallel()
	e := startUI(t)
	ca, _ := trustIssue(t, &x509.Certificate{
		Subject: pkix.Name{CommonName: "Plant 1 Device CA", Organization: []string{"ACME Manufacturing"}, OrganizationalUnit: []string{"OT"}},
		IsCA:    true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, nil, nil) // valid for a day: the UI flags it as expiring
	sum := sha256.Sum256(ca.Raw)
	id := hex.EncodeToString(sum[:])
	pemFile := trustWrite(t, t.TempDir(), "plant1-ca.pem", "CERTIFICATE", ca.Raw)

	e.signIn("admin", e.pw, "")
	e.page("certificates", "Trusted certificates")
	builtIn := 0
	for _, removable := range e.trustedIDs() {
		if !removable {
			builtIn++
		}
	}
	if builtIn == 0 {
		t.Fatal("the API lists no built-in (internal CA) certificate")
	}
	e.b.Run("the list", 10*time.Second, chromedp.WaitVisible(`//main//table`, chromedp.BySearch))
	if n := e.b.Nodes(`//main//tbody/tr[.//span[normalize-space()="Built in"]]`); n != builtIn {
		t.Errorf("%d rows say Built in, want %d", n, builtIn)
	}
	if n := e.b.Nodes(`//main//tbody//button`); n != 0 {
		t.Errorf("%d remove buttons before anything was added, want none", n)
	}

	e.b.Run("upload the PEM file", 15*time.Second,
		chromedp.SetUploadFiles(`main input[name=file]`, []string{pemFile}),
		chromedp.Poll(`document.querySelector('main textarea[name=pem]').value.includes('BEGIN CERTIFICATE')`, nil),
		clickButton("//main", "Trust these certificates"),
		chromedp.WaitVisible(`//main//td//strong[normalize-space()="Plant 1 Device CA"]`, chromedp.BySearch))
	if removable, ok := e.trustedIDs()[id]; !ok || !removable {
		t.Fatalf("after the upload the API lists the CA: %v, removable %v", ok, removable)
	}
	row := `//main//tbody/tr[.//strong[normalize-space()="Plant 1 Device CA"]]`
	expires := e.b.Text(row + `/td[@data-label="Expires"]`)
	if !strings.Contains(expires, "Expires in 1 day") {
		t.Errorf("expiry cell %q lacks the expiring badge", expires)
	}
	if fp := e.b.Text(row + `/td[@data-label="SHA-256 fingerprint"]`); strings.ReplaceAll(strings.ToLower(fp), ":", "") != id {
		t.Errorf("fingerprint cell %q, want %s", fp, id)
	}
	if got := e.b.Text(row + `/td[@data-label="Subject"]`); !strings.Contains(got, "ACME Manufacturing") || !strings.Contains(got, "CA") {
		t.Errorf("subject cell %q", got)
	}
	e.shoot("certificates")

	e.b.Run("remove it", 15*time.Second,
		chromedp.Click(`//main//button[@aria-label="Remove Plant 1 Device CA"]`, chromedp.BySearch),
		clickButton("//dialog", "Remove"),
		chromedp.WaitNotPresent(row, chromedp.BySearch))
	if _, ok := e.trustedIDs()[id]; ok {
		t.Error("the API still trusts the CA after Remove")
	}
	if errs := e.b.Errors(); len(errs) > 0 {
		t.Errorf("page errors: %v", errs)
	}
}
