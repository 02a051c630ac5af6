package admin_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/warden-mqtt/warden/admin"
)

// ---- helpers (prefixed r: users_test.go has its own, prefixed u) ----

// rPassword meets the default password policy (10 characters).
const rPassword = "user-password-1"

// rPerm is a permission as the API sends and receives it.
type rPerm struct {
	ID        string `json:"id,omitempty"`
	Resource  string `json:"resource"`
	Operation string `json:"operation"`
	Context   string `json:"context"`
}

// same compares resource, operation and context, not the ID.
func (p rPerm) same(q rPerm) bool {
	return p.Resource == q.Resource && p.Operation == q.Operation && p.Context == q.Context
}

// rRole is a role as GET /api/roles/{id} returns it.
type rRole struct {
	ID          string  `json:"id"`
	Name        string  `json:"name"`
	IsShared    bool    `json:"isShared"`
	Permissions []rPerm `json:"permissions"`
}

// rCreateRole creates a role as the admin and checks the 201 answer.
func rCreateRole(t *testing.T, a *api, name string, shared bool, perms ...rPerm) rRole {
	t.Helper()
	if perms == nil {
		perms = []rPerm{}
	}
	var ro rRole
	a.must("POST", "/api/roles", map[string]any{"name": name, "isShared": shared, "permissions": perms}, http.StatusCreated, &ro)
	if ro.ID == "" || ro.Name != name || ro.IsShared != shared || len(ro.Permissions) != len(perms) {
		t.Fatalf("created role %+v, want name %q isShared %v and %d permissions", ro, name, shared, len(perms))
	}
	for i, p := range ro.Permissions {
		if p.ID == "" || !p.same(perms[i]) {
			t.Fatalf("created role permission %d = %+v, want %+v with an id", i, p, perms[i])
		}
	}
	return ro
}

// rCreateUser creates a user holding roles (plus its own role, which holds
// perms) and returns the user's ID and the ID of its own role.
func rCreateUser(t *testing.T, a *api, username string, roles []string, perms ...rPerm) (userID, ownRoleID string) {
	t.Helper()
	if roles == nil {
		roles = []string{}
	}
	if perms == nil {
		perms = []rPerm{}
	}
	var u struct {
		ID    string  `json:"id"`
		Roles []rRole `json:"roles"`
	}
	a.must("POST", "/api/users", map[string]any{"username": username, "password": rPassword, "roles": roles,
		"initialPermissions": perms}, http.StatusCreated, &u)
	for _, ro := range u.Roles {
		if ro.Name == username {
			ownRoleID = ro.ID
		}
	}
	if u.ID == "" || ownRoleID == "" {
		t.Fatalf("user %q created without an id or an own role: %+v", username, u)
	}
	return u.ID, ownRoleID
}

// rRoleByName finds a role through GET /api/roles?name[eq]=.
func rRoleByName(t *testing.T, a *api, name string) rRole {
	t.Helper()
	var roles []rRole
	a.must("GET", "/api/roles?name[eq]="+url.QueryEscape(name), nil, http.StatusOK, &roles)
	if len(roles) != 1 || roles[0].Name != name {
		t.Fatalf("GET /api/roles?name[eq]=%s = %+v, want that one role", name, roles)
	}
	return roles[0]
}

// rGetRole reads a role as the admin.
func rGetRole(t *testing.T, a *api, id string) rRole {
	t.Helper()
	var ro rRole
	a.must("GET", "/api/roles/"+id, nil, http.StatusOK, &ro)
	return ro
}

// rWantErr sends a request and expects the status want with a JSON error
// body whose code is want.
func rWantErr(t *testing.T, a *api, token, method, path string, body any, want int) {
	t.Helper()
	code, b := a.do(method, path, token, body)
	if code != want {
		t.Fatalf("%s %s: status %d, want %d; body %s", method, path, code, want, b)
	}
	if got := errorCode(t, b); got != want {
		t.Fatalf("%s %s: error code %d, want %d; body %s", method, path, got, want, b)
	}
}

// rObject decodes a JSON object.
func rObject(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not a JSON object: %s", b)
	}
	return m
}

// rKeys returns the sorted keys of m, joined by commas.
func rKeys(m map[string]any) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return strings.Join(keys, ",")
}

// rPermIDs returns the IDs of perms.
func rPermIDs(perms []rPerm) []string {
	out := make([]string, 0, len(perms))
	for _, p := range perms {
		out = append(out, p.ID)
	}
	return out
}

var (
	rMQTTRead  = rPerm{Resource: "sensors/+/temp", Operation: "read", Context: "mqtt"}
	rMQTTWrite = rPerm{Resource: "actuators/#", Operation: "write", Context: "mqtt"}
	rHTTPRead  = rPerm{Resource: "/api/roles/#", Operation: "read", Context: "http"}
)

// rInvalidPerms are permissions every endpoint must refuse with 400.
var rInvalidPerms = map[string]rPerm{
	"'#' not last":           {Resource: "a/#/b", Operation: "read", Context: "mqtt"},
	"'+' inside a level":     {Resource: "a/b+/c", Operation: "read", Context: "mqtt"},
	"unknown context":        {Resource: "a/b", Operation: "read", Context: "ftp"},
	"unknown operation":      {Resource: "a/b", Operation: "all", Context: "mqtt"},
	"http without '/'":       {Resource: "api/users", Operation: "read", Context: "http"},
	"empty resource":         {Resource: "", Operation: "read", Context: "mqtt"},
	"shared subscription":    {Resource: "$share/g/a", Operation: "read", Context: "mqtt"},
	"missing operation":      {Resource: "a/b", Context: "mqtt"},
	"missing context":        {Resource: "a/b", Operation: "read"},
	"http '#' not last":      {Resource: "/api/#/x", Operation: "read", Context: "http"},
	"operation in lowercase": {Resource: "a/b", Operation: "readwrite", Context: "mqtt"},
}

// ---- tests ----

func TestRolesCreate(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, a *api) {
		// The answer has exactly the seed's fields and warden's
		// ldapGroups; every permission gets an id, and an id sent by the
		// client is not used.
		code, b := a.do("POST", "/api/roles", a.admin, map[string]any{"name": "operators", "isShared": true,
			"permissions": []rPerm{rMQTTRead, {ID: "client-chosen", Resource: "/api/listUsers", Operation: "read", Context: "http"}}})
		if code != http.StatusCreated {
			t.Fatalf("POST /api/roles: status %d, want 201; body %s", code, b)
		}
		m := rObject(t, b)
		if got := rKeys(m); got != "id,isShared,ldapGroups,name,permissions" {
			t.Fatalf("role fields %s, want id,isShared,ldapGroups,name,permissions: %s", got, b)
		}
		var ro rRole
		if err := json.Unmarshal(b, &ro); err != nil {
			t.Fatal(err)
		}
		if ro.ID == "" || ro.Name != "operators" || !ro.IsShared || len(ro.Permissions) != 2 {
			t.Fatalf("created role %+v", ro)
		}
		for _, p := range ro.Permissions {
			if p.ID == "" || p.ID == "client-chosen" {
				t.Fatalf("permission id %q: want one assigned by the server", p.ID)
			}
		}
		if ro.Permissions[0].ID == ro.Permissions[1].ID {
			t.Fatalf("two permissions share id %q", ro.Permissions[0].ID)
		}
		perm := rObject(t, rMarshal(t, ro.Permissions[0]))
		if got := rKeys(perm); got != "context,id,operation,resource" {
			t.Fatalf("permission fields %s", got)
		}
		if got := rGetRole(t, a, ro.ID); got.Name != "operators" || !slices.Equal(rPermIDs(got.Permissions), rPermIDs(ro.Permissions)) {
			t.Fatalf("GET the created role = %+v, want %+v", got, ro)
		}

		// isShared false is kept; a role without permissions lists [].
		code, b = a.do("POST", "/api/roles", a.admin, map[string]any{"name": "private", "isShared": false})
		if code != http.StatusCreated {
			t.Fatalf("POST /api/roles without permissions: %d %s", code, b)
		}
		if m := rObject(t, b); m["isShared"] != false || m["permissions"] == nil || len(m["permissions"].([]any)) != 0 {
			t.Fatalf("role without permissions: %s", b)
		}

		// A name and isShared are required (seed), and the name must be usable.
		rWantErr(t, a, a.admin, "POST", "/api/roles", map[string]any{"isShared": true}, http.StatusBadRequest)
		rWantErr(t, a, a.admin, "POST", "/api/roles", map[string]any{"name": "no-sharing-given"}, http.StatusBadRequest)
		rWantErr(t, a, a.admin, "POST", "/api/roles", map[string]any{"name": "", "isShared": true}, http.StatusBadRequest)
		rWantErr(t, a, a.admin, "POST", "/api/roles", map[string]any{"name": " padded", "isShared": true}, http.StatusBadRequest)
		rWantErr(t, a, a.admin, "POST", "/api/roles", map[string]any{"name": "tab\there", "isShared": true}, http.StatusBadRequest)
		rWantErr(t, a, a.admin, "POST", "/api/roles", map[string]any{"name": strings.Repeat("n", 257), "isShared": true}, http.StatusBadRequest)

		// Names are unique among roles and users.
		rWantErr(t, a, a.admin, "POST", "/api/roles", map[string]any{"name": "operators", "isShared": false}, http.StatusConflict)
		rWantErr(t, a, a.admin, "POST", "/api/roles", map[string]any{"name": admin.RoleAdmin, "isShared": true}, http.StatusConflict)
		rWantErr(t, a, a.admin, "POST", "/api/roles", map[string]any{"name": "admin", "isShared": true}, http.StatusConflict)
		rCreateUser(t, a, "alice", nil)
		rWantErr(t, a, a.admin, "POST", "/api/roles", map[string]any{"name": "alice", "isShared": true}, http.StatusConflict)

		// The same permission twice is a conflict, whatever ids it carries.
		dup := rMQTTWrite
		dup.ID = "other"
		rWantErr(t, a, a.admin, "POST", "/api/roles", map[string]any{"name": "twice", "isShared": true,
			"permissions": []rPerm{rMQTTWrite, rHTTPRead, dup}}, http.StatusConflict)

		// Invalid permissions are refused.
		for name, p := range rInvalidPerms {
			code, b := a.do("POST", "/api/roles", a.admin, map[string]any{"name": "invalid", "isShared": true,
				"permissions": []rPerm{rMQTTRead, p}})
			if code != http.StatusBadRequest || errorCode(t, b) != http.StatusBadRequest {
				t.Errorf("%s %+v: status %d, want 400; body %s", name, p, code, b)
			}
		}

		// Unknown fields, wrong types and broken JSON are refused.
		rWantErr(t, a, a.admin, "POST", "/api/roles", map[string]any{"name": "x1", "isShared": true, "color": "red"}, http.StatusBadRequest)
		rWantErr(t, a, a.admin, "POST", "/api/roles", map[string]any{"name": "x2", "isShared": true,
			"permissions": []map[string]any{{"resource": "a", "operation": "read", "context": "mqtt", "scope": "x"}}}, http.StatusBadRequest)
		rWantErr(t, a, a.admin, "POST", "/api/roles", map[string]any{"name": 7, "isShared": true}, http.StatusBadRequest)
		rWantErr(t, a, a.admin, "POST", "/api/roles", `{"name": "x3", `, http.StatusBadRequest)
		rWantErr(t, a, a.admin, "POST", "/api/roles", "", http.StatusBadRequest)
		rWantErr(t, a, a.admin, "POST", "/api/roles", `{"name": "x4", "isShared": true} {}`, http.StatusBadRequest)
		big := `{"name": "big", "isShared": true, "permissions": [` + strings.Repeat(`{"resource": "a/b", "operation": "read", "context": "mqtt"},`, 20000) + `{}]}`
		rWantErr(t, a, a.admin, "POST", "/api/roles", big, http.StatusRequestEntityTooLarge)

		// Nothing refused was stored.
		var names []struct {
			Name string `json:"name"`
		}
		a.must("GET", "/api/roles/names", nil, http.StatusOK, &names)
		var got []string
		for _, n := range names {
			got = append(got, n.Name)
		}
		slices.Sort(got)
		if want := []string{"alice", admin.RoleAdmin, admin.RoleMinimum, "operators", "private"}; !slices.Equal(got, want) {
			t.Fatalf("role names %v, want %v", got, want)
		}
	})
}

func rMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRolesList(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, a *api) {
		ops := rCreateRole(t, a, "operators", true, rMQTTRead)
		rCreateRole(t, a, "viewers", false)

		var all []rRole
		a.must("GET", "/api/roles", nil, http.StatusOK, &all)
		byName := map[string]rRole{}
		for _, ro := range all {
			byName[ro.Name] = ro
		}
		if len(all) != 4 || len(byName) != 4 {
			t.Fatalf("GET /api/roles = %+v, want 4 roles", all)
		}
		if got := byName["operators"]; got.ID != ops.ID || !got.IsShared || len(got.Permissions) != 1 || !got.Permissions[0].same(rMQTTRead) {
			t.Fatalf("operators in the list = %+v, want %+v", got, ops)
		}
		if got := byName["viewers"]; got.IsShared || got.Permissions == nil {
			t.Fatalf("viewers in the list = %+v, want isShared false and permissions []", got)
		}
		if got := byName[admin.RoleAdmin]; len(got.Permissions) != 2 {
			t.Fatalf("%s in the list = %+v, want its 2 permissions", admin.RoleAdmin, got)
		}

		// name[eq] filters by exact name.
		if got := rRoleByName(t, a, "operators"); got.ID != ops.ID {
			t.Fatalf("name[eq]=operators = %+v", got)
		}
		code, b := a.do("GET", "/api/roles?name[eq]=operator", a.admin, nil)
		if code != http.StatusOK || strings.TrimSpace(string(b)) != "[]" {
			t.Fatalf("name[eq] of no role: %d %s, want 200 []", code, b)
		}

		// /api/roles/names lists {id, name} of every role.
		code, b = a.do("GET", "/api/roles/names", a.admin, nil)
		if code != http.StatusOK {
			t.Fatalf("GET /api/roles/names: %d %s", code, b)
		}
		var names []map[string]any
		if err := json.Unmarshal(b, &names); err != nil {
			t.Fatalf("names: %s", b)
		}
		if len(names) != 4 {
			t.Fatalf("names = %s, want 4 entries", b)
		}
		for _, n := range names {
			if rKeys(n) != "id,name" {
				t.Fatalf("names entry fields %s, want id,name: %s", rKeys(n), b)
			}
			name, _ := n["name"].(string)
			if ro, ok := byName[name]; !ok || n["id"] != ro.ID {
				t.Fatalf("names entry %v does not match GET /api/roles", n)
			}
		}
	})
}

// rPage is a page of GET /api/roles/page or /api/permissions/page, with
// rows kept raw to check field names.
type rPage struct {
	Roles       []map[string]any `json:"roles"`
	Permissions []map[string]any `json:"permissions"`
	Pagination  map[string]any   `json:"pagination"`
}

// rPagination checks a pagination block; nextPage 0 means null.
func rPagination(t *testing.T, p map[string]any, totalPages, totalRows, inPage, current, next, rows int) {
	t.Helper()
	want := map[string]any{"totalPages": float64(totalPages), "totalRows": float64(totalRows), "totalRowsInPage": float64(inPage),
		"currentPage": float64(current), "rowsPerPage": float64(rows), "nextPage": nil}
	if next != 0 {
		want["nextPage"] = float64(next)
	}
	if rKeys(p) != rKeys(want) {
		t.Fatalf("pagination fields %s, want %s", rKeys(p), rKeys(want))
	}
	for k, v := range want {
		if p[k] != v {
			t.Fatalf("pagination %v: %s = %v, want %v", p, k, p[k], v)
		}
	}
}

func TestRolesPage(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, a *api) {
		minimum := rRoleByName(t, a, admin.RoleMinimum)
		adminRole := rRoleByName(t, a, admin.RoleAdmin)
		groupA := rCreateRole(t, a, "group-a", true, rMQTTRead, rHTTPRead)
		rCreateRole(t, a, "group-b", false)
		frankID, frankRole := rCreateUser(t, a, "frank", []string{minimum.ID, groupA.ID}, rMQTTWrite)
		ginaID, _ := rCreateUser(t, a, "gina", []string{groupA.ID})

		// pageNumber and rowsPerPage are required and bounded.
		for _, q := range []string{"", "?pageNumber=1", "?rowsPerPage=10", "?pageNumber=1&rowsPerPage=51",
			"?pageNumber=1&rowsPerPage=0", "?pageNumber=0&rowsPerPage=10", "?pageNumber=x&rowsPerPage=10",
			"?pageNumber=1&rowsPerPage=10&isShared=maybe", "?pageNumber=1&rowsPerPage=10&autoGenerated=2"} {
			rWantErr(t, a, a.admin, "GET", "/api/roles/page"+q, nil, http.StatusBadRequest)
		}

		page := func(q string) rPage {
			t.Helper()
			var p rPage
			a.must("GET", "/api/roles/page?"+q, nil, http.StatusOK, &p)
			if p.Roles == nil || p.Pagination == nil {
				t.Fatalf("GET /api/roles/page?%s: want roles and pagination", q)
			}
			return p
		}
		names := func(p rPage) []string {
			var out []string
			for _, r := range p.Roles {
				out = append(out, r["name"].(string))
			}
			return out
		}

		// All six roles on one page of 50 (the maximum), in name order.
		p := page("pageNumber=1&rowsPerPage=50")
		if got, want := names(p), []string{admin.RoleAdmin, "frank", "gina", "group-a", "group-b", admin.RoleMinimum}; !slices.Equal(got, want) {
			t.Fatalf("roles %v, want %v", got, want)
		}
		rPagination(t, p.Pagination, 1, 6, 6, 1, 0, 50)
		rows := map[string]map[string]any{}
		for _, r := range p.Roles {
			// The seed spells isshared and autogenerated in lower case.
			if got := rKeys(r); got != "autogenerated,id,isshared,name,permissions,users" {
				t.Fatalf("row fields %s, want autogenerated,id,isshared,name,permissions,users", got)
			}
			rows[r["name"].(string)] = r
		}
		users := func(name string) []string {
			t.Helper()
			us, ok := rows[name]["users"].([]any)
			if !ok {
				t.Fatalf("%s: users = %v, want an array", name, rows[name]["users"])
			}
			var out []string
			for _, u := range us {
				m := u.(map[string]any)
				if rKeys(m) != "id,username" {
					t.Fatalf("%s: user fields %s, want id,username", name, rKeys(m))
				}
				out = append(out, m["username"].(string)+"="+m["id"].(string))
			}
			slices.Sort(out)
			return out
		}
		for name, want := range map[string][]string{
			admin.RoleAdmin:   {"admin=" + rAdminID(t, a)},
			admin.RoleMinimum: {"frank=" + frankID},
			"group-a":         {"frank=" + frankID, "gina=" + ginaID},
			"group-b":         nil,
			"frank":           {"frank=" + frankID},
		} {
			if got := users(name); !slices.Equal(got, want) {
				t.Errorf("%s: users %v, want %v", name, got, want)
			}
		}
		if f := rows["frank"]; f["id"] != frankRole || f["isshared"] != false || f["autogenerated"] != true {
			t.Fatalf("frank's own role row = %v", f)
		}
		if g := rows["group-a"]; g["id"] != groupA.ID || g["isshared"] != true || g["autogenerated"] != false {
			t.Fatalf("group-a row = %v", g)
		}
		if g := rows["group-b"]; g["isshared"] != false || g["autogenerated"] != false {
			t.Fatalf("group-b row = %v", g)
		}
		var perms []rPerm
		if err := json.Unmarshal(rMarshal(t, rows["group-a"]["permissions"]), &perms); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(rPermIDs(perms), rPermIDs(groupA.Permissions)) || !perms[0].same(rMQTTRead) || !perms[1].same(rHTTPRead) {
			t.Fatalf("group-a permissions %+v, want %+v", perms, groupA.Permissions)
		}
		if ps := rows[admin.RoleAdmin]["permissions"].([]any); len(ps) != len(adminRole.Permissions) {
			t.Fatalf("%s permissions %v", admin.RoleAdmin, ps)
		}
		if ps, ok := rows["group-b"]["permissions"].([]any); !ok || len(ps) != 0 {
			t.Fatalf("group-b permissions %v, want []", rows["group-b"]["permissions"])
		}

		// Filters.
		for q, want := range map[string][]string{
			"autoGenerated=true":                           {"frank", "gina"},
			"autoGenerated=false":                          {admin.RoleAdmin, "group-a", "group-b", admin.RoleMinimum},
			"isShared=false":                               {"frank", "gina", "group-b"},
			"isShared=true":                                {admin.RoleAdmin, "group-a", admin.RoleMinimum},
			"isShared=false&autoGenerated=false":           {"group-b"},
			"names=group-a":                                {"group-a"},
			"names=group-b&names=frank":                    {"frank", "group-b"},
			"names=group-b&names=" + admin.RoleAdmin:       {admin.RoleAdmin, "group-b"},
			"names[]=gina&names[]=group-a":                 {"gina", "group-a"},
			"names=nobody":                                 nil,
			"names=frank&names=group-a&autoGenerated=true": {"frank"},
		} {
			p := page("pageNumber=1&rowsPerPage=50&" + q)
			if got := names(p); !slices.Equal(got, want) {
				t.Errorf("%s: roles %v, want %v", q, got, want)
			}
			rPagination(t, p.Pagination, (len(want)+49)/50, len(want), len(want), 1, 0, 50)
		}

		// Pagination: 6 roles, 4 per page.
		p1, p2, p3 := page("pageNumber=1&rowsPerPage=4"), page("pageNumber=2&rowsPerPage=4"), page("pageNumber=3&rowsPerPage=4")
		rPagination(t, p1.Pagination, 2, 6, 4, 1, 2, 4)
		rPagination(t, p2.Pagination, 2, 6, 2, 2, 0, 4)
		rPagination(t, p3.Pagination, 2, 6, 0, 3, 0, 4)
		if got := append(names(p1), names(p2)...); !slices.Equal(got, names(p)) {
			t.Fatalf("pages 1 and 2: %v, want %v", got, names(p))
		}
		p = page("pageNumber=2&rowsPerPage=1&isShared=false")
		rPagination(t, p.Pagination, 3, 3, 1, 2, 3, 1)
		if got := names(p); !slices.Equal(got, []string{"gina"}) {
			t.Fatalf("second shared=false role: %v", got)
		}

		// names matches whole names, commas included.
		rCreateRole(t, a, "hall 1, north", true)
		rCreateRole(t, a, "hall 1", true)
		for q, want := range map[string][]string{
			"names=" + url.QueryEscape("hall 1, north"):               {"hall 1, north"},
			"names=" + url.QueryEscape("hall 1"):                      {"hall 1"},
			"names=north":                                             nil,
			"names=" + url.QueryEscape("hall 1") + "&names[]=group-a": {"group-a", "hall 1"},
			"names=" + url.QueryEscape("group-a,group-b"):             nil,
		} {
			if got := names(page("pageNumber=1&rowsPerPage=50&" + q)); !slices.Equal(got, want) {
				t.Errorf("%s: roles %v, want %v", q, got, want)
			}
		}
	})
}

// rAdminID returns the admin user's ID.
func rAdminID(t *testing.T, a *api) string {
	t.Helper()
	var ids []struct {
		ID       string `json:"id"`
		Username string `json:"username"`
	}
	a.must("GET", "/api/users/usernames", nil, http.StatusOK, &ids)
	for _, u := range ids {
		if u.Username == "admin" {
			return u.ID
		}
	}
	t.Fatal("no admin user")
	return ""
}

func TestRolesGetUpdateDelete(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, a *api) {
		for _, m := range []string{"GET", "PUT", "DELETE"} {
			rWantErr(t, a, a.admin, m, "/api/roles/no-such-role", map[string]any{"name": "x"}, http.StatusNotFound)
		}

		ro := rCreateRole(t, a, "operators", true, rMQTTRead, rMQTTWrite)
		if got := rGetRole(t, a, ro.ID); got.ID != ro.ID || got.Name != "operators" || !got.IsShared ||
			!slices.Equal(rPermIDs(got.Permissions), rPermIDs(ro.Permissions)) {
			t.Fatalf("GET = %+v, want %+v", got, ro)
		}

		// Rename and unshare; the permissions stay when not sent.
		var up rRole
		a.must("PUT", "/api/roles/"+ro.ID, map[string]any{"name": "line-operators", "isShared": false}, http.StatusOK, &up)
		if up.ID != ro.ID || up.Name != "line-operators" || up.IsShared || !slices.Equal(rPermIDs(up.Permissions), rPermIDs(ro.Permissions)) {
			t.Fatalf("PUT rename = %+v", up)
		}
		if got := rGetRole(t, a, ro.ID); got.Name != "line-operators" || got.IsShared {
			t.Fatalf("after rename: %+v", got)
		}
		if got := rRoleByName(t, a, "line-operators"); got.ID != ro.ID {
			t.Fatalf("the new name finds %+v", got)
		}
		code, b := a.do("GET", "/api/roles?name[eq]=operators", a.admin, nil)
		if code != http.StatusOK || strings.TrimSpace(string(b)) != "[]" {
			t.Fatalf("the old name still finds a role: %d %s", code, b)
		}
		// The old name is free again.
		rCreateRole(t, a, "operators", true)

		// Replace the permissions: one sent with its id keeps it, a new one
		// gets a fresh id, one left out is gone.
		kept := ro.Permissions[0]
		a.must("PUT", "/api/roles/"+ro.ID, map[string]any{"isShared": true,
			"permissions": []rPerm{rHTTPRead, kept}}, http.StatusOK, &up)
		if up.Name != "line-operators" || !up.IsShared || len(up.Permissions) != 2 {
			t.Fatalf("PUT permissions = %+v", up)
		}
		if !up.Permissions[0].same(rHTTPRead) || up.Permissions[0].ID == "" || slices.Contains(rPermIDs(ro.Permissions), up.Permissions[0].ID) {
			t.Fatalf("new permission %+v: want a fresh id", up.Permissions[0])
		}
		if up.Permissions[1] != kept {
			t.Fatalf("kept permission %+v, want %+v", up.Permissions[1], kept)
		}
		if got := rGetRole(t, a, ro.ID); !slices.Equal(rPermIDs(got.Permissions), rPermIDs(up.Permissions)) {
			t.Fatalf("GET after PUT: %+v, want %+v", got.Permissions, up.Permissions)
		}

		// An id the role does not have is not taken over (another role's),
		// and one id is not kept for two permissions. First the same id on
		// two equal permissions: a duplicate (409).
		other := rCreateRole(t, a, "other", true, rMQTTWrite)
		foreign := rMQTTWrite
		foreign.ID = other.Permissions[0].ID
		twice := rMQTTRead
		twice.ID = kept.ID
		a.must("PUT", "/api/roles/"+ro.ID, map[string]any{"permissions": []rPerm{kept, foreign, twice}}, http.StatusConflict, nil)
		// Then on two different permissions: the second gets a fresh id.
		twice.Resource = "sensors/+/humidity"
		a.must("PUT", "/api/roles/"+ro.ID, map[string]any{"permissions": []rPerm{kept, foreign, twice}}, http.StatusOK, &up)
		ids := rPermIDs(up.Permissions)
		if ids[0] != kept.ID || ids[1] == foreign.ID || ids[2] == kept.ID || ids[1] == "" || ids[2] == "" || ids[1] == ids[2] {
			t.Fatalf("permission ids %v: want %s kept, then two fresh ones (not %s)", ids, kept.ID, foreign.ID)
		}
		if got := rGetRole(t, a, other.ID); !slices.Equal(rPermIDs(got.Permissions), rPermIDs(other.Permissions)) {
			t.Fatalf("the other role changed: %+v", got)
		}

		// An empty list removes every permission.
		a.must("PUT", "/api/roles/"+ro.ID, map[string]any{"permissions": []rPerm{}}, http.StatusOK, &up)
		if up.Permissions == nil || len(up.Permissions) != 0 {
			t.Fatalf("PUT permissions [] = %+v", up)
		}
		a.must("PUT", "/api/roles/"+ro.ID, map[string]any{"permissions": []rPerm{kept}}, http.StatusOK, nil)

		// Refused updates change nothing.
		before := rGetRole(t, a, ro.ID)
		rWantErr(t, a, a.admin, "PUT", "/api/roles/"+ro.ID, map[string]any{"name": "other"}, http.StatusConflict)
		rWantErr(t, a, a.admin, "PUT", "/api/roles/"+ro.ID, map[string]any{"name": admin.RoleAdmin}, http.StatusConflict)
		rWantErr(t, a, a.admin, "PUT", "/api/roles/"+ro.ID, map[string]any{"name": ""}, http.StatusBadRequest)
		rWantErr(t, a, a.admin, "PUT", "/api/roles/"+ro.ID, map[string]any{"name": "trailing "}, http.StatusBadRequest)
		rWantErr(t, a, a.admin, "PUT", "/api/roles/"+ro.ID, map[string]any{"permissions": []rPerm{rMQTTRead, rMQTTRead}}, http.StatusConflict)
		for name, p := range rInvalidPerms {
			code, b := a.do("PUT", "/api/roles/"+ro.ID, a.admin, map[string]any{"name": "renamed", "permissions": []rPerm{p}})
			if code != http.StatusBadRequest || errorCode(t, b) != http.StatusBadRequest {
				t.Errorf("%s %+v: status %d, want 400; body %s", name, p, code, b)
			}
		}
		rWantErr(t, a, a.admin, "PUT", "/api/roles/"+ro.ID, map[string]any{"name": "renamed", "owner": "x"}, http.StatusBadRequest)
		rWantErr(t, a, a.admin, "PUT", "/api/roles/"+ro.ID, map[string]any{"isShared": "yes"}, http.StatusBadRequest)
		// A name is a user's, and reserved for that user's role, even for
		// a user without a role of its own (the admin).
		rWantErr(t, a, a.admin, "PUT", "/api/roles/"+ro.ID, map[string]any{"name": "admin"}, http.StatusConflict)
		_, hildaRole := rCreateUser(t, a, "hilda", nil)
		rWantErr(t, a, a.admin, "PUT", "/api/roles/"+ro.ID, map[string]any{"name": "hilda"}, http.StatusConflict)
		if got := rGetRole(t, a, ro.ID); got.Name != before.Name || got.IsShared != before.IsShared ||
			!slices.Equal(rPermIDs(got.Permissions), rPermIDs(before.Permissions)) {
			t.Fatalf("refused updates changed the role: %+v, was %+v", got, before)
		}

		// connectware-admin keeps its name and permissions.
		adm := rRoleByName(t, a, admin.RoleAdmin)
		rWantErr(t, a, a.admin, "PUT", "/api/roles/"+adm.ID, map[string]any{"name": "admins"}, http.StatusConflict)
		rWantErr(t, a, a.admin, "PUT", "/api/roles/"+adm.ID, map[string]any{"permissions": []rPerm{rHTTPRead}}, http.StatusConflict)
		rWantErr(t, a, a.admin, "PUT", "/api/roles/"+adm.ID, map[string]any{"permissions": adm.Permissions}, http.StatusConflict)
		rWantErr(t, a, a.admin, "DELETE", "/api/roles/"+adm.ID, nil, http.StatusConflict)
		if got := rGetRole(t, a, adm.ID); got.Name != admin.RoleAdmin || !slices.Equal(rPermIDs(got.Permissions), rPermIDs(adm.Permissions)) {
			t.Fatalf("%s changed: %+v, was %+v", admin.RoleAdmin, got, adm)
		}
		a.must("GET", "/api/listUsers", nil, http.StatusOK, nil) // the admin still may

		// A user's own role is named after the user.
		rWantErr(t, a, a.admin, "PUT", "/api/roles/"+hildaRole, map[string]any{"name": "hildas-role"}, http.StatusConflict)
		a.must("PUT", "/api/roles/"+hildaRole, map[string]any{"name": "hilda", "isShared": false, "permissions": []rPerm{rMQTTRead}}, http.StatusOK, &up)
		if up.Name != "hilda" || up.IsShared || len(up.Permissions) != 1 {
			t.Fatalf("PUT own role with its own name = %+v", up)
		}
		// ... and belongs to that user alone: it cannot be shared.
		rWantErr(t, a, a.admin, "PUT", "/api/roles/"+hildaRole, map[string]any{"isShared": true}, http.StatusConflict)
		if got := rGetRole(t, a, hildaRole); got.IsShared {
			t.Fatalf("a user's own role became shared: %+v", got)
		}

		// Roles held by a user cannot be deleted; the user's own role
		// neither.
		rCreateUser(t, a, "ivan", []string{ro.ID})
		rWantErr(t, a, a.admin, "DELETE", "/api/roles/"+ro.ID, nil, http.StatusConflict)
		rWantErr(t, a, a.admin, "DELETE", "/api/roles/"+hildaRole, nil, http.StatusConflict)
		minimum := rRoleByName(t, a, admin.RoleMinimum)
		rCreateUser(t, a, "judy", []string{minimum.ID})
		rWantErr(t, a, a.admin, "DELETE", "/api/roles/"+minimum.ID, nil, http.StatusConflict)
		rGetRole(t, a, ro.ID)
		rGetRole(t, a, hildaRole)
		rGetRole(t, a, minimum.ID)

		// An unheld role is deleted, and then gone.
		code, b = a.do("DELETE", "/api/roles/"+other.ID, a.admin, nil)
		if code != http.StatusOK {
			t.Fatalf("DELETE an unheld role: %d %s", code, b)
		}
		for _, m := range []string{"GET", "PUT", "DELETE"} {
			rWantErr(t, a, a.admin, m, "/api/roles/"+other.ID, map[string]any{"name": "x"}, http.StatusNotFound)
		}
		rWantErr(t, a, a.admin, "GET", "/api/roles/"+other.ID+"/permissions", nil, http.StatusNotFound)
		code, b = a.do("GET", "/api/roles?name[eq]=other", a.admin, nil)
		if code != http.StatusOK || strings.TrimSpace(string(b)) != "[]" {
			t.Fatalf("the deleted role is still listed: %d %s", code, b)
		}
		// Its name is free again.
		rCreateRole(t, a, "other", false)
	})
}

func TestRolesPermissions(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, a *api) {
		ro := rCreateRole(t, a, "editors", true, rMQTTRead)
		other := rCreateRole(t, a, "other", true, rMQTTWrite)
		base := "/api/roles/" + ro.ID + "/permissions"

		var list []rPerm
		a.must("GET", base, nil, http.StatusOK, &list)
		if !slices.Equal(list, ro.Permissions) {
			t.Fatalf("GET %s = %+v, want %+v", base, list, ro.Permissions)
		}
		rWantErr(t, a, a.admin, "GET", "/api/roles/no-such-role/permissions", nil, http.StatusNotFound)
		empty := rCreateRole(t, a, "empty", true)
		code, b := a.do("GET", "/api/roles/"+empty.ID+"/permissions", a.admin, nil)
		if code != http.StatusOK || strings.TrimSpace(string(b)) != "[]" {
			t.Fatalf("permissions of a role without any: %d %s, want []", code, b)
		}

		// POST adds one and answers it with its id.
		code, b = a.do("POST", base, a.admin, rHTTPRead)
		if code != http.StatusCreated {
			t.Fatalf("POST %s: %d %s", base, code, b)
		}
		if got := rKeys(rObject(t, b)); got != "context,id,operation,resource" {
			t.Fatalf("POST answer fields %s: %s", got, b)
		}
		var added rPerm
		if err := json.Unmarshal(b, &added); err != nil {
			t.Fatal(err)
		}
		if added.ID == "" || added.ID == ro.Permissions[0].ID || !added.same(rHTTPRead) {
			t.Fatalf("added %+v", added)
		}
		a.must("GET", base, nil, http.StatusOK, &list)
		if want := []rPerm{ro.Permissions[0], added}; !slices.Equal(list, want) {
			t.Fatalf("after POST: %+v, want %+v", list, want)
		}
		// A client-chosen id is not used.
		var third rPerm
		a.must("POST", base, rPerm{ID: ro.Permissions[0].ID, Resource: "cmd/#", Operation: "readWrite", Context: "mqtt"}, http.StatusCreated, &third)
		if third.ID == "" || third.ID == ro.Permissions[0].ID || third.Resource != "cmd/#" || third.Operation != "readWrite" {
			t.Fatalf("added with a client id: %+v", third)
		}

		// Refused additions.
		rWantErr(t, a, a.admin, "POST", base, rMQTTRead, http.StatusConflict)
		rWantErr(t, a, a.admin, "POST", base, rPerm{ID: "x", Resource: rHTTPRead.Resource, Operation: rHTTPRead.Operation, Context: rHTTPRead.Context}, http.StatusConflict)
		for name, p := range rInvalidPerms {
			code, b := a.do("POST", base, a.admin, p)
			if code != http.StatusBadRequest || errorCode(t, b) != http.StatusBadRequest {
				t.Errorf("%s %+v: status %d, want 400; body %s", name, p, code, b)
			}
		}
		rWantErr(t, a, a.admin, "POST", base, map[string]any{"resource": "a", "operation": "read", "context": "mqtt", "role": "x"}, http.StatusBadRequest)
		rWantErr(t, a, a.admin, "POST", base, "[]", http.StatusBadRequest)
		rWantErr(t, a, a.admin, "POST", "/api/roles/no-such-role/permissions", rMQTTWrite, http.StatusNotFound)
		adm := rRoleByName(t, a, admin.RoleAdmin)
		rWantErr(t, a, a.admin, "POST", "/api/roles/"+adm.ID+"/permissions", rMQTTWrite, http.StatusConflict)
		a.must("GET", base, nil, http.StatusOK, &list)
		if len(list) != 3 {
			t.Fatalf("refused additions changed the role: %+v", list)
		}

		// GET one.
		var got rPerm
		a.must("GET", base+"/"+added.ID, nil, http.StatusOK, &got)
		if got != added {
			t.Fatalf("GET one = %+v, want %+v", got, added)
		}
		rWantErr(t, a, a.admin, "GET", base+"/no-such-permission", nil, http.StatusNotFound)
		rWantErr(t, a, a.admin, "GET", base+"/"+other.Permissions[0].ID, nil, http.StatusNotFound)
		rWantErr(t, a, a.admin, "GET", "/api/roles/no-such-role/permissions/"+added.ID, nil, http.StatusNotFound)

		// PUT changes the fields given and keeps the id.
		a.must("PUT", base+"/"+added.ID, map[string]any{"operation": "readWrite"}, http.StatusOK, &got)
		if want := (rPerm{ID: added.ID, Resource: rHTTPRead.Resource, Operation: "readWrite", Context: "http"}); got != want {
			t.Fatalf("PUT operation = %+v, want %+v", got, want)
		}
		a.must("PUT", base+"/"+added.ID, map[string]any{"resource": "/api/users/#", "operation": "read"}, http.StatusOK, &got)
		if want := (rPerm{ID: added.ID, Resource: "/api/users/#", Operation: "read", Context: "http"}); got != want {
			t.Fatalf("PUT resource = %+v, want %+v", got, want)
		}
		a.must("PUT", base+"/"+added.ID, map[string]any{"resource": "status/#", "context": "mqtt"}, http.StatusOK, &got)
		if want := (rPerm{ID: added.ID, Resource: "status/#", Operation: "read", Context: "mqtt"}); got != want {
			t.Fatalf("PUT context = %+v, want %+v", got, want)
		}
		var again rPerm
		a.must("GET", base+"/"+added.ID, nil, http.StatusOK, &again)
		if again != got {
			t.Fatalf("GET after PUT = %+v, want %+v", again, got)
		}

		// Refused changes leave the role as it was.
		a.must("GET", base, nil, http.StatusOK, &list)
		rWantErr(t, a, a.admin, "PUT", base+"/"+added.ID, map[string]any{"resource": rMQTTRead.Resource}, http.StatusConflict)
		rWantErr(t, a, a.admin, "PUT", base+"/"+added.ID, map[string]any{"resource": "a/#/b"}, http.StatusBadRequest)
		rWantErr(t, a, a.admin, "PUT", base+"/"+added.ID, map[string]any{"context": "http"}, http.StatusBadRequest)
		rWantErr(t, a, a.admin, "PUT", base+"/"+added.ID, map[string]any{"context": "ftp"}, http.StatusBadRequest)
		rWantErr(t, a, a.admin, "PUT", base+"/"+added.ID, map[string]any{"operation": "all"}, http.StatusBadRequest)
		rWantErr(t, a, a.admin, "PUT", base+"/"+added.ID, map[string]any{"operation": "read", "owner": "x"}, http.StatusBadRequest)
		rWantErr(t, a, a.admin, "PUT", base+"/no-such-permission", map[string]any{"operation": "read"}, http.StatusNotFound)
		rWantErr(t, a, a.admin, "PUT", base+"/"+other.Permissions[0].ID, map[string]any{"operation": "read"}, http.StatusNotFound)
		rWantErr(t, a, a.admin, "PUT", "/api/roles/no-such-role/permissions/"+added.ID, map[string]any{"operation": "read"}, http.StatusNotFound)
		rWantErr(t, a, a.admin, "PUT", "/api/roles/"+adm.ID+"/permissions/"+adm.Permissions[0].ID, map[string]any{"operation": "read"}, http.StatusConflict)
		var after []rPerm
		a.must("GET", base, nil, http.StatusOK, &after)
		if !slices.Equal(after, list) {
			t.Fatalf("refused changes changed the role: %+v, was %+v", after, list)
		}

		// DELETE removes one; then it is gone.
		code, b = a.do("DELETE", base+"/"+added.ID, a.admin, nil)
		if code != http.StatusOK {
			t.Fatalf("DELETE a permission: %d %s", code, b)
		}
		rWantErr(t, a, a.admin, "GET", base+"/"+added.ID, nil, http.StatusNotFound)
		rWantErr(t, a, a.admin, "DELETE", base+"/"+added.ID, nil, http.StatusNotFound)
		rWantErr(t, a, a.admin, "PUT", base+"/"+added.ID, map[string]any{"operation": "read"}, http.StatusNotFound)
		rWantErr(t, a, a.admin, "DELETE", base+"/"+other.Permissions[0].ID, nil, http.StatusNotFound)
		rWantErr(t, a, a.admin, "DELETE", "/api/roles/no-such-role/permissions/"+third.ID, nil, http.StatusNotFound)
		rWantErr(t, a, a.admin, "DELETE", "/api/roles/"+adm.ID+"/permissions/"+adm.Permissions[0].ID, nil, http.StatusConflict)
		a.must("GET", base, nil, http.StatusOK, &list)
		if want := []rPerm{ro.Permissions[0], third}; !slices.Equal(list, want) {
			t.Fatalf("after DELETE: %+v, want %+v", list, want)
		}
		if got := rGetRole(t, a, other.ID); !slices.Equal(got.Permissions, other.Permissions) {
			t.Fatalf("the other role changed: %+v", got)
		}
		if got := rGetRole(t, a, adm.ID); !slices.Equal(got.Permissions, adm.Permissions) {
			t.Fatalf("%s changed: %+v", admin.RoleAdmin, got)
		}
		// The deleted permission may be added again.
		a.must("POST", base, rPerm{Resource: "status/#", Operation: "read", Context: "mqtt"}, http.StatusCreated, &got)
		if got.ID == added.ID {
			t.Fatalf("a re-added permission reuses the deleted id %s", got.ID)
		}
	})
}

// TestRolesPermissionEffect: a role's permissions are the holder's, from
// its next request on.
func TestRolesPermissionEffect(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, a *api) {
		viewers := rCreateRole(t, a, "viewers", true)
		rCreateUser(t, a, "dave", []string{viewers.ID})
		dave := a.login("dave", rPassword)
		own := func() []rPerm {
			t.Helper()
			var ps []rPerm
			a.mustAs(dave, "GET", "/api/permissions", nil, http.StatusOK, &ps)
			return ps
		}
		if ps := own(); len(ps) != 0 {
			t.Fatalf("dave's permissions before: %+v", ps)
		}
		rWantErr(t, a, dave, "GET", "/api/listUsers", nil, http.StatusForbidden)

		list := rPerm{Resource: "/api/listUsers", Operation: "read", Context: "http"}
		var p rPerm
		a.must("POST", "/api/roles/"+viewers.ID+"/permissions", list, http.StatusCreated, &p)
		if ps := own(); len(ps) != 1 || ps[0] != p {
			t.Fatalf("dave's permissions after POST: %+v, want [%+v]", ps, p)
		}
		a.mustAs(dave, "GET", "/api/listUsers", nil, http.StatusOK, nil)
		rWantErr(t, a, dave, "POST", "/api/roles", map[string]any{"name": "x", "isShared": true}, http.StatusForbidden)

		// Read only: changing it to write takes GET away.
		a.must("PUT", "/api/roles/"+viewers.ID+"/permissions/"+p.ID, map[string]any{"operation": "write"}, http.StatusOK, nil)
		rWantErr(t, a, dave, "GET", "/api/listUsers", nil, http.StatusForbidden)
		a.must("PUT", "/api/roles/"+viewers.ID+"/permissions/"+p.ID, map[string]any{"operation": "readWrite"}, http.StatusOK, nil)
		a.mustAs(dave, "GET", "/api/listUsers", nil, http.StatusOK, nil)

		a.must("DELETE", "/api/roles/"+viewers.ID+"/permissions/"+p.ID, nil, http.StatusOK, nil)
		if ps := own(); len(ps) != 0 {
			t.Fatalf("dave's permissions after DELETE: %+v", ps)
		}
		rWantErr(t, a, dave, "GET", "/api/listUsers", nil, http.StatusForbidden)

		// PUT /api/roles/{id} with permissions acts the same way.
		a.must("PUT", "/api/roles/"+viewers.ID, map[string]any{"permissions": []rPerm{list}}, http.StatusOK, nil)
		a.mustAs(dave, "GET", "/api/listUsers", nil, http.StatusOK, nil)
		a.must("PUT", "/api/roles/"+viewers.ID, map[string]any{"permissions": []rPerm{}}, http.StatusOK, nil)
		rWantErr(t, a, dave, "GET", "/api/listUsers", nil, http.StatusForbidden)
	})
}

// rEndpoints are the role endpoints, with real IDs.
func rEndpoints(roleID, permID string) [][2]string {
	r := "/api/roles/" + roleID
	return [][2]string{
		{"POST", "/api/roles"}, {"GET", "/api/roles"}, {"GET", "/api/roles/page?pageNumber=1&rowsPerPage=10"},
		{"GET", "/api/roles/names"}, {"GET", r}, {"PUT", r}, {"DELETE", r},
		{"GET", r + "/permissions"}, {"POST", r + "/permissions"},
		{"GET", r + "/permissions/" + permID}, {"PUT", r + "/permissions/" + permID}, {"DELETE", r + "/permissions/" + permID},
	}
}

func TestRolesAuthorization(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, a *api) {
		ro := rCreateRole(t, a, "guarded", true, rMQTTRead)
		minimum := rRoleByName(t, a, admin.RoleMinimum)
		rCreateUser(t, a, "mallory", []string{minimum.ID})
		mallory := a.login("mallory", rPassword)
		body := map[string]any{"name": "taken-over", "resource": "#", "operation": "readWrite", "context": "mqtt"}
		for _, e := range rEndpoints(ro.ID, ro.Permissions[0].ID) {
			rWantErr(t, a, "", e[0], e[1], body, http.StatusUnauthorized)
			rWantErr(t, a, "not-a-token", e[0], e[1], body, http.StatusUnauthorized)
			rWantErr(t, a, mallory, e[0], e[1], body, http.StatusForbidden)
		}
		// A logged-out token is refused.
		gone := a.login("mallory", rPassword)
		a.mustAs("", "POST", "/api/logout", map[string]any{"token": gone}, http.StatusOK, nil)
		rWantErr(t, a, gone, "GET", "/api/roles", nil, http.StatusUnauthorized)

		// Read access to /api/roles/# allows GET on roles, nothing else.
		rCreateUser(t, a, "reader", nil, rHTTPRead)
		reader := a.login("reader", rPassword)
		for _, p := range []string{"/api/roles", "/api/roles/names", "/api/roles/" + ro.ID, "/api/roles/" + ro.ID + "/permissions",
			"/api/roles/" + ro.ID + "/permissions/" + ro.Permissions[0].ID, "/api/roles/page?pageNumber=1&rowsPerPage=5"} {
			a.mustAs(reader, "GET", p, nil, http.StatusOK, nil)
		}
		rWantErr(t, a, reader, "POST", "/api/roles", map[string]any{"name": "x", "isShared": true}, http.StatusForbidden)
		rWantErr(t, a, reader, "PUT", "/api/roles/"+ro.ID, map[string]any{"name": "x"}, http.StatusForbidden)
		rWantErr(t, a, reader, "DELETE", "/api/roles/"+ro.ID, nil, http.StatusForbidden)
		rWantErr(t, a, reader, "POST", "/api/roles/"+ro.ID+"/permissions", rMQTTWrite, http.StatusForbidden)
		rWantErr(t, a, reader, "DELETE", "/api/roles/"+ro.ID+"/permissions/"+ro.Permissions[0].ID, nil, http.StatusForbidden)
		rWantErr(t, a, reader, "GET", "/api/permissions/ids", nil, http.StatusForbidden)

		// Nothing was changed by the refused requests.
		if got := rGetRole(t, a, ro.ID); got.Name != "guarded" || !slices.Equal(got.Permissions, ro.Permissions) {
			t.Fatalf("role changed by refused requests: %+v", got)
		}
		var names []rRole
		a.must("GET", "/api/roles?name[eq]=taken-over", nil, http.StatusOK, &names)
		if len(names) != 0 {
			t.Fatalf("a refused POST created a role: %+v", names)
		}
	})
}

// TestRolesConcurrentPermissions: additions to one role do not overwrite
// each other, and the duplicate check holds under concurrency.
func TestRolesConcurrentPermissions(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, a *api) {
		const n = 8
		ro := rCreateRole(t, a, "busy", true)
		base := "/api/roles/" + ro.ID + "/permissions"
		post := func(bodies []rPerm) []int {
			codes := make([]int, len(bodies))
			var wg sync.WaitGroup
			for i, p := range bodies {
				body := string(rMarshal(t, p))
				wg.Go(func() {
					req, err := http.NewRequest("POST", a.url+base, strings.NewReader(body))
					if err != nil {
						return
					}
					req.Header.Set("Authorization", "Bearer "+a.admin)
					req.Header.Set("Content-Type", "application/json")
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						return
					}
					_ = resp.Body.Close()
					codes[i] = resp.StatusCode
				})
			}
			wg.Wait()
			return codes
		}

		var distinct []rPerm
		for i := range n {
			distinct = append(distinct, rPerm{Resource: "line/" + strconv.Itoa(i) + "/#", Operation: "read", Context: "mqtt"})
		}
		for i, c := range post(distinct) {
			if c != http.StatusCreated {
				t.Fatalf("concurrent POST %d: status %d, want 201", i, c)
			}
		}
		var list []rPerm
		a.must("GET", base, nil, http.StatusOK, &list)
		if len(list) != n {
			t.Fatalf("%d permissions after %d concurrent additions: %+v", len(list), n, list)
		}

		same := make([]rPerm, n)
		for i := range same {
			same[i] = rMQTTWrite
		}
		created := 0
		for i, c := range post(same) {
			switch c {
			case http.StatusCreated:
				created++
			case http.StatusConflict:
			default:
				t.Fatalf("concurrent POST %d of one permission: status %d, want 201 or 409", i, c)
			}
		}
		a.must("GET", base, nil, http.StatusOK, &list)
		if created != 1 || len(list) != n+1 {
			t.Fatalf("%d of %d concurrent additions of one permission succeeded, role has %d permissions; want 1 and %d", created, n, len(list), n+1)
		}
	})
}
