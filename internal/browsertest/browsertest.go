// Package browsertest starts a real headless chromium for the web UI's
// tests, driven over the DevTools protocol by chromedp. A test that needs
// the browser fails when it is missing (make deps installs Debian's
// chromium); it never skips.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Width and Height are the window of every test browser: the 1280×800
// screen the UI must be usable on.
const (
	Width  = 1280
	Height = 800
)

// Selectors: CSS selectors go with chromedp.ByQuery. chromedp's default,
// BySearch (DOM.performSearch), also matches plain text, and a CSS
// attribute selector given to it may find no node to click; XPath
// expressions work with BySearch.

// Path returns the chromium executable: $CHROMIUM if set, else chromium or
// chromium-browser on PATH; it fails the test when there is none.
func Path(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium not found: the web UI tests need a headless browser; run make deps (Debian package chromium) or set CHROMIUM")
	return ""
}

// Browser is one headless chromium with a tab; Ctx drives the tab.
type Browser struct {
	Ctx context.Context
	t   testing.TB
	// Errors collects what the page logged as errors and the exceptions it
	// threw (a CSP violation is one), so a test can require none.
	errors chan string
}

// New starts chromium (stopped at the end of the test) and opens a tab.
func New(t testing.TB) *Browser {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a browser")
	}
	// Not t.TempDir: chromium's helpers may still write to the profile
	// for a moment after the browser is stopped, and TempDir's removal
	// would fail the test then.
	profile, err := os.MkdirTemp("", "warden-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(Path(t)),
		chromedp.WindowSize(Width, Height),
		chromedp.UserDataDir(profile),
		chromedp.Flag("no-sandbox", os.Geteuid() == 0), // chromium refuses to run as root with its sandbox
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("lang", "en-US"),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	// chromedp's protocol types lag behind Debian's chromium; events it
	// cannot decode (new enum values) or does not know are logged by
	// default, and are none the test looks at.
	ctx, cancelTab := chromedp.NewContext(actx, chromedp.WithErrorf(func(format string, args ...any) {
		if !strings.HasPrefix(format, "could not unmarshal event") && !strings.HasPrefix(format, "unhandled node event") {
			t.Logf("chromedp: "+format, args...)
		}
	}))
	b := &Browser{Ctx: ctx, t: t, errors: make(chan string, 64)}
	chromedp.ListenTarget(ctx, func(ev any) {
		switch e := ev.(type) {
		case *runtime.EventExceptionThrown:
			b.report("exception: " + e.ExceptionDetails.Error())
		case *cdplog.EventEntryAdded:
			// CSP violations arrive here ("Refused to execute ...");
			// an API's 4xx answer does too, as a network entry, and is
			// what the page shows the user, not a fault.
			if e.Entry.Level == cdplog.LevelError && e.Entry.Source != cdplog.SourceNetwork {
				b.report("log: " + e.Entry.Text)
			}
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.APITypeError {
				msg := "console.error:"
				for _, a := range e.Args {
					msg += " " + string(a.Value) + a.Description
				}
				b.report(msg)
			}
		}
	})
	// The first Run starts the browser and ties it to the context it is
	// given: a context with a deadline would stop the browser with it.
	if err := chromedp.Run(ctx, cdplog.Enable(), chromedp.EmulateViewport(Width, Height)); err != nil {
		cancelTab()
		cancelAlloc()
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
		for range 20 {
			if os.RemoveAll(profile) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	return b
}

func (b *Browser) report(msg string) {
	select {
	case b.errors <- msg:
	default:
	}
}

// Errors returns what the page reported as errors so far.
func (b *Browser) Errors() []string {
	var out []string
	for {
		select {
		case m := <-b.errors:
			out = append(out, m)
		default:
			return out
		}
	}
}

// Run runs actions with a deadline of d, failing the test with what
// step names on error.
func (b *Browser) Run(step string, d time.Duration, actions ...chromedp.Action) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, d)
	defer cancel()
	if err := chromedp.Run(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v (page errors: %v; the page then: %s)", step, err, b.Errors(), b.failShot())
	}
}

// ScreenshotsEnv names the environment variable that makes Screenshot
// write its files: WARDEN_UI_SCREENSHOTS=1 go test -run TestUI ./cmd/warden
// refreshes docs/ui. Without it the window is still captured (a page that
// cannot be drawn fails the test) but nothing is written, so a test run
// never changes the committed pictures.
const ScreenshotsEnv = "WARDEN_UI_SCREENSHOTS"

// Screenshot captures the window (Width×Height) as a PNG and, when
// ScreenshotsEnv is 1, saves it at path (directories made). Not
// chromedp's FullScreenshot: it resizes the emulated viewport to the page
// and leaves later clicks aimed at the old coordinates.
func (b *Browser) Screenshot(path string) {
	b.t.Helper()
	var png []byte
	b.Run("screenshot "+path, 20*time.Second, chromedp.CaptureScreenshot(&png))
	if os.Getenv(ScreenshotsEnv) != "1" {
		return
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// Text returns the text content of the first node matching sel, waiting
// for it to be visible.
func (b *Browser) Text(sel string) string {
	b.t.Helper()
	var s string
	b.Run("text of "+sel, 10*time.Second, chromedp.Text(sel, &s, chromedp.NodeVisible))
	return s
}

// Nodes reports how many nodes match sel now (no waiting).
func (b *Browser) Nodes(sel string) int {
	b.t.Helper()
	var nodes []*cdp.Node
	b.Run("count "+sel, 10*time.Second, chromedp.Nodes(sel, &nodes, chromedp.AtLeast(0)))
	return len(nodes)
}

// failShot saves what the page shows when a step failed, for the
// failure message; it never fails the test itself.
func (b *Browser) failShot() string {
	ctx, cancel := context.WithTimeout(b.Ctx, 5*time.Second)
	defer cancel()
	var png []byte
	if err := chromedp.Run(ctx, chromedp.CaptureScreenshot(&png)); err != nil {
		return "no screenshot: " + err.Error()
	}
	f, err := os.CreateTemp("", "warden-ui-failed-*.png")
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	if _, err := f.Write(png); err != nil {
		return err.Error()
	}
	return f.Name()
}

// auditJS checks the page as a screen-reader and keyboard user meets it:
// every form control has a label, every button and link a name, every
// image an alt, ids are unique, the page has one h1, and text contrasts
// with its background at WCAG AA (4.5:1, 3:1 for large text). It returns
// the problems found.
const auditJS = `(() => {
  const problems = [];
  const name = (el) => (el.getAttribute('aria-label') || el.textContent || el.getAttribute('title') || '').trim();
  const visible = (el) => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length) && getComputedStyle(el).visibility !== 'hidden';
  const desc = (el) => el.outerHTML.slice(0, 120);
  for (const el of document.querySelectorAll('input, select, textarea')) {
    if (el.type === 'hidden' || !visible(el)) continue;
    if (!(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby')) problems.push('control without a label: ' + desc(el));
  }
  for (const el of document.querySelectorAll('button, a[href]')) {
    if (visible(el) && !name(el) && !(el.querySelector('img[alt]:not([alt=""])'))) problems.push('button or link without a name: ' + desc(el));
  }
  for (const el of document.querySelectorAll('img')) {
    if (!el.hasAttribute('alt')) problems.push('image without alt: ' + desc(el));
  }
  const ids = {};
  for (const el of document.querySelectorAll('[id]')) {
    if (ids[el.id]) problems.push('duplicate id: ' + el.id);
    ids[el.id] = true;
  }
  const h1 = [...document.querySelectorAll('h1')].filter(visible);
  if (h1.length !== 1) problems.push('page has ' + h1.length + ' visible h1');
  const rgb = (s) => { const m = s.match(/[\d.]+/g); return m ? m.map(Number) : [0, 0, 0, 0]; };
  const lum = ([r, g, b]) => { const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; }; return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const bg = (el) => { for (let e = el; e; e = e.parentElement) { const c = rgb(getComputedStyle(e).backgroundColor); if (c.length < 4 || c[3] > 0) return c; } return [255, 255, 255]; };
  const seen = new Set();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!n.textContent.trim() || !el || seen.has(el) || !visible(el)) continue;
    seen.add(el);
    const cs = getComputedStyle(el);
    if (el.closest('button:disabled, .sr-only')) continue;
    const fg = rgb(cs.color), back = bg(el);
    const l1 = lum(fg), l2 = lum(back);
    const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
    const size = parseFloat(cs.fontSize), bold = Number(cs.fontWeight) >= 700;
    const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    if (ratio < need) problems.push('contrast ' + ratio.toFixed(2) + ' < ' + need + ': "' + n.textContent.trim().slice(0, 40) + '" in ' + desc(el));
  }
  if (document.documentElement.scrollWidth > window.innerWidth + 1) problems.push('page scrolls sideways: ' + document.documentElement.scrollWidth + ' px wide in a ' + window.innerWidth + ' px window');
  return problems;
})()`

// Audit returns the accessibility problems of the page as it is now
// (auditJS); a test requires none.
func (b *Browser) Audit() []string {
	b.t.Helper()
	var problems []string
	b.Run("accessibility audit", 10*time.Second, chromedp.Evaluate(auditJS, &problems))
	return problems
}

// Viewport resizes the window, as a tablet (820×1180) or the default
// Width×Height.
func (b *Browser) Viewport(w, h int64) {
	b.t.Helper()
	b.Run("viewport", 5*time.Second, chromedp.EmulateViewport(w, h))
}
