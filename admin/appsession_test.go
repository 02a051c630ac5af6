package admin_test

import (
	"net/http"
	"strings"
	"testing"
)

// Item 9 of issue 14: an application token exchanged at POST
// /api/v1/authenticate yields an application-session token, which cannot
// create application tokens and is revoked with its parent. The MQTT side
// is in cmd/warden/security_tokens_test.go.

// asApp creates an application token with the login token and returns its
// id and the token.
func asApp(a *api, login string) (id, token string) {
	a.t.Helper()
	var created struct {
		ID    string `json:"id"`
		Token string `json:"application_token"`
	}
	a.mustAs(login, "POST", "/api/v1/application_token", map[string]any{"description": "exporter"}, http.StatusCreated, &created)
	return created.ID, created.Token
}

// asExchange exchanges an application token and returns the auth_token.
func asExchange(a *api, app string) string {
	a.t.Helper()
	var out struct {
		Token string `json:"auth_token"`
	}
	a.mustAs("", "POST", "/api/v1/authenticate", map[string]any{"application_token": app}, http.StatusOK, &out)
	return out.Token
}

// TestApplicationSessionCannotCreateApplicationTokens: the token a leaked
// application token is exchanged for cannot mint a fresh application
// token that would outlive the leaked one's revocation.
func TestApplicationSessionCannotCreateApplicationTokens(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, a *api) {
		sCreateUser(t, a, "operator", "operator-pass-1", "minimum-access")
		_, app := asApp(a, a.login("operator", "operator-pass-1"))
		sess := asExchange(a, app)

		code, b := a.do("POST", "/api/v1/application_token", sess, map[string]any{"description": "persistence"})
		if code != http.StatusForbidden || errorCode(t, b) != http.StatusForbidden || !strings.Contains(string(b), "/api/login") {
			t.Fatalf("application token created with an exchanged token: %d %s, want 403 pointing to /api/login", code, b)
		}
		// It is accepted wherever a login token is otherwise: the API, and
		// validateToken says what it is.
		var session struct {
			Username string `json:"username"`
		}
		a.mustAs(sess, "GET", "/api/session", nil, http.StatusOK, &session)
		if session.Username != "operator" {
			t.Fatalf("session of the exchanged token: %+v", session)
		}
		if got := kValidate(t, a, a.admin, sess); got["valid"] != true || got["kind"] != "application-session" {
			t.Fatalf("validateToken: %v, want a valid application-session token", got)
		}
		// It cannot be exchanged again.
		if code, b := a.do("POST", "/api/v1/authenticate", "", map[string]any{"application_token": sess}); code != http.StatusUnauthorized {
			t.Fatalf("exchanging an exchanged token: %d %s, want 401", code, b)
		}
		if toks, err := a.st.UserTokens(t.Context(), asUserID(t, a, "operator")); err != nil || len(toks) != 3 {
			t.Fatalf("the operator's token records: %d, %v; want 3 (login, application, session)", len(toks), err)
		}
	})
}

func asUserID(t *testing.T, a *api, name string) string {
	t.Helper()
	u, err := a.st.UserByUsername(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	return u.ID
}

// TestApplicationSessionRevokedWithItsParent: however the application
// token is revoked (by its owner, by logout, by value, by an admin), the
// tokens exchanged for it stop working at once, and not those of another
// application token.
func TestApplicationSessionRevokedWithItsParent(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, a *api) {
		u := sCreateUser(t, a, "operator", "operator-pass-1", "minimum-access")
		login := a.login("operator", "operator-pass-1")
		for name, revoke := range map[string]func(id, app string){
			"DELETE /api/v1/application_token/{id}": func(id, _ string) {
				a.mustAs(login, "DELETE", "/api/v1/application_token/"+id, nil, http.StatusNoContent, nil)
			},
			"POST /api/logout": func(_, app string) {
				a.mustAs("", "POST", "/api/logout", map[string]any{"token": app}, http.StatusOK, nil)
			},
			"DELETE /api/oauth2/{token}": func(_, app string) {
				a.mustAs(login, "DELETE", "/api/oauth2/"+app, nil, http.StatusNoContent, nil)
			},
			"DELETE /api/users/{id}/tokens?tokenId=": func(id, _ string) {
				a.must("DELETE", "/api/users/"+u.ID+"/tokens?tokenId="+id, nil, http.StatusOK, nil)
			},
		} {
			id, app := asApp(a, login)
			s1, s2 := asExchange(a, app), asExchange(a, app)
			_, otherApp := asApp(a, login)
			other := asExchange(a, otherApp)
			for _, tok := range []string{s1, s2, other} {
				if code := pwSession(a, tok); code != http.StatusOK {
					t.Fatalf("%s: exchanged token before the revocation: %d", name, code)
				}
			}
			revoke(id, app)
			for _, tok := range []string{s1, s2} {
				if code := pwSession(a, tok); code != http.StatusUnauthorized {
					t.Fatalf("%s: token exchanged for the revoked application token: %d, want 401", name, code)
				}
				if got := kValidate(t, a, a.admin, tok); got["reason"] != "revoked" {
					t.Fatalf("%s: validateToken: %v, want revoked", name, got)
				}
			}
			if code := pwSession(a, other); code != http.StatusOK {
				t.Fatalf("%s: another application token's session: %d, want 200", name, code)
			}
			if code, b := a.do("POST", "/api/v1/authenticate", "", map[string]any{"application_token": app}); code != http.StatusUnauthorized {
				t.Fatalf("%s: exchanging the revoked application token: %d %s", name, code, b)
			}
		}
		// Logging the session out leaves its application token alone.
		_, app := asApp(a, login)
		sess := asExchange(a, app)
		a.mustAs(sess, "POST", "/api/logout", nil, http.StatusOK, nil)
		if code := pwSession(a, app); code != http.StatusOK {
			t.Fatalf("application token after its session logged out: %d, want 200", code)
		}
	})
}
