package main

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/warden-mqtt/warden/internal/browsertest"
)

// uiEnv is a warden binary started for a browser test, with a headless
// chromium on its admin UI and an admin token for setting things up over
// HTTP where the test is not about the UI.
type uiEnv struct {
	t     *testing.T
	b     *browsertest.Browser
	p     *process
	base  string // http://127.0.0.1:port
	addr  string // 127.0.0.1:port of the admin listener (apiCall's base)
	mqtt  string // 127.0.0.1:port
	pw    string // the admin's password
	token string // an admin API token
}

// startUI starts warden (embedded store, MFA on) and a browser on its UI.
func startUI(t *testing.T, args ...string) *uiEnv {
	t.Helper()
	b := browsertest.New(t)
	bin := buildWarden(t)
	pw := validPassword(t)
	p := startWardenArgs(t, bin, args, "WARDEN_DATA_DIR="+filepath.Join(t.TempDir(), "data"), "WARDEN_ADMIN_PASSWORD="+pw)
	p.waitFor("warden ready")
	out := p.out.String()
	e := &uiEnv{t: t, b: b, p: p, pw: pw,
		addr: strings.Replace(listenAddr(t, out, "http"), "[::]", "127.0.0.1", 1),
		mqtt: strings.Replace(listenAddr(t, out, "mqtt"), "[::]", "127.0.0.1", 1)}
	e.base = "http://" + e.addr
	_, login := postJSON(t, e.base, "/api/login", "", map[string]string{"username": "admin", "password": pw})
	e.token, _ = login["token"].(string)
	if e.token == "" {
		t.Fatalf("admin login: %v", login)
	}
	return e
}

// api calls the API with the admin's token (apiCall), failing the test
// unless the answer has status want.
func (e *uiEnv) api(method, path string, body, out any, want int) {
	e.t.Helper()
	apiCall(e.t, e.addr, method, path, e.token, body, out, want)
}

// mfaEnrolled asks the API whether the user is enrolled in MFA.
func (e *uiEnv) mfaEnrolled(userID string) bool {
	e.t.Helper()
	var u struct {
		Enrolled bool `json:"mfa_is_enrolled"`
	}
	e.api("GET", "/api/users/"+userID, nil, &u, 200)
	return u.Enrolled
}

// shoot captures the page for docs/ui/<name>.png (browsertest.Screenshot)
// without the toasts earlier steps left.
func (e *uiEnv) shoot(name string) {
	e.t.Helper()
	e.b.Run("hide toasts", 5*time.Second, chromedp.Evaluate(`document.getElementById('toasts').replaceChildren()`, nil))
	e.b.Screenshot(filepath.Join("..", "..", "docs", "ui", name+".png"))
}

// enrollAdminMFA enrolls the admin in TOTP over the API and returns the
// secret the test's authenticator computes codes from.
func (e *uiEnv) enrollAdminMFA() string {
	e.t.Helper()
	code, en := postJSON(e.t, e.base, "/api/mfa/enable", e.token, map[string]string{})
	if code != 200 {
		e.t.Fatalf("mfa enable: %d %v", code, en)
	}
	key, err := otp.NewKeyFromURL(en["uri"].(string))
	if err != nil {
		e.t.Fatal(err)
	}
	now, _ := totp.GenerateCode(key.Secret(), time.Now())
	if code, v := postJSON(e.t, e.base, "/api/mfa/validate", e.token, map[string]string{"otp": now}); code != 200 {
		e.t.Fatalf("mfa validate: %d %v", code, v)
	}
	return key.Secret()
}

// nextCode is a TOTP code of the next 30-second step: the current one was
// spent by the enrollment, and warden accepts one step of skew.
func nextCode(t *testing.T, secret string) string {
	c, err := totp.GenerateCode(secret, time.Now().Add(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// signIn signs in on the UI's sign-in page, answering the MFA step with
// code when it is not empty, and waits for the navigation to show.
func (e *uiEnv) signIn(user, pw, code string) {
	e.t.Helper()
	e.b.Run("open the UI", 20*time.Second,
		chromedp.Navigate(e.base+"/"),
		chromedp.WaitVisible(`input[name=username]`),
		chromedp.SendKeys(`input[name=username]`, user),
		chromedp.SendKeys(`input[name=password]`, pw),
		chromedp.Click(`form button[type=submit]`))
	if code != "" {
		e.b.Run("MFA step", 10*time.Second,
			chromedp.WaitVisible(`input[name=otp]`),
			chromedp.SendKeys(`input[name=otp]`, code),
			chromedp.Click(`form button[type=submit]`))
	}
	e.b.Run("signed in", 10*time.Second, chromedp.WaitVisible(`nav.sidenav`))
}

// page opens #/route and waits for its heading.
func (e *uiEnv) page(route, heading string) {
	e.t.Helper()
	e.b.Run("open #/"+route, 10*time.Second,
		chromedp.Navigate(e.base+"/#/"+route),
		chromedp.WaitVisible(fmt.Sprintf(`//main//h1[normalize-space()=%q]`, heading), chromedp.BySearch))
}

// clickButton clicks the visible button whose text is label (inside
// scope, an XPath prefix such as //dialog).
func clickButton(scope, label string) chromedp.Action {
	return chromedp.Click(fmt.Sprintf(`%s//button[normalize-space()=%q]`, scope, label), chromedp.BySearch, chromedp.NodeVisible)
}

// TestUIServedWithStrictCSP: the UI's page and assets come from the
// binary with a policy that allows no inline script or style and no other
// origin, and the API keeps its own stricter one.
func TestUIServedWithStrictCSP(t *testing.T) {
	t.Parallel()
	bin := buildWarden(t)
	p := startWarden(t, bin, "WARDEN_DATA_DIR="+filepath.Join(t.TempDir(), "data"), "WARDEN_ADMIN_PASSWORD="+validPassword(t))
	p.waitFor("warden ready")
	base := "http://" + strings.Replace(listenAddr(t, p.out.String(), "http"), "[::]", "127.0.0.1", 1)
	for _, c := range []struct {
		path, ctype string
		status      int
	}{
		{"/", "text/html", 200},
		{"/assets/app.css", "text/css", 200},
		{"/assets/js/app.js", "text/javascript", 200},
		{"/assets/", "", 404},
		{"/assets/js", "", 404},
		{"/index.html", "application/json", 404}, // not the UI's: the API's JSON 404
		{"/assets/../go.mod", "", 404},
	} {
		res, err := http.Get(base + c.path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != c.status || !strings.HasPrefix(res.Header.Get("Content-Type"), c.ctype) {
			t.Errorf("GET %s: %d %q, want %d %q", c.path, res.StatusCode, res.Header.Get("Content-Type"), c.status, c.ctype)
		}
		if c.status == 200 {
			csp := res.Header.Get("Content-Security-Policy")
			if !strings.Contains(csp, "script-src 'self';") || strings.Contains(csp, "unsafe") || !strings.Contains(csp, "frame-ancestors 'none'") {
				t.Errorf("GET %s: CSP %q", c.path, csp)
			}
		}
	}
	res, err := http.Get(base + "/api/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if csp := res.Header.Get("Content-Security-Policy"); csp != "default-src 'none'; frame-ancestors 'none'" {
		t.Errorf("API CSP %q", csp)
	}
	// --web-ui=false: no UI, the API only.
	p2 := startWardenArgs(t, bin, []string{"--web-ui=false"}, "WARDEN_DATA_DIR="+filepath.Join(t.TempDir(), "data"), "WARDEN_ADMIN_PASSWORD="+validPassword(t))
	p2.waitFor("warden ready")
	res, err = http.Get("http://" + strings.Replace(listenAddr(t, p2.out.String(), "http"), "[::]", "127.0.0.1", 1) + "/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 404 {
		t.Errorf("GET / with --web-ui=false: %d, want 404", res.StatusCode)
	}
}

// TestUIOnboardsADevice is the README's device onboarding done in the
// browser: sign in with MFA, open the registry, a device registers over
// HTTP, the admin confirms it in the UI, the device connects and shows
// under connected clients, and the admin's kick disconnects it.
func TestUIOnboardsADevice(t *testing.T) {
	t.Parallel()
	e := startUI(t)
	secret := e.enrollAdminMFA()
	var role struct{ ID string }
	apiCall(t, e.addr, "POST", "/api/roles", e.token, map[string]any{"name": "line1-devices", "isShared": true,
		"permissions": []map[string]string{{"resource": "plant1/line1/#", "operation": "readWrite", "context": "mqtt"}}}, &role, 201)

	e.b.Run("sign-in page", 20*time.Second, chromedp.Navigate(e.base+"/"), chromedp.WaitVisible(`input[name=username]`, chromedp.ByQuery))
	e.b.Screenshot(filepath.Join("..", "..", "docs", "ui", "login.png"))
	e.signIn("admin", e.pw, nextCode(t, secret))
	e.b.Run("overview filled", 10*time.Second, chromedp.WaitVisible(`//h2[normalize-space()="Node health"]`, chromedp.BySearch))
	e.b.Screenshot(filepath.Join("..", "..", "docs", "ui", "overview.png"))

	// Open the registry for 5 minutes: the countdown runs.
	e.page("registry", "Client registry")
	e.b.Run("open the registry", 10*time.Second,
		chromedp.SetValue(`select[name=duration]`, "300000"),
		clickButton("//main", "Open registry"),
		chromedp.WaitVisible(`.countdown`))
	if left := e.b.Text(`.countdown`); !strings.HasPrefix(left, "4 min") && left != "5 min 00 s" {
		t.Errorf("countdown shows %q, want about 4 min 59 s", left)
	}
	var st map[string]any
	apiCall(t, e.addr, "GET", "/api/client-registry/status", "", nil, &st, 200)
	if st["status"] != "open" {
		t.Fatalf("registry status after the click: %v", st)
	}

	// A device registers over HTTP; its request appears without a reload.
	devPW := validPassword(t)
	reg := map[string]any{"username": "cam-0001", "password": devPW, "context": "serial 0001", "roles": []string{"line1-devices"}}
	apiCall(t, e.addr, "POST", "/api/client-registry/register", "", reg, nil, 202)
	apiCall(t, e.addr, "POST", "/api/client-registry/register", "", map[string]any{"username": "rogue-7", "password": validPassword(t), "context": "?"}, nil, 202)
	e.b.Run("requests appear", 10*time.Second, chromedp.WaitVisible(`//td[normalize-space()="serial 0001"]`, chromedp.BySearch))
	e.b.Screenshot(filepath.Join("..", "..", "docs", "ui", "registry.png"))

	// Reject the rogue one, confirm the camera with its role and a prefix.
	e.b.Run("reject rogue-7", 10*time.Second,
		chromedp.Click(`button[aria-label="Reject rogue-7"]`, chromedp.ByQuery, chromedp.NodeVisible),
		clickButton("//dialog", "Reject"),
		chromedp.WaitNotPresent(`button[aria-label="Reject rogue-7"]`, chromedp.ByQuery))
	e.b.Run("confirm cam-0001", 10*time.Second,
		chromedp.Click(`button[aria-label="Confirm cam-0001"]`, chromedp.ByQuery, chromedp.NodeVisible),
		chromedp.WaitVisible(`//dialog//label[normalize-space()="line1-devices"]`, chromedp.BySearch))
	var checked bool
	e.b.Run("asked-for role preselected", 5*time.Second, chromedp.Evaluate(
		`[...document.querySelectorAll('dialog input[type=checkbox]')].some(b => b.checked && b.nextSibling.textContent === 'line1-devices')`, &checked))
	if !checked {
		t.Error("the role the device asked for is not preselected")
	}
	e.b.Run("grant", 10*time.Second,
		chromedp.SendKeys(`dialog input[name=prefix]`, "plant1/"),
		clickButton("//dialog", "Confirm"),
		chromedp.WaitVisible(`//td[.//span[normalize-space()="Granted"]]`, chromedp.BySearch))
	var reqs []map[string]any
	apiCall(t, e.addr, "GET", "/api/client-registry", e.token, nil, &reqs, 200)
	if len(reqs) != 1 || reqs[0]["username"] != "cam-0001" || reqs[0]["granted"] != true {
		t.Fatalf("registry after reject and confirm: %v", reqs)
	}
	var users struct {
		Users []struct {
			Username, MqttPublishPrefix string
			Roles                       []struct{ Name string }
		}
	}
	apiCall(t, e.addr, "GET", "/api/listUsers?username[eq]=cam-0001", e.token, nil, &users, 200)
	if len(users.Users) != 1 || users.Users[0].MqttPublishPrefix != "plant1/" || !hasRole(users.Users[0].Roles, "line1-devices") {
		t.Fatalf("cam-0001 after the confirmation: %+v", users.Users)
	}

	// The device connects with what it registered, and shows under
	// connected clients with its user and credential.
	dev := mustConnect(t, e.mqtt, "cam-0001-main", "cam-0001", devPW)
	e.page("clients", "Connected clients")
	e.b.Run("the device is listed", 10*time.Second, chromedp.WaitVisible(`//td//code[normalize-space()="cam-0001-main"]`, chromedp.BySearch))
	row := e.b.Text(`//tr[.//code[normalize-space()="cam-0001-main"]]`)
	for _, want := range []string{"cam-0001", "password", "MQTT 5", "127.0.0.1"} {
		if !strings.Contains(row, want) {
			t.Errorf("connected-clients row %q lacks %q", row, want)
		}
	}
	e.b.Screenshot(filepath.Join("..", "..", "docs", "ui", "clients.png"))

	// Kick it: DISCONNECT 0x98 over MQTT, and the list empties.
	e.b.Run("disconnect the device", 10*time.Second,
		chromedp.Click(`button[aria-label="Disconnect cam-0001-main"]`, chromedp.ByQuery, chromedp.NodeVisible),
		clickButton("//dialog", "Disconnect"),
		chromedp.WaitNotPresent(`//td//code[normalize-space()="cam-0001-main"]`, chromedp.BySearch))
	wantKicked(t, dev)

	// Log out: the UI's token is revoked and the sign-in page is back.
	id := adminID(t, e)
	if n := uiTokens(t, e, id); n != 1 {
		t.Fatalf("admin holds %d tokens labelled 'warden web UI' while signed in, want 1", n)
	}
	e.b.Run("log out", 10*time.Second,
		clickButton("//header", "Log out"),
		chromedp.WaitVisible(`input[name=username]`, chromedp.ByQuery))
	// The page reloads once the revocation is answered; allow the store's
	// write a moment on a loaded machine before the list is read.
	for deadline := time.Now().Add(5 * time.Second); uiTokens(t, e, id) != 0; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("5 s after logging out the admin still holds %d UI tokens", uiTokens(t, e, id))
		}
	}
	if errs := e.b.Errors(); len(errs) > 0 {
		t.Errorf("page errors: %v", errs)
	}
}

// adminID is the admin user's ID.
func adminID(t *testing.T, e *uiEnv) string {
	var users struct{ Users []struct{ ID string } }
	apiCall(t, e.addr, "GET", "/api/listUsers?username[eq]=admin", e.token, nil, &users, 200)
	if len(users.Users) != 1 {
		t.Fatalf("admin not found: %+v", users)
	}
	return users.Users[0].ID
}

// uiTokens counts the user's tokens the web UI's sign-in made.
func uiTokens(t *testing.T, e *uiEnv, userID string) int {
	var toks []struct{ Label string }
	apiCall(t, e.addr, "GET", "/api/users/"+userID+"/tokens", e.token, nil, &toks, 200)
	n := 0
	for _, tk := range toks {
		if tk.Label == "warden web UI" {
			n++
		}
	}
	return n
}

func hasRole(roles []struct{ Name string }, name string) bool {
	for _, r := range roles {
		if r.Name == name {
			return true
		}
	}
	return false
}
