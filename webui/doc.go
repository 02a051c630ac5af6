// Package webui owns warden's admin web UI: the HTML, CSS and JavaScript
// embedded in the binary and the handler that serves them at "/" on the
// admin listener, with a Content-Security-Policy that lets the pages load
// nothing but these files and call nothing but warden's own /api.
//
// The UI is one more client of the HTTP API (DESIGN.md): it holds the
// caller's bearer token in memory only and calls /api like curl would;
// this package serves files and decides nothing. The assets are plain ES
// modules with no build step and no third-party code, so a clean clone
// builds with "go build" and what runs in the browser is what is
// committed under static/.
package webui
