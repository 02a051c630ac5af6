package admin_test

import (
	"net/http"
	"testing"

	"github.com/warden-mqtt/warden/store/storetest"
)

// TestRoleNameWhereAnIDGoes (issue 15, item 5): every field that takes
// role IDs (roles of POST /api/users, the batch, PUT /api/users/{id} and
// the registry confirm; roleId of POST and DELETE /api/users/{id}/roles),
// given the name of an existing role, answers with the status a missing
// role has (404) and, to a caller that may read roles (GET /api/roles),
// that the field takes IDs and which ID that role has. A caller without
// that permission gets today's plain answer, and so does a value that is
// neither an ID nor a name.
func TestRoleNameWhereAnIDGoes(t *testing.T) {
	t.Parallel()
	a := newAPI(t, storetest.OpenBolt(t))
	role := rCreateRole(t, a, "line1-devices", true, mqttPermOf("plant1/line1/#", "write"))
	target, _ := rCreateUser(t, a, "device-0", nil)
	users := []rPerm{httpPerm("/api/users", "readWrite"), httpPerm("/api/users/#", "readWrite"),
		httpPerm("/api/client-registry/confirm", "write")}
	_, _, reader := eUser(t, a, "user-admin", nil, append(users, httpPerm("/api/roles", "read"))...)
	_, _, blind := eUser(t, a, "user-clerk", nil, users...)

	rolesMsg := `roles takes role IDs (see GET /api/roles); the role named "line1-devices" has ID ` + role.ID
	roleIDMsg := `roleId takes a role ID (see GET /api/roles); the role named "line1-devices" has ID ` + role.ID
	type call struct {
		method, path string
		body         func(roles ...string) any
		revealed     string // the error for the role's name, to a caller that reads roles
		plain        string // ... to one that does not
		neither      string // the error for a value that is neither
	}
	newUser := func(roles ...string) any {
		return map[string]any{"username": "device-1", "password": rPassword, "roles": roles}
	}
	for _, tc := range []call{
		{"POST", "/api/users", newUser, rolesMsg, `role "line1-devices" does not exist`, `role "no-such-role" does not exist`},
		{"POST", "/api/users/batch", func(roles ...string) any {
			return []any{map[string]any{"username": "device-2", "password": rPassword}, newUser(roles...)}
		},
			"user 1: " + rolesMsg, `user 1: role "line1-devices" does not exist`, `user 1: role "no-such-role" does not exist`},
		{"PUT", "/api/users/" + target, func(roles ...string) any { return map[string]any{"roles": roles} },
			rolesMsg, `role "line1-devices" does not exist`, `role "no-such-role" does not exist`},
		{"POST", "/api/client-registry/confirm", func(roles ...string) any { return map[string]any{"username": "cam-1", "roles": roles} },
			rolesMsg, `role "line1-devices" does not exist`, `role "no-such-role" does not exist`},
		{"POST", "/api/users/" + target + "/roles", func(roles ...string) any { return map[string]any{"roleId": roles[0]} },
			roleIDMsg, "role not found", "role not found"},
		{"DELETE", "/api/users/" + target + "/roles", func(roles ...string) any { return map[string]any{"roleId": roles[0]} },
			roleIDMsg, `the user does not hold role "line1-devices"`, `the user does not hold role "no-such-role"`},
	} {
		for _, try := range []struct {
			who, token, value, want string
		}{
			{"admin", a.admin, "line1-devices", tc.revealed},
			{"a reader of roles", reader, "line1-devices", tc.revealed},
			{"a caller that may not read roles", blind, "line1-devices", tc.plain},
			{"admin", a.admin, "no-such-role", tc.neither},
		} {
			code, body := a.do(tc.method, tc.path, try.token, tc.body(try.value))
			if code != http.StatusNotFound || errorCode(t, body) != http.StatusNotFound {
				t.Errorf("%s %s with %q as %s: %d %s, want 404", tc.method, tc.path, try.value, try.who, code, body)
				continue
			}
			if got := errorText(t, string(body)); got != try.want {
				t.Errorf("%s %s with %q as %s: error %q\n want %q", tc.method, tc.path, try.value, try.who, got, try.want)
			}
		}
	}
	// The ID the error gives is the one that works.
	a.must("POST", "/api/users", newUser(role.ID), http.StatusCreated, nil)
}
