package admin_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/warden-mqtt/warden/admin"
	"github.com/warden-mqtt/warden/store/storetest"
)

// TestMFAConfigReadableByEveryUser (issue 15, item 12): the README tells
// users to ask GET /api/auth/mfa whether MFA is on before they enroll; a
// user holding only the built-in minimum-access role (read on
// /api/session, as the bootstrap gives it), or no role at all, may ask.
// Without a token it stays 401.
func TestMFAConfigReadableByEveryUser(t *testing.T) {
	t.Parallel()
	a := newAPI(t, storetest.OpenBolt(t), func(o *admin.Options) { o.MFAEnabled = true })
	minimum, err := a.st.RoleByName(t.Context(), admin.RoleMinimum)
	if err != nil {
		t.Fatal(err)
	}
	rCreateUser(t, a, "operator", []string{minimum.ID})
	rCreateUser(t, a, "no-roles", nil)
	for _, name := range []string{"operator", "no-roles"} {
		code, body := a.do("GET", "/api/auth/mfa", a.login(name, rPassword), nil)
		var got struct {
			Enabled *bool `json:"enabled"`
		}
		if code != http.StatusOK || json.Unmarshal(body, &got) != nil || got.Enabled == nil || !*got.Enabled {
			t.Errorf("GET /api/auth/mfa as %s: %d %s, want 200 {\"enabled\":true}", name, code, body)
		}
	}
	if code, body := a.do("GET", "/api/auth/mfa", "", nil); code != http.StatusUnauthorized || errorCode(t, body) != http.StatusUnauthorized {
		t.Errorf("GET /api/auth/mfa without a token: %d %s, want 401", code, body)
	}
}

// TestPasswordPolicyReadableByEveryUser: a user about to change its own
// password reads the policy it must meet (a minimum-access user got 403);
// a user whose MFA enrollment is enforced may still ask whether MFA is on,
// the first thing an enrollment page does.
func TestPasswordPolicyReadableByEveryUser(t *testing.T) {
	t.Parallel()
	a := newAPI(t, storetest.OpenBolt(t), func(o *admin.Options) { o.MFAEnabled = true })
	minimum, err := a.st.RoleByName(t.Context(), admin.RoleMinimum)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := rCreateUser(t, a, "operator", []string{minimum.ID})
	tok := a.login("operator", rPassword)
	code, body := a.do("GET", "/api/policy/password", tok, nil)
	var policy map[string]any
	if code != http.StatusOK || json.Unmarshal(body, &policy) != nil || policy["min"] == nil {
		t.Errorf("GET /api/policy/password as a minimum-access user: %d %s, want 200 with the policy", code, body)
	}
	if code, body := a.do("GET", "/api/policy/password", "", nil); code != http.StatusUnauthorized {
		t.Errorf("GET /api/policy/password without a token: %d %s, want 401", code, body)
	}
	if code, body := a.do("PUT", "/api/users/"+uid, a.admin, map[string]any{"enforceMFAEnrollment": true}); code != http.StatusOK {
		t.Fatalf("enforce enrollment: %d %s", code, body)
	}
	if code, body := a.do("GET", "/api/auth/mfa", tok, nil); code != http.StatusOK {
		t.Errorf("GET /api/auth/mfa while enrollment is enforced: %d %s, want 200", code, body)
	}
}
