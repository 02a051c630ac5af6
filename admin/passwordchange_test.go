package admin_test

import (
	"net/http"
	"testing"
	"time"
)

// Item 8 of issue 14: a password change ends the sessions obtained with
// the old password. The MQTT side (clients connected with a revoked token
// are disconnected) is in cmd/warden/security_tokens_test.go.

// pwSession reports the status of GET /api/session with token.
func pwSession(a *api, token string) int {
	a.t.Helper()
	code, _ := a.do("GET", "/api/session", token, nil)
	return code
}

// pwTokens logs operator in twice (the session that will change the
// password, and a copy an attacker stole), creates an application token
// and exchanges it for an application-session token.
func pwTokens(t *testing.T, a *api) (mine, stolen, app, appSession string) {
	t.Helper()
	mine = a.login("operator", "operator-pass-1")
	stolen = a.login("operator", "operator-pass-1")
	var created struct {
		Token string `json:"application_token"`
	}
	a.mustAs(mine, "POST", "/api/v1/application_token", map[string]any{"description": "exporter"}, http.StatusCreated, &created)
	var exchanged struct {
		Token string `json:"auth_token"`
	}
	a.mustAs("", "POST", "/api/v1/authenticate", map[string]any{"application_token": created.Token}, http.StatusOK, &exchanged)
	return mine, stolen, created.Token, exchanged.Token
}

// TestPasswordChangeRevokesStolenLoginTokens: the victim changes its
// password; the login token the attacker stole is refused at once; the
// session that made the change goes on; application tokens (and what they
// were exchanged for) stay unless asked.
func TestPasswordChangeRevokesStolenLoginTokens(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, a *api) {
		sCreateUser(t, a, "operator", "operator-pass-1", "minimum-access")
		mine, stolen, app, appSession := pwTokens(t, a)

		a.mustAs(mine, "PUT", "/api/users/change-password", map[string]any{"password": "operator-pass-1", "newPassword": "operator-pass-2"}, http.StatusNoContent, nil)
		if code := pwSession(a, stolen); code != http.StatusUnauthorized {
			t.Fatalf("stolen login token after the victim changed its password: %d, want 401", code)
		}
		if got := kValidate(t, a, a.admin, stolen); got["valid"] != false || got["reason"] != "revoked" {
			t.Fatalf("validateToken of the stolen token: %v, want revoked", got)
		}
		for name, tok := range map[string]string{"the changing session": mine, "application token": app, "application session": appSession} {
			if code := pwSession(a, tok); code != http.StatusOK {
				t.Fatalf("%s after the change: %d, want 200", name, code)
			}
		}
		a.mustAs("", "POST", "/api/login", map[string]any{"username": "operator", "password": "operator-pass-1"}, http.StatusForbidden, nil)
		newer := a.login("operator", "operator-pass-2")

		// Asked for: application tokens go too, with their sessions; the
		// changing session and logins with the current password stay.
		a.mustAs(mine, "PUT", "/api/users/change-password", map[string]any{"password": "operator-pass-2", "newPassword": "operator-pass-3",
			"revokeApplicationTokens": true}, http.StatusNoContent, nil)
		for name, tok := range map[string]string{"application token": app, "application session": appSession, "login with the previous password": newer} {
			if code := pwSession(a, tok); code != http.StatusUnauthorized {
				t.Fatalf("%s after a change with revokeApplicationTokens: %d, want 401", name, code)
			}
		}
		if code := pwSession(a, mine); code != http.StatusOK {
			t.Fatalf("the changing session: %d, want 200", code)
		}
		// A refused change revokes nothing.
		a.mustAs(mine, "PUT", "/api/users/change-password", map[string]any{"password": "wrong-pass-1", "newPassword": "operator-pass-4"}, http.StatusForbidden, nil)
		if code := pwSession(a, mine); code != http.StatusOK {
			t.Fatalf("the session after a refused change: %d, want 200", code)
		}
	})
}

// TestAdminPasswordResetRevokesLoginTokens: an admin's new password for a
// user (PUT /api/users/{id}) revokes every login token of that user;
// application tokens only with revokeApplicationTokens, which goes with a
// password only. An admin changing its own password this way keeps the
// session it used.
func TestAdminPasswordResetRevokesLoginTokens(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, a *api) {
		u := sCreateUser(t, a, "operator", "operator-pass-1", "minimum-access")
		mine, stolen, app, appSession := pwTokens(t, a)

		a.must("PUT", "/api/users/"+u.ID, map[string]any{"revokeApplicationTokens": true}, http.StatusBadRequest, nil)
		a.must("PUT", "/api/users/"+u.ID, map[string]any{"password": "operator-pass-2"}, http.StatusOK, nil)
		for name, tok := range map[string]string{"login token": mine, "stolen login token": stolen} {
			if code := pwSession(a, tok); code != http.StatusUnauthorized {
				t.Fatalf("%s after the admin's reset: %d, want 401", name, code)
			}
		}
		for name, tok := range map[string]string{"application token": app, "application session": appSession} {
			if code := pwSession(a, tok); code != http.StatusOK {
				t.Fatalf("%s after the admin's reset: %d, want 200", name, code)
			}
		}
		a.must("PUT", "/api/users/"+u.ID, map[string]any{"password": "operator-pass-3", "revokeApplicationTokens": true}, http.StatusOK, nil)
		for name, tok := range map[string]string{"application token": app, "application session": appSession} {
			if code := pwSession(a, tok); code != http.StatusUnauthorized {
				t.Fatalf("%s after a reset with revokeApplicationTokens: %d, want 401", name, code)
			}
		}

		// The admin's own password: its other sessions go, this one stays.
		adminUser, err := a.st.UserByUsername(t.Context(), "admin")
		if err != nil {
			t.Fatal(err)
		}
		other := a.login("admin", adminPassword)
		a.must("PUT", "/api/users/"+adminUser.ID, map[string]any{"password": "admin-password-2"}, http.StatusOK, nil)
		if code := pwSession(a, other); code != http.StatusUnauthorized {
			t.Fatalf("the admin's other session: %d, want 401", code)
		}
		if code := pwSession(a, a.admin); code != http.StatusOK {
			t.Fatalf("the admin's session that made the change: %d, want 200", code)
		}
	})
}

// TestPasswordChangeVoidsAPendingMFALogin: the first step of an MFA login
// checked the old password; after a change its secret gives no token,
// even with a right code.
func TestPasswordChangeVoidsAPendingMFALogin(t *testing.T) {
	t.Parallel()
	mBackends(t, func(t *testing.T, m *mEnv) {
		sCreateUser(t, m.api, "operator", "operator-pass-1", "minimum-access")
		tok := m.login("operator", "operator-pass-1")
		secret, _ := m.mEnroll(tok, "operator")
		challenge := m.mChallenge("operator", "operator-pass-1") // the attacker's, with the old password
		m.mustAs(tok, "PUT", "/api/users/change-password", map[string]any{"password": "operator-pass-1", "newPassword": "operator-pass-2"}, http.StatusNoContent, nil)
		m.mRefused("operator", challenge, mOTP(m.mCode(secret)), http.StatusUnauthorized)
		m.clock.advance(30 * time.Second)
		m.mToken("operator", m.mChallenge("operator", "operator-pass-2"), mOTP(m.mCode(secret)))
	})
}
