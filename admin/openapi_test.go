package admin

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"

	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/store/storetest"
)

// TestOpenAPIMatchesRoutes: every registered route is documented, every
// documented route is served (not the catch-all 404), and the document is
// what GET /api/openapi.json returns.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	st := storetest.OpenBolt(t)
	tokens, err := credential.NewTokens(t.Context(), st, "test")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(WithRegistryAndTrust(t, Options{Store: st, Tokens: tokens, Params: credential.Params{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}}))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openAPIDocument, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi version %q", doc.OpenAPI)
	}
	documented := map[string]bool{}
	for path, methods := range doc.Paths {
		for m := range methods {
			documented[strings.ToUpper(m)+" "+path] = true
		}
	}
	served := map[string]bool{}
	for _, r := range s.routes {
		served[r.method+" "+r.path] = true
	}
	var missing, extra []string
	for k := range served {
		if !documented[k] {
			missing = append(missing, k)
		}
	}
	for k := range documented {
		if !served[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 {
		t.Errorf("routes not in openapi.json: %v", missing)
	}
	if len(extra) > 0 {
		t.Errorf("documented but not served: %v", extra)
	}
	h := s.Handler()
	for k := range documented {
		method, path, _ := strings.Cut(k, " ")
		path = strings.NewReplacer("{id}", "x", "{pemId}", "y").Replace(path)
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(method, path, strings.NewReader("{}"))
		req.Header.Set("Content-Type", "application/json")
		h.ServeHTTP(rec, req)
		if strings.Contains(rec.Body.String(), "no such endpoint") || rec.Code == http.StatusMethodNotAllowed {
			t.Errorf("%s is documented but answers %d %s", k, rec.Code, rec.Body)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/openapi.json", nil))
	body, _ := io.ReadAll(rec.Body)
	if rec.Code != 200 || string(body) != string(openAPIDocument) {
		t.Fatalf("GET /api/openapi.json: %d", rec.Code)
	}
}
