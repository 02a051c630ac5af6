package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

// rawRequest sends body with the given Content-Type ("" sends none) and
// returns the response with its body read.
func rawRequest(t *testing.T, method, url, token, contentType string, body io.Reader) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, out
}

// TestAPIAnswersCarrySecurityHeaders: every answer of the API, the probes
// and /metrics, successes and errors alike (the catch-all 404 included),
// tells a browser not to sniff it and lets it load nothing.
func TestAPIAnswersCarrySecurityHeaders(t *testing.T) {
	t.Parallel()
	a := newAPI(t, storetest.OpenBolt(t))
	for _, tc := range []struct {
		method, path, token string
		want                int
	}{
		{"GET", "/api/roles", a.admin, http.StatusOK},
		{"GET", "/api/roles", "", http.StatusUnauthorized},
		{"GET", "/api/session", "not-a-token", http.StatusUnauthorized},
		{"GET", "/api/no-such-thing", a.admin, http.StatusNotFound},
		{"PATCH", "/api/login", "", http.StatusMethodNotAllowed},
		{"GET", "/api/openapi.json", "", http.StatusOK},
		{"GET", "/api/.well-known/jwks.json", "", http.StatusOK},
		{"GET", "/healthz", "", http.StatusOK},
		{"GET", "/readyz", "", http.StatusOK},
		{"GET", "/metrics", "", http.StatusOK},
	} {
		resp, body := rawRequest(t, tc.method, a.url+tc.path, tc.token, "", nil)
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s: status %d, want %d: %s", tc.method, tc.path, resp.StatusCode, tc.want, body)
		}
		if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s %s (%d): X-Content-Type-Options %q, want nosniff", tc.method, tc.path, resp.StatusCode, got)
		}
		if got := resp.Header.Get("Content-Security-Policy"); !strings.HasPrefix(got, "default-src 'none'") {
			t.Errorf("%s %s (%d): Content-Security-Policy %q, want default-src 'none'", tc.method, tc.path, resp.StatusCode, got)
		}
	}
}

// TestJSONBodyNeedsJSONContentType: a body that is not declared as JSON is
// refused with 415 and a JSON error before anything happens, so a web page
// cannot make a browser post a "simple" cross-origin request (form or
// text/plain, no preflight) that the API would act on. What curl -d sends
// (a form) is refused; JSON with charset=utf-8 is fine.
func TestJSONBodyNeedsJSONContentType(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, a *api) {
		login := `{"username":"admin","password":"` + adminPassword + `"}`
		for _, tc := range []struct {
			name, contentType string
			want              int
		}{
			{"form encoding (curl -d)", "application/x-www-form-urlencoded", http.StatusUnsupportedMediaType},
			{"text/plain (a browser's simple request)", "text/plain;charset=UTF-8", http.StatusUnsupportedMediaType},
			{"no content type", "", http.StatusUnsupportedMediaType},
			{"multipart", "multipart/form-data; boundary=x", http.StatusUnsupportedMediaType},
			{"JSON in another charset", "application/json; charset=iso-8859-1", http.StatusUnsupportedMediaType},
			{"a malformed content type", "application/json; ===", http.StatusUnsupportedMediaType},
			{"JSON", "application/json", http.StatusOK},
			{"JSON, charset utf-8", "Application/JSON; charset=UTF-8", http.StatusOK},
		} {
			resp, body := rawRequest(t, "POST", a.url+"/api/login", "", tc.contentType, strings.NewReader(login))
			if resp.StatusCode != tc.want {
				t.Errorf("login with %s: status %d, want %d: %s", tc.name, resp.StatusCode, tc.want, body)
				continue
			}
			if tc.want != http.StatusOK && errorCode(t, body) != tc.want {
				t.Errorf("login with %s: error body %s", tc.name, body)
			}
		}

		// A chunked body (no Content-Length) is checked as well.
		resp, body := rawRequest(t, "POST", a.url+"/api/users", a.admin, "text/plain", io.MultiReader(strings.NewReader(`{"username":"sneaky",`), strings.NewReader(`"password":"sneaky-pass-1"}`)))
		if resp.StatusCode != http.StatusUnsupportedMediaType {
			t.Errorf("chunked text/plain user creation: status %d, want 415: %s", resp.StatusCode, body)
		}
		if _, err := a.st.UserByUsername(context.Background(), "sneaky"); err == nil {
			t.Error("a user was created from a text/plain body")
		}
		// Also where the handler ignores the body, and on the public
		// registry endpoint devices call (the contract sends JSON).
		for _, path := range []string{"/api/maintenance/db/backup", "/api/client-registry/register"} {
			resp, body := rawRequest(t, "POST", a.url+path, a.admin, "application/x-www-form-urlencoded", strings.NewReader(`{"username":"dev-1","password":"dev-secret-1","context":"x"}`))
			if resp.StatusCode != http.StatusUnsupportedMediaType {
				t.Errorf("POST %s with a form body: status %d, want 415: %s", path, resp.StatusCode, body)
			}
		}
		// No body needs no content type.
		if resp, body := rawRequest(t, "POST", a.url+"/api/client-registry/open", a.admin, "", nil); resp.StatusCode != http.StatusNoContent {
			t.Errorf("POST /api/client-registry/open without a body: status %d: %s", resp.StatusCode, body)
		}
	})
}

// TestDuplicateJSONKeysRefused: an object naming a key twice, at any depth
// and in any letter case, is refused with 400 naming the key, and nothing
// is done with it. encoding/json alone would take the last value, so a
// filter that checked the first one would be bypassed.
func TestDuplicateJSONKeysRefused(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, a *api) {
		post := func(path, token, body string) (int, string) {
			t.Helper()
			resp, out := rawRequest(t, "POST", a.url+path, token, "application/json", strings.NewReader(body))
			return resp.StatusCode, string(out)
		}
		for _, tc := range []struct {
			name, path, body, key string
		}{
			{"a repeated password, the right one last", "/api/login",
				`{"username":"admin","password":"wrong-password-1","password":"` + adminPassword + `"}`, `"password"`},
			{"the same key in another case", "/api/login",
				`{"username":"nobody","Username":"admin","password":"` + adminPassword + `"}`, `"Username"`},
			{"a Kelvin sign folding to k", "/api/login",
				`{"username":"admin","password":"` + adminPassword + `","\u212aey":1,"key":2}`, `"key"`},
			{"a nested duplicate", "/api/users",
				`{"username":"dup-1","password":"dup-pass-123","initialPermissions":[{"resource":"a/#","operation":"read","context":"mqtt","operation":"readWrite"}]}`, `"operation"`},
			{"a duplicate in an unknown field", "/api/users",
				`{"username":"dup-2","password":"dup-pass-123","x":{"y":1,"y":2}}`, `"y"`},
		} {
			code, body := post(tc.path, a.admin, tc.body)
			if code != http.StatusBadRequest || errorCode(t, []byte(body)) != http.StatusBadRequest || !strings.Contains(errorText(t, body), "duplicate key "+tc.key) {
				t.Errorf("%s: %d %s, want 400 naming %s", tc.name, code, body, tc.key)
			}
		}
		for _, name := range []string{"dup-1", "dup-2"} {
			if _, err := a.st.UserByUsername(context.Background(), name); err == nil {
				t.Errorf("user %s was created from a body with a duplicate key", name)
			}
		}
		// The same keys in sibling objects are not duplicates.
		if code, body := post("/api/users", a.admin, `{"username":"twins","password":"twins-pass-12","initialPermissions":[{"resource":"a/#","operation":"read","context":"mqtt"},{"resource":"b/#","operation":"read","context":"mqtt"}]}`); code != http.StatusCreated {
			t.Errorf("sibling objects with the same keys: %d %s", code, body)
		}
		// Nesting is bounded.
		deep := `{"username":"deep","password":"deep-pass-123","x":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`
		if code, body := post("/api/users", a.admin, deep); code != http.StatusBadRequest || !strings.Contains(body, "nested deeper") {
			t.Errorf("40 nested arrays: %d %s, want 400 nested deeper", code, body)
		}
		// A key longer than 64 bytes is cut in the message.
		long := strings.Repeat("k", 5000)
		if code, body := post("/api/login", "", `{"`+long+`":1,"`+long+`":2}`); code != http.StatusBadRequest || len(body) > 400 {
			t.Errorf("a long duplicate key: %d, %d bytes of answer", code, len(body))
		}
	})
}

// errorText returns the error field of a JSON error body.
func errorText(t *testing.T, body string) string {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("not a JSON error body: %s", body)
	}
	return e.Error
}

// TestRestoreAndPEMKeepTheirContentTypes: the two routes that take no
// JSON still take what they took: a raw gzip archive and PEM text.
func TestRestoreAndPEMKeepTheirContentTypes(t *testing.T) {
	t.Parallel()
	a := newAPI(t, storetest.OpenBolt(t))
	var buf bytes.Buffer
	snap, err := a.st.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.WriteArchive(&buf, snap, store.ArchiveOptions{}); err != nil {
		t.Fatal(err)
	}
	if resp, body := rawRequest(t, "POST", a.url+"/api/maintenance/db/restore", a.admin, "application/gzip", &buf); resp.StatusCode != http.StatusAccepted {
		t.Errorf("raw archive upload: %d %s", resp.StatusCode, body)
	}
	// A PEM body under the JSON-string form must be declared JSON.
	if resp, body := rawRequest(t, "POST", a.url+"/api/certificates", a.admin, "text/plain", strings.NewReader(`"-----BEGIN CERTIFICATE-----"`)); resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("a JSON string sent as text/plain: %d %s, want 415", resp.StatusCode, body)
	}
}
