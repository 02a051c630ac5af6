package admin_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/warden-mqtt/warden/admin"
	"github.com/warden-mqtt/warden/store/storetest"
)

// Tests of the escalation rule (issue 14, item 3): the attacks as a user
// with a partial admin role would run them over HTTP, each refused with
// 403 naming what the caller lacks, and the grants within the caller's
// own permissions that stay allowed.

func httpPerm(resource, op string) rPerm {
	return rPerm{Resource: resource, Operation: op, Context: "http"}
}

func mqttPermOf(resource, op string) rPerm {
	return rPerm{Resource: resource, Operation: op, Context: "mqtt"}
}

// eUser creates a user holding perms in its own role (and roles), logs it
// in and returns its ID, own role ID and token.
func eUser(t *testing.T, a *api, name string, roles []string, perms ...rPerm) (id, own, token string) {
	t.Helper()
	id, own = rCreateUser(t, a, name, roles, perms...)
	return id, own, a.login(name, rPassword)
}

// eRefused sends a request and requires 403 with a message containing
// want.
func eRefused(t *testing.T, a *api, token, method, path string, body any, want string) {
	t.Helper()
	code, b := a.do(method, path, token, body)
	if code != http.StatusForbidden {
		t.Fatalf("%s %s %v: status %d, want 403; body %s", method, path, body, code, b)
	}
	var e struct {
		Error string `json:"error"`
		Code  int    `json:"code"`
	}
	if err := json.Unmarshal(b, &e); err != nil || e.Code != http.StatusForbidden || !strings.Contains(e.Error, want) {
		t.Fatalf("%s %s: error %s, want code 403 and a message containing %q", method, path, b, want)
	}
}

// eAllowed sends a request and requires the status want.
func eAllowed(t *testing.T, a *api, token, method, path string, body any, want int) []byte {
	t.Helper()
	code, b := a.do(method, path, token, body)
	if code != want {
		t.Fatalf("%s %s %v: status %d, want %d; body %s", method, path, body, code, want, b)
	}
	return b
}

// eSamePerms fails unless role id holds exactly perms (resource,
// operation, context).
func eSamePerms(t *testing.T, a *api, id string, perms ...rPerm) {
	t.Helper()
	got := rGetRole(t, a, id).Permissions
	if len(got) != len(perms) {
		t.Fatalf("role %s holds %+v, want %+v", id, got, perms)
	}
	for i := range perms {
		if !got[i].same(perms[i]) {
			t.Fatalf("role %s holds %+v, want %+v", id, got, perms)
		}
	}
}

// TestEscalationThroughRoles: a user allowed to edit roles and user roles,
// but holding no more than that, edits its own role to /# and grants
// itself connectware-admin (the attack). Every step is refused.
func TestEscalationThroughRoles(t *testing.T) {
	t.Parallel()
	a := newAPI(t, storetest.OpenBolt(t))
	adminRole := uRoleID(t, a, admin.RoleAdmin)
	mine := []rPerm{httpPerm("/api/roles/#", "readWrite"), httpPerm("/api/users/#", "readWrite"),
		mqttPermOf("{username}/#", "readWrite")}
	mallory, own, tok := eUser(t, a, "mallory", nil, mine...)

	// The attack: own role widened to everything over HTTP.
	eRefused(t, a, tok, "PUT", "/api/roles/"+own, map[string]any{"permissions": append(slices.Clone(mine), httpPerm("/#", "readWrite"))},
		"cannot grant readWrite on http /# : you do not hold it")
	eRefused(t, a, tok, "POST", "/api/roles/"+own+"/permissions", httpPerm("/#", "readWrite"),
		"cannot grant readWrite on http /# : you do not hold it")
	pem := rGetRole(t, a, own).Permissions[0].ID
	eRefused(t, a, tok, "PUT", "/api/roles/"+own+"/permissions/"+pem, map[string]any{"resource": "/#"},
		"cannot grant readWrite on http /# : you do not hold it")
	eRefused(t, a, tok, "PUT", "/api/users/"+mallory, map[string]any{"permissions": append(slices.Clone(mine), mqttPermOf("#", "readWrite"))},
		"cannot grant readWrite on mqtt # : you do not hold it")
	eSamePerms(t, a, own, mine...)

	// Then connectware-admin itself, on both paths that grant a role.
	eRefused(t, a, tok, "POST", "/api/users/"+mallory+"/roles", map[string]any{"roleId": adminRole},
		"cannot grant role connectware-admin")
	eRefused(t, a, tok, "PUT", "/api/users/"+mallory, map[string]any{"roles": []string{adminRole}},
		"cannot grant role connectware-admin")
	// Or a new role holding more than the caller.
	eRefused(t, a, tok, "POST", "/api/roles", map[string]any{"name": "wide", "isShared": true,
		"permissions": []rPerm{mqttPermOf("#", "readWrite")}}, "cannot grant readWrite on mqtt # : you do not hold it")
	// A role holding what the caller lacks cannot be handed out either.
	ops := rCreateRole(t, a, "plant2-ops", true, mqttPermOf("plant2/#", "readWrite"), httpPerm("/api/maintenance/db", "read"))
	eRefused(t, a, tok, "POST", "/api/users/"+mallory+"/roles", map[string]any{"roleId": ops.ID},
		`cannot grant readWrite on mqtt plant2/# : you do not hold it (role "plant2-ops" grants it)`)

	// Nothing changed: mallory still cannot reach what it lacked.
	if code, b := a.do("GET", "/api/maintenance/db", tok, nil); code != http.StatusForbidden {
		t.Fatalf("after the refused attacks mallory reads /api/maintenance/db: %d %s", code, b)
	}
	if g := uGet(t, a, mallory); len(g.Roles) != 1 {
		t.Fatalf("mallory's roles changed: %+v", g.Roles)
	}

	// Within its own permissions the caller works as before.
	var sub rRole
	b := eAllowed(t, a, tok, "POST", "/api/roles", map[string]any{"name": "roles-reader", "isShared": true,
		"permissions": []rPerm{httpPerm("/api/roles/+", "read"), mqttPermOf("{username}/telemetry", "write")}}, http.StatusCreated)
	if err := json.Unmarshal(b, &sub); err != nil {
		t.Fatal(err)
	}
	bob, _ := rCreateUser(t, a, "bob", nil)
	eAllowed(t, a, tok, "POST", "/api/users/"+bob+"/roles", map[string]any{"roleId": sub.ID}, http.StatusCreated)
	// Placeholders are compared as written: {username}/# does not cover
	// another user's topics.
	eRefused(t, a, tok, "POST", "/api/roles/"+sub.ID+"/permissions", mqttPermOf("alice/telemetry", "write"),
		"cannot grant write on mqtt alice/telemetry : you do not hold it")
	// Narrowing or removing what the caller lacks is allowed: it grants
	// nothing new.
	eAllowed(t, a, tok, "PUT", "/api/roles/"+ops.ID, map[string]any{"permissions": []rPerm{mqttPermOf("plant2/#", "read"),
		httpPerm("/api/maintenance/db", "read")}}, http.StatusOK)
	eSamePerms(t, a, ops.ID, mqttPermOf("plant2/#", "read"), httpPerm("/api/maintenance/db", "read"))
	pem = rGetRole(t, a, ops.ID).Permissions[1].ID
	eAllowed(t, a, tok, "DELETE", "/api/roles/"+ops.ID+"/permissions/"+pem, nil, http.StatusOK)
	eRefused(t, a, tok, "PUT", "/api/roles/"+ops.ID, map[string]any{"permissions": []rPerm{mqttPermOf("plant2/#", "readWrite")}},
		"cannot grant readWrite on mqtt plant2/# : you do not hold it")
	eAllowed(t, a, tok, "PUT", "/api/roles/"+own, map[string]any{"permissions": mine[:2]}, http.StatusOK)

	// The admin is exempt and grants anything.
	a.must("POST", "/api/users/"+mallory+"/roles", map[string]any{"roleId": ops.ID}, http.StatusCreated, nil)
}

// TestEscalationCreatingUsers: a user allowed to create users (one, or a
// batch) gives the new user only what it holds itself.
func TestEscalationCreatingUsers(t *testing.T) {
	t.Parallel()
	a := newAPI(t, storetest.OpenBolt(t))
	adminRole := uRoleID(t, a, admin.RoleAdmin)
	ops := rCreateRole(t, a, "plant2-ops", true, mqttPermOf("plant2/#", "readWrite"))
	_, _, tok := eUser(t, a, "provisioner", nil, httpPerm("/api/users", "write"), httpPerm("/api/users/batch", "write"),
		mqttPermOf("plant1/#", "readWrite"))
	user := func(name string, roles []string, perms ...rPerm) map[string]any {
		if roles == nil {
			roles = []string{}
		}
		if perms == nil {
			perms = []rPerm{}
		}
		return map[string]any{"username": name, "password": rPassword, "roles": roles, "initialPermissions": perms}
	}

	eRefused(t, a, tok, "POST", "/api/users", user("backdoor", []string{adminRole}), "cannot grant role connectware-admin")
	eRefused(t, a, tok, "POST", "/api/users", user("backdoor", nil, httpPerm("/#", "readWrite")),
		"cannot grant readWrite on http /# : you do not hold it")
	eRefused(t, a, tok, "POST", "/api/users", user("backdoor", []string{ops.ID}),
		"cannot grant readWrite on mqtt plant2/# : you do not hold it")
	eRefused(t, a, tok, "POST", "/api/users/batch", []map[string]any{
		user("line1", nil, mqttPermOf("plant1/line1/#", "readWrite")),
		user("backdoor", []string{adminRole}),
	}, "user 1: cannot grant role connectware-admin")
	if names := uUsernames(t, a); len(names) != 2 {
		t.Fatalf("users after the refused creations: %v, want admin and provisioner", names)
	}

	// Allowed: a subset of what the caller holds.
	eAllowed(t, a, tok, "POST", "/api/users", user("line1", nil, mqttPermOf("plant1/line1/#", "read")), http.StatusCreated)
	eAllowed(t, a, tok, "POST", "/api/users/batch", []map[string]any{
		user("line2", nil, mqttPermOf("plant1/line2/#", "readWrite")),
		user("line3", nil, mqttPermOf("plant1/+/status", "write")),
	}, http.StatusCreated)
}

// TestEscalationRegistryConfirm: confirming a device registration gives
// the new user only what the confirming caller holds.
func TestEscalationRegistryConfirm(t *testing.T) {
	t.Parallel()
	a := newAPI(t, storetest.OpenBolt(t))
	adminRole := uRoleID(t, a, admin.RoleAdmin)
	_, _, tok := eUser(t, a, "registrar", nil, httpPerm("/api/client-registry/confirm", "write"), mqttPermOf("plant1/#", "readWrite"))
	a.must("POST", "/api/client-registry/open", map[string]any{"duration": 60000}, http.StatusNoContent, nil)
	if code, b := gRegister(a, map[string]any{"username": "dev-1", "password": "device-password-1", "context": "serial 1"}); code != http.StatusAccepted {
		t.Fatalf("register: %d %s", code, b)
	}

	eRefused(t, a, tok, "POST", "/api/client-registry/confirm", map[string]any{"username": "dev-1", "roles": []string{adminRole}},
		"cannot grant role connectware-admin")
	eRefused(t, a, tok, "POST", "/api/client-registry/confirm", map[string]any{"username": "dev-1",
		"initialPermissions": []rPerm{mqttPermOf("plant2/#", "readWrite")}}, "cannot grant readWrite on mqtt plant2/# : you do not hold it")
	if names := uUsernames(t, a); names["dev-1"] != "" {
		t.Fatal("a refused confirmation created the user")
	}
	eAllowed(t, a, tok, "POST", "/api/client-registry/confirm", map[string]any{"username": "dev-1",
		"initialPermissions": []rPerm{mqttPermOf("plant1/dev-1/#", "readWrite")}}, http.StatusNoContent)
}

// TestEscalationTakeover: setting another user's password, name,
// grant types or certificates is acting as that user, so it needs
// everything that user holds.
func TestEscalationTakeover(t *testing.T) {
	t.Parallel()
	a := newAPI(t, storetest.OpenBolt(t))
	adminID := uAdminID(t, a)
	_, _, tok := eUser(t, a, "helpdesk", nil, httpPerm("/api/users/#", "readWrite"))
	eRefused(t, a, tok, "PUT", "/api/users/"+adminID, map[string]any{"password": "helpdesk-owns-admin-1"},
		`cannot change how "admin" logs in`)
	eRefused(t, a, tok, "PUT", "/api/users/"+adminID, map[string]any{"grantTypes": []map[string]any{{"method": "certificate"}}},
		`cannot change how "admin" logs in`)
	eRefused(t, a, tok, "PUT", "/api/users/"+adminID, map[string]any{"username": "helpdesk-cert-cn"},
		`cannot change how "admin" logs in`)
	eRefused(t, a, tok, "POST", "/api/users/"+adminID+"/certificates", map[string]any{"fingerprint": strings.Repeat("cd", 32)},
		`cannot change how "admin" logs in`)
	a.login("admin", adminPassword)
	ops, _ := rCreateUser(t, a, "ops", nil, mqttPermOf("plant2/#", "read"))
	eRefused(t, a, tok, "PUT", "/api/users/"+ops, map[string]any{"password": "helpdesk-owns-ops-1"},
		`cannot change how "ops" logs in: it holds read on mqtt plant2/#, and you do not`)
	// A user holding nothing the caller lacks: allowed.
	plain, _ := rCreateUser(t, a, "plain", nil)
	eAllowed(t, a, tok, "PUT", "/api/users/"+plain, map[string]any{"password": "helpdesk-resets-1"}, http.StatusOK)
	a.login("plain", "helpdesk-resets-1")
}
