package webui

import (
	"io/fs"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// TestHandlerServesOnlyTheUI: the page and its assets, with the policy;
// directories, other paths and other methods are refused.
func TestHandlerServesOnlyTheUI(t *testing.T) {
	h := Handler()
	for _, c := range []struct {
		method, path string
		status       int
		ctype        string
	}{
		{"GET", "/", 200, "text/html"},
		{"HEAD", "/", 200, "text/html"},
		{"GET", "/assets/js/app.js", 200, "text/javascript"},
		{"GET", "/assets/app.css", 200, "text/css"},
		{"GET", "/assets/favicon.svg", 200, "image/svg+xml"},
		{"GET", "/assets/", 404, ""},
		{"GET", "/assets/js", 404, ""},
		{"GET", "/assets/js/", 404, ""},
		{"GET", "/assets/nope.js", 404, ""},
		{"GET", "/index.html", 404, ""},
		{"GET", "/static/index.html", 404, ""},
		{"GET", "/assets/../webui.go", 404, ""},
		{"POST", "/", 405, ""},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(c.method, c.path, nil))
		if rec.Code != c.status || !strings.HasPrefix(rec.Header().Get("Content-Type"), c.ctype) {
			t.Errorf("%s %s: %d %q, want %d %q", c.method, c.path, rec.Code, rec.Header().Get("Content-Type"), c.status, c.ctype)
		}
		if got := rec.Header().Get("Content-Security-Policy"); got != CSP {
			t.Errorf("%s %s: CSP %q", c.method, c.path, got)
		}
		if c.status == 200 && rec.Header().Get("Cache-Control") != "no-cache" {
			t.Errorf("%s %s: Cache-Control %q, want no-cache", c.method, c.path, rec.Header().Get("Cache-Control"))
		}
	}
	if strings.Contains(CSP, "unsafe") || !strings.Contains(CSP, "script-src 'self';") || !strings.Contains(CSP, "style-src 'self';") {
		t.Errorf("CSP %q allows more than warden's own files", CSP)
	}
}

// TestAssetsCarryNothingThePolicyWouldRefuse: no inline script or style,
// no event-handler attribute, nothing from another origin, and no code
// path that turns data into markup (innerHTML and its kin) or code.
func TestAssetsCarryNothingThePolicyWouldRefuse(t *testing.T) {
	bad := map[string]*regexp.Regexp{
		"inline script":         regexp.MustCompile(`<script(?:\s[^>]*)?>[^<\s]`),
		"style element":         regexp.MustCompile(`<style`),
		"style attribute":       regexp.MustCompile(`\sstyle=|'style'|"style"`),
		"event attribute":       regexp.MustCompile(`\son[a-z]+=`),
		"another origin":        regexp.MustCompile(`(?:src|href)=["']?(?:https?:)?//`),
		"markup from data":      regexp.MustCompile(`\.(?:inner|outer)HTML\s*=|insertAdjacentHTML\(|document\.write\(`),
		"code from data":        regexp.MustCompile(`\beval\(|new Function\(`),
		"a token in storage":    regexp.MustCompile(`(?:local|session)Storage\.setItem\([^)]*[Tt]oken\b[^D]`),
		"a remote fetch or URL": regexp.MustCompile(`fetch\(\s*["'` + "`" + `]https?:`),
	}
	n := 0
	err := fs.WalkDir(static, "static", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(static, path)
		if err != nil {
			return err
		}
		n++
		text := string(b)
		for what, re := range bad {
			if loc := re.FindStringIndex(text); loc != nil {
				t.Errorf("%s: %s: %q", path, what, text[max(0, loc[0]-20):min(len(text), loc[1]+20)])
			}
		}
		for _, tag := range regexp.MustCompile(`<script[^>]*>`).FindAllString(text, -1) {
			if !strings.Contains(tag, "src=") {
				t.Errorf("%s: script element without src: %s", path, tag)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 10 {
		t.Fatalf("walked %d files; the embedded tree is missing", n)
	}
}
