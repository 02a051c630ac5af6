package admin_test

import (
	"net/http"
	"testing"
)

// TestLogoutWithOnlyTheAuthorizationHeader (item 20 of issue 14): a
// client that holds only its bearer token logs out with no body, or an
// empty one, and the token is refused afterwards; a token in the body
// still wins; with neither, 400.
func TestLogoutWithOnlyTheAuthorizationHeader(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, a *api) {
		sCreateUser(t, a, "operator", "operator-pass-1", "minimum-access")
		for name, body := range map[string]any{"no body": nil, "an empty body": "", "an empty object": "{}", "an empty token": `{"token":""}`} {
			tok := a.login("operator", "operator-pass-1")
			if code, b := a.do("POST", "/api/logout", tok, body); code != http.StatusOK {
				t.Fatalf("logout with the header and %s: %d %s, want 200", name, code, b)
			}
			if code := pwSession(a, tok); code != http.StatusUnauthorized {
				t.Fatalf("token after logout with the header and %s: %d, want 401", name, code)
			}
		}

		// The body's token wins over the header's.
		header, inBody := a.login("operator", "operator-pass-1"), a.login("operator", "operator-pass-1")
		a.mustAs(header, "POST", "/api/logout", map[string]any{"token": inBody}, http.StatusOK, nil)
		if pwSession(a, inBody) != http.StatusUnauthorized || pwSession(a, header) != http.StatusOK {
			t.Fatal("logout with a token in the body and another in the header: want the body's revoked, the header's kept")
		}

		// Neither: 400; a header that is no token of ours: 404.
		for name, body := range map[string]any{"no body": nil, "an empty object": "{}"} {
			if code, b := a.do("POST", "/api/logout", "", body); code != http.StatusBadRequest || errorCode(t, b) != http.StatusBadRequest {
				t.Fatalf("logout with %s and no header: %d %s, want 400", name, code, b)
			}
		}
		if code, b := a.do("POST", "/api/logout", "not-a-token", nil); code != http.StatusNotFound || errorCode(t, b) != http.StatusNotFound {
			t.Fatalf("logout with a header that is no token: %d %s, want 404", code, b)
		}
		if code, b := a.do("POST", "/api/logout", header, `{"token":`); code != http.StatusBadRequest {
			t.Fatalf("logout with malformed JSON: %d %s, want 400", code, b)
		}
		if pwSession(a, header) != http.StatusOK {
			t.Fatal("a refused logout revoked the header's token")
		}
	})
}
