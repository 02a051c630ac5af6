package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// TestUIKeyboardOnly: sign in and move between pages with the keyboard
// alone (Tab, Enter), as someone who cannot use a pointer does.
func TestUIKeyboardOnly(t *testing.T) {
	t.Parallel()
	e := startUI(t)
	e.b.Run("sign in with the keyboard", 20*time.Second,
		chromedp.Navigate(e.base+"/"),
		chromedp.WaitVisible(`input[name=username]`, chromedp.ByQuery),
		// The username field has the focus when the page opens.
		chromedp.KeyEvent("admin"),
		chromedp.KeyEvent(kb.Tab),
		chromedp.KeyEvent(e.pw),
		chromedp.KeyEvent(kb.Enter),
		chromedp.WaitVisible(`nav.sidenav`, chromedp.ByQuery))
	// Tab until the navigation's "Client registry" link has the focus.
	var focused string
	for i := 0; i < 40 && focused != "Client registry"; i++ {
		e.b.Run("tab", 5*time.Second, chromedp.KeyEvent(kb.Tab), chromedp.Evaluate(`document.activeElement.textContent.trim()`, &focused))
	}
	if focused != "Client registry" {
		t.Fatalf("40 presses of Tab never reached the Client registry link (last: %q)", focused)
	}
	e.b.Run("follow the link", 10*time.Second, chromedp.KeyEvent(kb.Enter),
		chromedp.WaitVisible(`//main//h1[normalize-space()="Client registry"]`, chromedp.BySearch))
	// Open the registry from the keyboard: Tab to the button, Enter.
	for i := 0; i < 20 && focused != "Open registry"; i++ {
		e.b.Run("tab", 5*time.Second, chromedp.KeyEvent(kb.Tab), chromedp.Evaluate(`document.activeElement.textContent.trim()`, &focused))
	}
	e.b.Run("open it", 10*time.Second, chromedp.KeyEvent(kb.Enter), chromedp.WaitVisible(`.countdown`, chromedp.ByQuery))
	// A dialog takes the focus and gives it back: Lock now, Escape.
	for i := 0; i < 20 && focused != "Lock now"; i++ {
		e.b.Run("tab", 5*time.Second, chromedp.KeyEvent(kb.Tab), chromedp.Evaluate(`document.activeElement.textContent.trim()`, &focused))
	}
	var inDialog bool
	e.b.Run("dialog", 10*time.Second, chromedp.KeyEvent(kb.Enter), chromedp.WaitVisible(`dialog`, chromedp.ByQuery),
		chromedp.Evaluate(`!!document.activeElement.closest('dialog')`, &inDialog),
		chromedp.KeyEvent(kb.Escape), chromedp.WaitNotPresent(`dialog`, chromedp.ByQuery),
		chromedp.Evaluate(`document.activeElement.textContent.trim()`, &focused))
	if !inDialog || focused != "Lock now" {
		t.Errorf("dialog: focus inside %v, focus after Escape on %q; want inside, then back on Lock now", inDialog, focused)
	}
	if errs := e.b.Errors(); len(errs) > 0 {
		t.Errorf("page errors: %v", errs)
	}
}

// TestUIAccessibleOnEveryPage audits every page the admin is offered, at
// 1280×800 and on a tablet (820×1180): labelled controls, named buttons
// and links, unique ids, one h1, AA text contrast, nothing that makes the
// page scroll sideways.
func TestUIAccessibleOnEveryPage(t *testing.T) {
	t.Parallel()
	e := startUI(t)
	// Something on the pages that list things.
	apiCall(t, e.addr, "POST", "/api/roles", e.token, map[string]any{"name": "line1-devices", "isShared": true,
		"permissions": []map[string]string{{"resource": "plant1/line1/#", "operation": "readWrite", "context": "mqtt"}}}, nil, 201)
	apiCall(t, e.addr, "POST", "/api/client-registry/open", e.token, map[string]any{"duration": 600000}, nil, 204)
	apiCall(t, e.addr, "POST", "/api/client-registry/register", "", map[string]any{"username": "cam-0002", "password": validPassword(t), "context": "serial 0002"}, nil, 202)
	mustConnect(t, e.mqtt, "admin-console", "admin", e.pw)

	e.b.Run("sign-in page", 20*time.Second, chromedp.Navigate(e.base+"/"), chromedp.WaitVisible(`input[name=username]`, chromedp.ByQuery))
	if p := e.b.Audit(); len(p) > 0 {
		t.Errorf("sign-in page:\n  %s", strings.Join(p, "\n  "))
	}
	e.signIn("admin", e.pw, "")
	var routes []string
	e.b.Run("navigation", 5*time.Second, chromedp.Evaluate(`[...document.querySelectorAll('nav.sidenav a')].map(a => a.getAttribute('href'))`, &routes))
	if len(routes) < 9 {
		t.Fatalf("the admin is offered %d pages: %v", len(routes), routes)
	}
	for _, size := range [][2]int64{{1280, 800}, {820, 1180}} {
		e.b.Viewport(size[0], size[1])
		for _, r := range routes {
			e.b.Run("open "+r, 10*time.Second, chromedp.Navigate(e.base+"/"+r),
				chromedp.WaitVisible(`main h1`, chromedp.ByQuery),
				chromedp.Sleep(700*time.Millisecond)) // the page's first API answers
			if p := e.b.Audit(); len(p) > 0 {
				t.Errorf("%s at %dx%d:\n  %s", r, size[0], size[1], strings.Join(p, "\n  "))
			}
		}
	}
	if errs := e.b.Errors(); len(errs) > 0 {
		t.Errorf("page errors: %v", errs)
	}
	_ = fmt.Sprint
}
