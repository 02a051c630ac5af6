package webui

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

//go:embed static
var static embed.FS

// CSP is the Content-Security-Policy of every UI answer: scripts, styles,
// fonts and fetches from warden only, no inline script or style (so an
// injected <script> or style attribute never runs), images from warden or
// data: URIs (the MFA enrollment QR code comes as one), no framing, no
// <base> or form posts elsewhere.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Handler serves the UI: index.html at "/" and the files under /assets/.
// Anything else is a 404. Mount it for "GET /{$}" and "GET /assets/".
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name, ok := assetName(r.URL.Path)
		if st, err := fs.Stat(sub, name); !ok || err != nil || !st.Mode().IsRegular() {
			http.NotFound(w, r)
			return
		}
		// Revalidated every time (ETag-less embed files answer with
		// Last-Modified of zero, so no-cache costs a full answer; the
		// whole UI is under 200 KiB): an upgraded binary is picked up at
		// once, never mixed with a cached older module.
		h.Set("Cache-Control", "no-cache")
		http.ServeFileFS(w, r, sub, name)
	})
}

// assetName maps a request path to a file of the embedded tree: "/" to
// index.html, "/assets/..." to itself; ok is false for anything else.
func assetName(p string) (string, bool) {
	p = path.Clean("/" + p)
	switch {
	case p == "/":
		return "index.html", true
	case strings.HasPrefix(p, "/assets/"):
		return strings.TrimPrefix(p, "/"), true
	}
	return "", false
}
