package admin_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/warden-mqtt/warden/store/storetest"
)

// TestWrongMethodIs405WithAllow (issue 15, item 8): a method a served
// path does not take answers 405 with Allow listing the methods it takes
// (HEAD where GET is, as Go's ServeMux lists them) and a JSON error
// naming them, instead of the catch-all's 404. Like the mux's own 405 it
// comes before authentication, so it is the same with or without a
// token; a path no route serves stays 404, and so does OPTIONS. HEAD on a
// GET route is served as before.
func TestWrongMethodIs405WithAllow(t *testing.T) {
	t.Parallel()
	a := newAPI(t, storetest.OpenBolt(t))
	for _, tc := range []struct {
		method, path string
		allow        string // "" for 404
		named        string // the path the error names
	}{
		{"PATCH", "/api/users/6f0c1d", "DELETE, GET, HEAD, PUT", "/api/users/{id}"},
		{"GET", "/api/login", "POST", "/api/login"},
		{"HEAD", "/api/login", "POST", ""},
		{"PUT", "/api/roles", "GET, HEAD, POST", "/api/roles"},
		{"GET", "/api/client-registry/open", "POST", "/api/client-registry/open"},
		{"POST", "/api/users/change-password", "DELETE, GET, HEAD, PUT", "/api/users/change-password"},
		{"PATCH", "/api/oauth2/eyJhbGciOiJFZERTQSJ9.x.y", "DELETE", "/api/oauth2/{token}"},
		{"GET", "/api/no-such-thing", "", ""},
		{"PATCH", "/api/no-such-thing", "", ""},
		{"OPTIONS", "/api/users", "", ""},
	} {
		for _, token := range []string{a.admin, ""} {
			resp, body := rawRequest(t, tc.method, a.url+tc.path, token, "", nil)
			want := http.StatusMethodNotAllowed
			if tc.allow == "" {
				want = http.StatusNotFound
			}
			if resp.StatusCode != want || resp.Header.Get("Allow") != tc.allow {
				t.Errorf("%s %s (token %v): %d, Allow %q; want %d, Allow %q: %s",
					tc.method, tc.path, token != "", resp.StatusCode, resp.Header.Get("Allow"), want, tc.allow, body)
				continue
			}
			if tc.method == "HEAD" {
				continue // no body
			}
			var e struct {
				Error string `json:"error"`
				Code  int    `json:"code"`
			}
			if err := json.Unmarshal(body, &e); err != nil || e.Code != want {
				t.Errorf("%s %s: body %s, want a JSON error with code %d", tc.method, tc.path, body, want)
				continue
			}
			wantMsg := "no such endpoint"
			if tc.allow != "" {
				wantMsg = "method " + tc.method + " not allowed on " + tc.named + "; allowed: " + tc.allow
			}
			if e.Error != wantMsg {
				t.Errorf("%s %s: error %q, want %q", tc.method, tc.path, e.Error, wantMsg)
			}
		}
	}
	// Served methods are untouched: HEAD on a GET route needs the token
	// and its read permission as GET does.
	for token, want := range map[string]int{a.admin: http.StatusOK, "": http.StatusUnauthorized} {
		if resp, body := rawRequest(t, "HEAD", a.url+"/api/roles", token, "", nil); resp.StatusCode != want {
			t.Errorf("HEAD /api/roles (token %v): %d, want %d: %s", token != "", resp.StatusCode, want, body)
		}
	}
}
