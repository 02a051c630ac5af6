package admin_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/warden-mqtt/warden/admin"
	"github.com/warden-mqtt/warden/audit"
	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

const (
	lOpsGroup   = "cn=operators,ou=groups,dc=example,dc=org"
	lNightGroup = "cn=night shift,ou=groups,dc=example,dc=org"
)

// lRole is a role as the API returns it, with its links.
type lRole struct {
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	LdapGroups []string `json:"ldapGroups"`
}

// TestRoleLdapGroupsOverAPI: POST and PUT /api/roles take ldapGroups, GET
// returns them (an empty list when none); a PUT without the field keeps
// them, an empty list removes them.
func TestRoleLdapGroupsOverAPI(t *testing.T) {
	backends(t, func(t *testing.T, a *api) {
		var ro lRole
		a.must("POST", "/api/roles", map[string]any{"name": "operators", "isShared": true, "ldapGroups": []string{lOpsGroup}}, http.StatusCreated, &ro)
		if !slices.Equal(ro.LdapGroups, []string{lOpsGroup}) {
			t.Fatalf("created role links %q, want [%s]", ro.LdapGroups, lOpsGroup)
		}
		var got lRole
		a.must("GET", "/api/roles/"+ro.ID, nil, http.StatusOK, &got)
		if !slices.Equal(got.LdapGroups, []string{lOpsGroup}) {
			t.Errorf("GET role: links %q", got.LdapGroups)
		}
		a.must("PUT", "/api/roles/"+ro.ID, map[string]any{"ldapGroups": []string{lOpsGroup, lNightGroup}}, http.StatusOK, &got)
		if !slices.Equal(got.LdapGroups, []string{lOpsGroup, lNightGroup}) {
			t.Errorf("PUT with two links: %q", got.LdapGroups)
		}
		a.must("PUT", "/api/roles/"+ro.ID, map[string]any{"name": "ops"}, http.StatusOK, &got)
		if got.Name != "ops" || len(got.LdapGroups) != 2 {
			t.Errorf("PUT without ldapGroups: %+v, want the links kept", got)
		}
		var list []lRole
		a.must("GET", "/api/roles?name[eq]=ops", nil, http.StatusOK, &list)
		if len(list) != 1 || len(list[0].LdapGroups) != 2 {
			t.Errorf("GET /api/roles: %+v", list)
		}
		a.must("PUT", "/api/roles/"+ro.ID, map[string]any{"ldapGroups": []string{}}, http.StatusOK, &got)
		code, b := a.do("GET", "/api/roles/"+ro.ID, a.admin, nil)
		if code != http.StatusOK || !strings.Contains(string(b), `"ldapGroups":[]`) {
			t.Errorf("GET a role without links: %d %s, want ldapGroups []", code, b)
		}
	})
}

// TestRoleLdapGroupsRefused: each problem with the links is a 400 saying
// which entry and why; a caller that may not grant the role gets 403.
// Both are audited like any role change.
func TestRoleLdapGroupsRefused(t *testing.T) {
	trail := &mLog{}
	a := newAPI(t, storetest.OpenBolt(t), func(o *admin.Options) { o.Audit = audit.New(trail) })
	var ro lRole
	a.must("POST", "/api/roles", map[string]any{"name": "plant2", "isShared": true,
		"permissions": []rPerm{{Resource: "plant2/#", Operation: "read", Context: "mqtt"}}}, http.StatusCreated, &ro)
	many := make([]string, store.MaxLdapGroups+1)
	for i := range many {
		many[i] = "cn=g" + strings.Repeat("x", i) + ",dc=example"
	}
	for _, tc := range []struct {
		name   string
		groups any
		msg    string
	}{
		{"a name that is no DN", []string{"operators"}, `ldapGroups[0]: "operators" is not a distinguished name: at byte 9: expected '=' after attribute type "operators"`},
		{"an empty RDN", []string{"cn=a,,dc=example"}, `ldapGroups[0]: "cn=a,,dc=example" is not a distinguished name: at byte 5: expected an attribute type`},
		{"one group twice", []string{lOpsGroup, "CN=Operators, OU=groups, DC=example, DC=org"}, `ldapGroups[1]: "CN=Operators, OU=groups, DC=example, DC=org" names the same group as ldapGroups[0]`},
		{"too many groups", many, "ldapGroups: 101 group DNs, more than 100"},
		{"a DN too long", []string{"cn=" + strings.Repeat("a", store.MaxDNBytes)}, "ldapGroups[0]: longer than 1024 bytes"},
		{"a string for the list", lOpsGroup, ""},
	} {
		for _, req := range []struct{ method, path string }{{"POST", "/api/roles"}, {"PUT", "/api/roles/" + ro.ID}} {
			code, b := a.do(req.method, req.path, a.admin, map[string]any{"name": "linked", "isShared": true, "ldapGroups": tc.groups})
			var e struct{ Error string }
			_ = json.Unmarshal(b, &e)
			if code != http.StatusBadRequest || (tc.msg != "" && e.Error != tc.msg) {
				t.Errorf("%s %s with %s: %d %s, want 400 %q", req.method, req.path, tc.name, code, b, tc.msg)
			}
		}
	}

	// An operator that may change roles but does not hold plant2/# may
	// not hand the role to a directory group.
	rCreateUser(t, a, "operator", nil, rPerm{Resource: "/api/#", Operation: "readWrite", Context: "http"})
	op := a.login("operator", rPassword)
	code, b := a.do("PUT", "/api/roles/"+ro.ID, op, map[string]any{"ldapGroups": []string{lOpsGroup}})
	if code != http.StatusForbidden || !strings.Contains(string(b), `cannot grant read on mqtt plant2/# : you do not hold it (role \"plant2\" grants it)`) {
		t.Errorf("an operator linking a role it could not grant: %d %s, want 403", code, b)
	}
	a.must("PUT", "/api/roles/"+ro.ID, map[string]any{"ldapGroups": []string{lOpsGroup}}, http.StatusOK, nil)
	if code, b := a.do("PUT", "/api/roles/"+ro.ID, op, map[string]any{"ldapGroups": []string{}}); code != http.StatusOK {
		t.Errorf("the operator removing the link: %d %s, want 200", code, b)
	}
	changes := findRecords(auditRecords(t, trail), map[string]any{"event": "admin.change", "action": "PUT /api/roles/{id}", "target": map[string]any{"id": ro.ID}})
	var outcomes []string
	for _, r := range changes {
		outcomes = append(outcomes, r["user"].(string)+":"+r["outcome"].(string))
	}
	if !slices.Contains(outcomes, "operator:denied") || !slices.Contains(outcomes, "admin:success") || !slices.Contains(outcomes, "operator:success") {
		t.Errorf("audited link changes %v, want the operator's refusal and both changes", outcomes)
	}
}

// TestUserLdapRolesReadOnly: GET shows the roles the directory gave a
// user apart from its roles; the user API cannot set them.
func TestUserLdapRolesReadOnly(t *testing.T) {
	a := newAPI(t, storetest.OpenBolt(t))
	ctx := context.Background()
	ro := rCreateRole(t, a, "synced", true, rPerm{Resource: "/api/roles", Operation: "read", Context: "http"})
	uid, _ := rCreateUser(t, a, "dora", nil)
	if _, err := a.st.UpdateUser(ctx, uid, func(u *store.User) error { u.LdapRoles = []string{ro.ID}; return nil }); err != nil {
		t.Fatal(err)
	}
	var u struct {
		Roles     []lRole `json:"roles"`
		LdapRoles []lRole `json:"ldapRoles"`
	}
	a.must("GET", "/api/users/"+uid, nil, http.StatusOK, &u)
	if len(u.LdapRoles) != 1 || u.LdapRoles[0].ID != ro.ID || slices.ContainsFunc(u.Roles, func(r lRole) bool { return r.ID == ro.ID }) {
		t.Errorf("user view roles %+v, ldapRoles %+v: want synced only among ldapRoles", u.Roles, u.LdapRoles)
	}
	for _, req := range []struct{ method, path string }{{"PUT", "/api/users/" + uid}, {"POST", "/api/users"}} {
		code, b := a.do(req.method, req.path, a.admin, map[string]any{"username": "eve", "password": rPassword, "ldapRoles": []string{ro.ID}})
		if code != http.StatusBadRequest || !strings.Contains(string(b), "ldapRoles") {
			t.Errorf("%s %s with ldapRoles: %d %s, want 400 naming the field", req.method, req.path, code, b)
		}
	}
	if got, _ := a.st.User(ctx, uid); !slices.Equal(got.LdapRoles, []string{ro.ID}) || len(got.Roles) != 1 {
		t.Errorf("after refused requests: roles %q, ldapRoles %q", got.Roles, got.LdapRoles)
	}
}

// TestDirectoryRoleGrantsHTTP: a role the directory gave a user grants
// its http permissions to the user's token, as a role given by hand does,
// and losing it takes them away.
func TestDirectoryRoleGrantsHTTP(t *testing.T) {
	backends(t, func(t *testing.T, a *api) {
		ctx := context.Background()
		ro := rCreateRole(t, a, "role-readers", true, rPerm{Resource: "/api/roles", Operation: "read", Context: "http"})
		uid, _ := rCreateUser(t, a, "dora", []string{minimumRoleID(t, a)})
		tok := a.login("dora", rPassword)
		if code, _ := a.do("GET", "/api/roles", tok, nil); code != http.StatusForbidden {
			t.Fatalf("before the directory role: GET /api/roles %d, want 403", code)
		}
		if _, err := a.st.UpdateUser(ctx, uid, func(u *store.User) error { u.LdapRoles = []string{ro.ID}; return nil }); err != nil {
			t.Fatal(err)
		}
		if code, b := a.do("GET", "/api/roles", tok, nil); code != http.StatusOK {
			t.Errorf("with the directory role: GET /api/roles %d %s, want 200", code, b)
		}
		var perms []rPerm
		a.mustAs(tok, "GET", "/api/permissions", nil, http.StatusOK, &perms)
		if !slices.ContainsFunc(perms, func(p rPerm) bool { return p.Resource == "/api/roles" && p.Context == "http" }) {
			t.Errorf("GET /api/permissions %+v lacks the directory role's permission", perms)
		}
		if _, err := a.st.UpdateUser(ctx, uid, func(u *store.User) error { u.LdapRoles = nil; return nil }); err != nil {
			t.Fatal(err)
		}
		if code, _ := a.do("GET", "/api/roles", tok, nil); code != http.StatusForbidden {
			t.Errorf("after the directory took the role away: GET /api/roles %d, want 403", code)
		}
	})
}

// minimumRoleID is the ID of the built-in minimum-access role.
func minimumRoleID(t *testing.T, a *api) string {
	t.Helper()
	ro, err := a.st.RoleByName(context.Background(), admin.RoleMinimum)
	if err != nil {
		t.Fatal(err)
	}
	return ro.ID
}

// TestLdapConfigIsTruthful: GET /api/auth/ldap reports what the server was
// configured with.
func TestLdapConfigIsTruthful(t *testing.T) {
	for _, tc := range []struct {
		name    string
		enabled bool
		mode    string
		want    string
	}{
		{"no directory", false, "", `{"enabled":false,"mode":"GROUP"}`},
		{"a directory in group mode", true, "GROUP", `{"enabled":true,"mode":"GROUP"}`},
		{"a directory in attribute mode", true, "ATTRIBUTE", `{"enabled":true,"mode":"ATTRIBUTE"}`},
	} {
		a := newAPI(t, storetest.OpenBolt(t), func(o *admin.Options) { o.LDAPEnabled, o.LDAPMode = tc.enabled, tc.mode })
		code, b := a.do("GET", "/api/auth/ldap", a.admin, nil)
		if code != http.StatusOK || strings.TrimSpace(string(b)) != tc.want {
			t.Errorf("%s: %d %s, want %s", tc.name, code, b, tc.want)
		}
	}
}

// TestOpenAPIDocumentsLdapLinks: the served document describes the role's
// links where roles are read and written, and the user's directory roles
// as read-only.
func TestOpenAPIDocumentsLdapLinks(t *testing.T) {
	a := newAPI(t, storetest.OpenBolt(t))
	var doc struct {
		Paths      map[string]map[string]json.RawMessage
		Components struct{ Schemas map[string]json.RawMessage }
	}
	a.must("GET", "/api/openapi.json", nil, http.StatusOK, &doc)
	for where, raw := range map[string]json.RawMessage{
		"schema Role": doc.Components.Schemas["Role"], "POST /api/roles": doc.Paths["/api/roles"]["post"],
		"PUT /api/roles/{id}": doc.Paths["/api/roles/{id}"]["put"],
	} {
		if !strings.Contains(string(raw), `"ldapGroups"`) {
			t.Errorf("%s does not document ldapGroups", where)
		}
	}
	var user struct {
		Properties map[string]struct {
			ReadOnly bool `json:"readOnly"`
		}
	}
	if err := json.Unmarshal(doc.Components.Schemas["User"], &user); err != nil {
		t.Fatal(err)
	}
	if p, ok := user.Properties["ldapRoles"]; !ok || !p.ReadOnly {
		t.Errorf("schema User: ldapRoles documented %v, read-only %v; want both", ok, p.ReadOnly)
	}
}
