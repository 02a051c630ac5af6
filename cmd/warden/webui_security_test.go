package main

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestUIOffersOnlyWhatTheCallerMay: a user who may only read the client
// registry is offered that page without its buttons, no page it may not
// read, and the token it signed in with stays out of every place another
// page or a later visitor could read it (URL, cookies, storage).
func TestUIOffersOnlyWhatTheCallerMay(t *testing.T) {
	t.Parallel()
	e := startUI(t)
	var role struct{ ID string }
	apiCall(t, e.addr, "POST", "/api/roles", e.token, map[string]any{"name": "registry-viewer", "isShared": true,
		"permissions": []map[string]string{{"resource": "/api/client-registry", "operation": "read", "context": "http"}}}, &role, 201)
	var minimum []struct{ ID, Name string }
	apiCall(t, e.addr, "GET", "/api/roles", e.token, nil, &minimum, 200)
	roles := []string{role.ID}
	for _, r := range minimum {
		if r.Name == "minimum-access" {
			roles = append(roles, r.ID)
		}
	}
	viewerPW := validPassword(t)
	apiCall(t, e.addr, "POST", "/api/users", e.token, map[string]any{"username": "viewer", "password": viewerPW, "roles": roles}, nil, 201)
	apiCall(t, e.addr, "POST", "/api/client-registry/open", e.token, map[string]any{"duration": 600000}, nil, 204)
	// The context is the device's free text: markup in it must stay text.
	apiCall(t, e.addr, "POST", "/api/client-registry/register", "", map[string]any{"username": "cam-0003", "password": validPassword(t),
		"context": `<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>`}, nil, 202)

	e.signIn("viewer", viewerPW, "")
	var nav []string
	e.b.Run("navigation", 5*time.Second, chromedp.Evaluate(`[...document.querySelectorAll('nav.sidenav a')].map(a => a.textContent)`, &nav))
	if strings.Join(nav, ",") != "Overview,Client registry,My account" {
		t.Errorf("viewer is offered %v, want Overview, Client registry, My account", nav)
	}
	e.page("registry", "Client registry")
	e.b.Run("the request is listed", 10*time.Second, chromedp.WaitVisible(`//td[normalize-space()="cam-0003"] | //td/strong[normalize-space()="cam-0003"]`, chromedp.BySearch))
	if n := e.b.Nodes(`main button`); n != 0 {
		t.Errorf("viewer is offered %d buttons on the registry page, want none", n)
	}
	shown := e.b.Text(`//tr[.//strong[normalize-space()="cam-0003"]]`)
	if !strings.Contains(shown, `<img src=x onerror="window.pwned=1">`) {
		t.Errorf("the device's context is not shown as text: %q", shown)
	}
	var pwned any
	e.b.Run("no injected script ran", 5*time.Second, chromedp.Evaluate(`window.pwned === undefined ? null : window.pwned`, &pwned))
	if pwned != nil {
		t.Errorf("markup from a device's registration ran in the admin's page: window.pwned = %v", pwned)
	}
	// The policy holds even for script a flaw might insert: an inline
	// script and a style attribute are refused by the browser.
	var ran []any
	e.b.Run("inline script refused", 5*time.Second, chromedp.Evaluate(`(() => {
		const s = document.createElement('script'); s.textContent = 'window.inline = 1'; document.body.append(s);
		const d = document.createElement('div'); d.setAttribute('style', 'width: 123px'); document.body.append(d);
		return [window.inline === undefined ? null : window.inline, d.getBoundingClientRect().width === 123];
	})()`, &ran))
	if len(ran) != 2 || ran[0] != nil || ran[1] != false {
		t.Errorf("inline script ran or style attribute applied: %v", ran)
	}
	if errs := e.b.Errors(); !strings.Contains(strings.Join(errs, " "), "Content Security Policy") {
		t.Errorf("the browser reported no CSP violation for the inline script: %v", errs)
	}
	// A page the viewer may not read falls back to one it may.
	e.b.Run("#/users", 10*time.Second, chromedp.Navigate(e.base+"/#/users"), chromedp.WaitVisible(`main h1`, chromedp.ByQuery))
	if h := e.b.Text(`main h1`); h == "Users" {
		t.Error("the Users page opened for a user without read on /api/users")
	}
	var leaks []string
	e.b.Run("where the token is not", 5*time.Second, chromedp.Evaluate(`[location.href, document.cookie, JSON.stringify(Object.entries(localStorage)), JSON.stringify(Object.entries(sessionStorage))]`, &leaks))
	for _, l := range leaks {
		if strings.Contains(l, "eyJ") { // every JWT starts so
			t.Errorf("a token is readable outside the page's memory: %q", l)
		}
	}
	if errs := e.b.Errors(); len(errs) > 0 {
		t.Errorf("page errors: %v", errs)
	}
}
