package main

import (
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// TestUIAccount walks the account page of a user whose MFA enrollment is
// due: it is the only page offered; the user enrolls with the key shown
// as text and as a QR code drawn by warden, sees 10 backup codes
// once, gets the other pages, signs out and in again with a code; removes
// a trusted device; changes its password, a weak one refused with the
// unmet rule. The API holds each change.
func TestUIAccount(t *testing.T) {
	t.Parallel()
	e := startUI(t)
	readers := e.role("user-readers", httpRead("/api/listUsers"), httpRead("/api/users/#"))
	pw := validPassword(t)
	var created struct{ ID string }
	e.api("POST", "/api/users", map[string]any{"username": "maria.keller", "password": pw, "roles": []string{readers}, "enforceMFAEnrollment": true}, &created, 201)
	e.signIn("maria.keller", pw, "")
	b := e.b
	b.Run("only the account page while enrollment is due", 10*time.Second,
		chromedp.WaitVisible(`//main//h1[normalize-space()="My account"]`, chromedp.BySearch),
		waitText(`//main//p[@role="alert"]`, "requires two-step verification"))
	if n := b.Nodes(`nav.sidenav a`); n != 1 {
		t.Errorf("%d pages offered while enrollment is due, want 1 (My account)", n)
	}
	b.Run("start the enrollment", 10*time.Second,
		clickButton("//main", "Set up two-step verification"),
		chromedp.WaitVisible(`code.secret`),
		chromedp.Click(`//main//summary`, chromedp.BySearch))
	uri := b.Text(`code.otpauth-uri`)
	key, err := otp.NewKeyFromURL(uri)
	if err != nil {
		t.Fatalf("the URI shown (%q): %v", uri, err)
	}
	if typed := strings.ReplaceAll(b.Text(`code.secret`), " ", ""); typed != key.Secret() {
		t.Errorf("key shown to type %q, the URI's %q", typed, key.Secret())
	}
	var imgs []*cdp.Node
	b.Run("QR code", 5*time.Second, chromedp.Nodes(`img[alt="QR code for your authenticator app"]`, &imgs, chromedp.AtLeast(0)))
	// warden draws the QR code (POST /api/mfa/enable's qrCode): nothing
	// is fetched from elsewhere, which the CSP would refuse anyway.
	if len(imgs) != 1 || !strings.HasPrefix(imgs[0].AttributeValue("src"), "data:image/png;base64,") {
		t.Errorf("the enrollment shows %d QR images, want one drawn by warden (a PNG data: URI)", len(imgs))
	}
	b.Screenshot(filepath.Join("..", "..", "docs", "ui", "account-mfa.png"))
	now, err := totp.GenerateCode(key.Secret(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b.Run("verify", 10*time.Second,
		chromedp.SendKeys(`input[name="enroll-code"]`, now),
		clickButton("//main", "Verify and turn on"),
		chromedp.WaitVisible(`ol.codes`))
	var codes []string
	b.Run("backup codes", 5*time.Second, chromedp.Evaluate(`[...document.querySelectorAll('ol.codes li')].map((li) => li.textContent)`, &codes))
	if len(codes) != 10 {
		t.Fatalf("backup codes shown: %v, want 10", codes)
	}
	var href string
	var ok bool
	b.Run("download link", 5*time.Second, chromedp.AttributeValue(`//main//a[normalize-space()="Download as text"]`, "href", &href, &ok, chromedp.BySearch))
	if !strings.HasPrefix(href, "blob:") {
		t.Errorf("download link %q, want a blob: URL", href)
	}
	b.Run("the warning that they are shown once", 5*time.Second, waitText(`//main//p[@role="alert"]`, "they are not shown again"))
	if !e.mfaEnrolled(created.ID) {
		t.Fatalf("the API does not hold the enrollment")
	}
	b.Run("codes put away: the other pages are offered", 10*time.Second,
		clickButton("//main", "I have saved them"),
		chromedp.WaitVisible(`//nav//a[normalize-space()="Users"]`, chromedp.BySearch),
		chromedp.WaitVisible(`//main//h2[normalize-space()="Change my password"]`, chromedp.BySearch))
	if n := b.Nodes(`ol.codes`); n != 0 {
		t.Errorf("the backup codes are still shown")
	}

	// Sign out, and in again: now with a code (of the next step: the
	// enrollment spent the current one).
	b.Run("log out", 10*time.Second,
		clickButton("//header", "Log out"),
		chromedp.WaitVisible(`input[name=username]`))
	e.signIn("maria.keller", pw, nextCode(t, key.Secret()))

	// A device trusted at an MFA login (made over HTTP with a backup code)
	// shows, and is removed.
	_, login := postJSON(t, e.base, "/api/login", "", map[string]string{"username": "maria.keller", "password": pw})
	secret, _ := login["secret"].(string)
	code, mfaLogin := postJSON(t, e.base, "/api/mfa/login", "", map[string]any{"username": "maria.keller", "secret": secret,
		"backupCode": codes[0], "trustDevice": true, "deviceName": "Line 1 tablet"})
	token, _ := mfaLogin["token"].(string)
	if code != 200 || token == "" {
		t.Fatalf("MFA login with a backup code: %d %v", code, mfaLogin)
	}
	e.page("account", "My account")
	b.Run("new backup codes, with a backup code", 10*time.Second,
		chromedp.SendKeys(`input[name="mfa-code"]`, codes[1]),
		clickButton("//main", "New backup codes"),
		chromedp.WaitVisible(`ol.codes`))
	var fresh []string
	b.Run("the new codes", 5*time.Second, chromedp.Evaluate(`[...document.querySelectorAll('ol.codes li')].map((li) => li.textContent)`, &fresh))
	if len(fresh) != 10 || slices.Contains(fresh, codes[2]) {
		t.Fatalf("new backup codes %v (old ones %v)", fresh, codes)
	}
	b.Run("put them away", 5*time.Second, clickButton("//main", "I have saved them"), chromedp.WaitNotPresent(`ol.codes`))
	_, login = postJSON(t, e.base, "/api/login", "", map[string]string{"username": "maria.keller", "password": pw})
	if code, _ := postJSON(t, e.base, "/api/mfa/login", "", map[string]any{"username": "maria.keller", "secret": login["secret"], "backupCode": codes[2]}); code == 200 {
		t.Errorf("an old backup code still works after new ones were made")
	}
	b.Run("the trusted device", 10*time.Second,
		chromedp.WaitVisible(`//main//td[normalize-space()="Line 1 tablet"]`, chromedp.BySearch),
		chromedp.WaitVisible(`//main//h2[normalize-space()="Two-step verification"]/following-sibling::p/span[normalize-space()="On"]`, chromedp.BySearch))
	e.shoot("account")
	b.Run("remove it", 10*time.Second,
		chromedp.Click(`//main//button[@aria-label="Remove trusted device Line 1 tablet"]`, chromedp.BySearch),
		chromedp.WaitNotPresent(`//main//td[normalize-space()="Line 1 tablet"]`, chromedp.BySearch))
	var devices []any
	apiCall(t, e.addr, "GET", "/api/v1/user/my/mfa/trusted_device", token, nil, &devices, 200)
	if len(devices) != 0 {
		t.Errorf("trusted devices after removing: %v", devices)
	}

	// A new password: a weak one names the unmet rule and is not sent.
	newPW := validPassword(t)
	b.Run("a weak new password", 10*time.Second,
		chromedp.SendKeys(`input[name="current-password"]`, pw),
		chromedp.SendKeys(`input[name="my-new-password"]`, "abc"),
		waitText(`//main//p[@aria-live="polite"][contains(@class,"pw-status")]`, "Still needed: at least 10 characters (has 3)"),
		chromedp.SendKeys(`input[name="repeat-password"]`, "abc"),
		clickButton("//main", "Change password"),
		waitText(`//main//p[contains(@class,"field-error")]`, "The new password needs at least 10 characters"))
	if code, _ := postJSON(t, e.base, "/api/login", "", map[string]string{"username": "maria.keller", "password": pw}); code != 200 {
		t.Fatalf("the old password stopped working after a refused change: %d", code)
	}
	b.Run("a valid one", 10*time.Second,
		chromedp.Evaluate(`for (const n of ['my-new-password', 'repeat-password']) document.querySelector('input[name="' + n + '"]').value = ''`, nil),
		chromedp.SendKeys(`input[name="my-new-password"]`, newPW),
		chromedp.SendKeys(`input[name="repeat-password"]`, newPW),
		waitText(`//main//p[contains(@class,"pw-status")]`, "The password meets the policy."),
		clickButton("//main", "Change password"),
		waitText(`//div[@id="toasts"]/div`, "Password changed"))
	if code, _ := postJSON(t, e.base, "/api/login", "", map[string]string{"username": "maria.keller", "password": newPW}); code != 200 {
		t.Errorf("login with the new password: %d", code)
	}
	if code, _ := postJSON(t, e.base, "/api/login", "", map[string]string{"username": "maria.keller", "password": pw}); code != 403 {
		t.Errorf("login with the old password: %d, want 403", code)
	}
	var list struct {
		Users []struct {
			MFAIsEnrolled bool `json:"mfa_is_enrolled"`
		} `json:"users"`
	}
	e.api("GET", "/api/listUsers?"+url.Values{"username[eq]": {"maria.keller"}}.Encode(), nil, &list, 200)
	if len(list.Users) != 1 || !list.Users[0].MFAIsEnrolled {
		t.Errorf("after the password change: %+v", list.Users)
	}
	if errs := b.Errors(); len(errs) > 0 {
		t.Errorf("page errors: %v", errs)
	}
}
