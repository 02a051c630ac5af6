package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/store"
)

// sCreateUser stores a user holding the named built-in roles directly, so
// these tests do not depend on the users endpoints.
func sCreateUser(t *testing.T, a *api, name, password string, roleNames ...string) store.User {
	t.Helper()
	ctx := context.Background()
	h, err := credential.Hash(password, fastParams)
	if err != nil {
		t.Fatal(err)
	}
	u := store.User{Username: name, PasswordHash: h}
	for _, rn := range roleNames {
		r, err := a.st.RoleByName(ctx, rn)
		if err != nil {
			t.Fatal(err)
		}
		u.Roles = append(u.Roles, r.ID)
	}
	u, err = a.st.CreateUser(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestSessionsLoginAndSession(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, a *api) {
		var login struct {
			Token       string    `json:"token"`
			ExpiresAt   time.Time `json:"expiresAt"`
			NeedsMFA    *bool     `json:"needsMfa"`
			Permissions []struct {
				ID, Resource, Operation, Context string
			} `json:"permissions"`
		}
		before := time.Now()
		a.mustAs("", "POST", "/api/login", map[string]any{"username": "admin", "password": adminPassword}, 200, &login)
		if login.Token == "" || login.NeedsMFA == nil || *login.NeedsMFA || len(login.Permissions) != 2 {
			t.Fatalf("login answer: %+v", login)
		}
		if d := login.ExpiresAt.Sub(before); d < 23*time.Hour || d > 25*time.Hour {
			t.Fatalf("default token lifetime %v, want 24h", d)
		}
		var sess struct {
			Username         string    `json:"username"`
			IdentityProvider string    `json:"identityProvider"`
			ExpiresAt        time.Time `json:"expiresAt"`
			Permissions      []any     `json:"permissions"`
			MFA              *struct {
				Enabled  bool `json:"enabled"`
				Enforced bool `json:"enforced"`
			} `json:"mfa"`
		}
		a.mustAs(login.Token, "GET", "/api/session", nil, 200, &sess)
		if sess.Username != "admin" || sess.IdentityProvider != "local" || !sess.ExpiresAt.Equal(login.ExpiresAt) || len(sess.Permissions) != 2 || sess.MFA == nil {
			t.Fatalf("session: %+v", sess)
		}
		var perms []map[string]string
		a.mustAs(login.Token, "GET", "/api/permissions", nil, 200, &perms)
		if len(perms) != 2 || perms[0]["resource"] == "" || perms[0]["context"] == "" {
			t.Fatalf("own permissions: %v", perms)
		}

		// A labelled long-lived token.
		a.mustAs("", "POST", "/api/login", map[string]any{"username": "admin", "password": adminPassword, "expireTimeInHours": 720, "label": "ci"}, 200, &login)
		if d := time.Until(login.ExpiresAt); d < 719*time.Hour || d > 721*time.Hour {
			t.Fatalf("expireTimeInHours 720 gave a lifetime of %v", d)
		}
		for _, h := range []any{0, -1, 1e9, "2"} {
			code, b := a.do("POST", "/api/login", "", map[string]any{"username": "admin", "password": adminPassword, "expireTimeInHours": h})
			if code != 400 || errorCode(t, b) != 400 {
				t.Fatalf("expireTimeInHours %v: %d %s", h, code, b)
			}
		}
	})
}

func TestSessionsLoginRefusals(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, a *api) {
		sCreateUser(t, a, "suspended-user", "suspended-pass-1")
		u, _ := a.st.UserByUsername(context.Background(), "suspended-user")
		if _, err := a.st.UpdateUser(context.Background(), u.ID, func(u *store.User) error { u.Suspended = true; return nil }); err != nil {
			t.Fatal(err)
		}
		// Wrong password, unknown user, suspended user: one answer.
		var first []byte
		for _, c := range [][2]string{{"admin", "wrong-password-1"}, {"nobody", "wrong-password-1"}, {"suspended-user", "suspended-pass-1"}} {
			code, b := a.do("POST", "/api/login", "", map[string]string{"username": c[0], "password": c[1]})
			if code != 403 {
				t.Fatalf("login %s: %d %s", c[0], code, b)
			}
			if first == nil {
				first = b
			} else if !bytes.Equal(b, first) {
				t.Fatalf("login %s answered %s, admin with a wrong password %s", c[0], b, first)
			}
		}
		for body, want := range map[string]int{
			`{"username":"admin"}`:                          400,
			`{"username":"admin","password":"x","extra":1}`: 400,
			`{"username":"admin",`:                          400,
			`{"username":"admin","password":` + `"` + strings.Repeat("x", 1<<20) + `"}`: 413,
		} {
			code, b := a.do("POST", "/api/login", "", body)
			if code != want || errorCode(t, b) != want {
				t.Fatalf("login body %.40q: %d %s, want %d", body, code, b, want)
			}
		}
	})
}

// TestSessionsLockout: after five failures the right password is refused
// too, with the same answer, and other accounts are not affected.
func TestSessionsLockout(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, a *api) {
		sCreateUser(t, a, "operator", "operator-pass-1", "minimum-access")
		var wrong []byte
		for range 5 {
			_, wrong = a.do("POST", "/api/login", "", map[string]string{"username": "admin", "password": "wrong-password-1"})
		}
		code, b := a.do("POST", "/api/login", "", map[string]string{"username": "admin", "password": adminPassword})
		if code != 403 || !bytes.Equal(b, wrong) {
			t.Fatalf("locked account: %d %s, want the wrong-password answer %s", code, b, wrong)
		}
		a.login("operator", "operator-pass-1")
		// The tokens issued before the lock still work.
		a.must("GET", "/api/session", nil, 200, nil)
	})
}

func TestSessionsLogout(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, a *api) {
		tok := a.login("admin", adminPassword)
		a.mustAs("", "POST", "/api/logout", map[string]string{"token": tok}, 200, nil)
		code, b := a.do("GET", "/api/session", tok, nil)
		if code != 401 || errorCode(t, b) != 401 {
			t.Fatalf("session after logout: %d %s", code, b)
		}
		if code, _ := a.do("POST", "/api/logout", "", map[string]string{"token": tok}); code != 404 {
			t.Fatalf("second logout: %d, want 404", code)
		}
		// The bearer header alone names the token too.
		tok = a.login("admin", adminPassword)
		a.mustAs(tok, "POST", "/api/logout", "{}", 200, nil)
		if code, _ := a.do("GET", "/api/session", tok, nil); code != 401 {
			t.Fatalf("session after header logout: %d", code)
		}
		if code, _ := a.do("POST", "/api/logout", "", map[string]string{"token": "not-a-token"}); code != 404 {
			t.Fatalf("logout of garbage: %d, want 404", code)
		}
	})
}

func TestSessionsAuthorization(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, a *api) {
		sCreateUser(t, a, "operator", "operator-pass-1", "minimum-access")
		op := a.login("operator", "operator-pass-1")
		for _, c := range []struct {
			token, method, path string
			want                int
		}{
			{"", "GET", "/api/session", 401},
			{"garbage", "GET", "/api/session", 401},
			{a.admin + "x", "GET", "/api/session", 401},
			{op, "GET", "/api/session", 200},
			{op, "GET", "/api/permissions", 200},
			{op, "GET", "/api/policy/password", 200}, // a user changing its password reads the policy (issue 15)
			{op, "GET", "/api/auth/mfa", 200},        // any user may ask whether MFA is on (issue 15)
			{a.admin, "GET", "/api/auth/mfa", 200},
			{a.admin, "GET", "/api/auth/ldap", 200},
			{a.admin, "GET", "/api/no-such-thing", 404},
		} {
			code, b := a.do(c.method, c.path, c.token, nil)
			if code != c.want {
				t.Fatalf("%s %s: %d %s, want %d", c.method, c.path, code, b, c.want)
			}
			if code >= 400 && errorCode(t, b) != code {
				t.Fatalf("%s %s: error body %s", c.method, c.path, b)
			}
		}
		var policy map[string]any
		a.must("GET", "/api/policy/password", nil, 200, &policy)
		if policy["min"] == nil {
			t.Fatalf("policy: %v", policy)
		}
		var ldap, mfa map[string]any
		a.must("GET", "/api/auth/ldap", nil, 200, &ldap)
		a.must("GET", "/api/auth/mfa", nil, 200, &mfa)
		if ldap["enabled"] != false || mfa["enabled"] != false {
			t.Fatalf("ldap %v, mfa %v", ldap, mfa)
		}
		// A deleted user's token stops working at once.
		u, _ := a.st.UserByUsername(context.Background(), "operator")
		if err := a.st.DeleteUser(context.Background(), u.ID); err != nil {
			t.Fatal(err)
		}
		if code, _ := a.do("GET", "/api/session", op, nil); code != 401 {
			t.Fatalf("deleted user's token: %d", code)
		}
	})
}

// TestSessionsEnhancedAuth: MQTT 5 enhanced authentication is refused in
// the seed's shape.
func TestSessionsEnhancedAuth(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, a *api) {
		var out struct {
			Result    string          `json:"result"`
			Modifiers json.RawMessage `json:"modifiers"`
		}
		a.mustAs("", "POST", "/api/broker/auth/enhanced", map[string]any{"client_id": "c1",
			"properties": map[string]any{"p_authentication_method": "SCRAM-SHA-1"}}, http.StatusOK, &out)
		if out.Result != "error" || len(out.Modifiers) == 0 {
			t.Fatalf("enhanced auth: %+v", out)
		}
	})
}
