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
	// cannot decode (new enum values) are logged by default, and are none
	// the test looks at.
	ctx, cancelTab := chromedp.NewContext(actx, chromedp.WithErrorf(func(format string, args ...any) {
		if !strings.HasPrefix(format, "could not unmarshal event") {
			t.Logf("chromedp: "+format, args...)
		}
	}))
	b := &Browser{Ctx: ctx, t: t, errors: make(chan string, 64)}
	chromedp.ListenTarget(ctx, func(ev any) {
		switch e := ev.(type) {
		case *runtime.EventExceptionThrown:
			b.report("exception: " + e.ExceptionDetails.Error())
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
	if err := chromedp.Run(ctx, chromedp.EmulateViewport(Width, Height)); err != nil {
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
