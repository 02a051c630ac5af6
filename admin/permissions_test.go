package admin_test

import (
	"cmp"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/warden-mqtt/warden/admin"
)

// rUsage is a usage row of GET /api/permissions/page.
type rUsage struct {
	RoleName     string  `json:"roleName"`
	RoleID       string  `json:"roleId"`
	IsRoleShared bool    `json:"isRoleShared"`
	Username     *string `json:"username"`
	UserID       *string `json:"userId"`
	Operation    string  `json:"operation"`
}

// rGroup is a row of GET /api/permissions/page.
type rGroup struct {
	Resource string   `json:"resource"`
	Context  string   `json:"context"`
	Usage    []rUsage `json:"usage"`
}

// rIDs is an entry of GET /api/permissions/ids.
type rIDs struct {
	Resource  string   `json:"resource"`
	Operation string   `json:"operation"`
	Context   string   `json:"context"`
	IDs       []string `json:"ids"`
}

// rPermPage fetches GET /api/permissions/page?q, checks the field names
// of every row and usage, and returns the rows and the pagination block.
func rPermPage(t *testing.T, a *api, q string) ([]rGroup, map[string]any) {
	t.Helper()
	code, b := a.do("GET", "/api/permissions/page?"+q, a.admin, nil)
	if code != http.StatusOK {
		t.Fatalf("GET /api/permissions/page?%s: %d %s", q, code, b)
	}
	var raw rPage
	if err := json.Unmarshal(b, &raw); err != nil || raw.Permissions == nil || raw.Pagination == nil {
		t.Fatalf("GET /api/permissions/page?%s: want permissions and pagination: %s", q, b)
	}
	for _, g := range raw.Permissions {
		if got := rKeys(g); got != "context,resource,usage" {
			t.Fatalf("permission group fields %s, want context,resource,usage: %s", got, b)
		}
		us, ok := g["usage"].([]any)
		if !ok || len(us) == 0 {
			t.Fatalf("group %v: want a non-empty usage array", g)
		}
		for _, u := range us {
			if got := rKeys(u.(map[string]any)); got != "isRoleShared,operation,roleId,roleName,userId,username" {
				t.Fatalf("usage fields %s, want isRoleShared,operation,roleId,roleName,userId,username: %s", got, b)
			}
		}
	}
	var out []rGroup
	if err := json.Unmarshal(rMarshal(t, raw.Permissions), &out); err != nil {
		t.Fatal(err)
	}
	for i := range out {
		slices.SortFunc(out[i].Usage, func(x, y rUsage) int { return cmp.Compare(x.RoleName, y.RoleName) })
	}
	return out, raw.Pagination
}

// rGroupOf returns the group of resource and context, or nil.
func rGroupOf(groups []rGroup, resource, context string) *rGroup {
	for i, g := range groups {
		if g.Resource == resource && g.Context == context {
			return &groups[i]
		}
	}
	return nil
}

func rStr(s string) *string { return &s }

func rSameUsage(x, y rUsage) bool {
	return x.RoleName == y.RoleName && x.RoleID == y.RoleID && x.IsRoleShared == y.IsRoleShared &&
		x.Operation == y.Operation && rEqPtr(x.Username, y.Username) && rEqPtr(x.UserID, y.UserID)
}

func rEqPtr(x, y *string) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }

func rShowUsage(us []rUsage) string {
	var b strings.Builder
	for _, u := range us {
		show := func(p *string) string {
			if p == nil {
				return "null"
			}
			return *p
		}
		b.WriteString(u.RoleName + "/" + u.RoleID + "/" + u.Operation + "/shared=" + map[bool]string{true: "t", false: "f"}[u.IsRoleShared] +
			"/user=" + show(u.Username) + "/" + show(u.UserID) + " ")
	}
	return b.String()
}

func TestPermissionsPage(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, a *api) {
		for _, q := range []string{"", "?pageNumber=1", "?rowsPerPage=5", "?pageNumber=1&rowsPerPage=51",
			"?pageNumber=1&rowsPerPage=0", "?pageNumber=0&rowsPerPage=5", "?pageNumber=-1&rowsPerPage=5", "?pageNumber=1&rowsPerPage=x"} {
			rWantErr(t, a, a.admin, "GET", "/api/permissions/page"+q, nil, http.StatusBadRequest)
		}

		lineMQTT := rPerm{Resource: "/line/#", Operation: "read", Context: "mqtt"}
		lineHTTP := rPerm{Resource: "/line/#", Operation: "write", Context: "http"}
		ops := rCreateRole(t, a, "line-ops", true, lineMQTT, lineHTTP)
		private := rCreateRole(t, a, "private-ops", false, rPerm{Resource: "/line/#", Operation: "readWrite", Context: "mqtt"})
		carolID, carolRole := rCreateUser(t, a, "carol", []string{ops.ID}, rPerm{Resource: "/line/#", Operation: "write", Context: "mqtt"})
		adm := rRoleByName(t, a, admin.RoleAdmin)
		minimum := rRoleByName(t, a, admin.RoleMinimum)
		carol := rGetRole(t, a, carolRole)

		all, p := rPermPage(t, a, "pageNumber=1&rowsPerPage=50")
		rPagination(t, p, 1, 5, 5, 1, 0, 50)
		var keys []string
		for _, g := range all {
			keys = append(keys, g.Resource+" "+g.Context)
		}
		if want := []string{"# mqtt", "/# http", "/api/session http", "/line/# http", "/line/# mqtt"}; !slices.Equal(keys, want) {
			t.Fatalf("groups %q, want %q", keys, want)
		}
		want := map[string][]rUsage{
			"# mqtt":            {{RoleName: admin.RoleAdmin, RoleID: adm.ID, IsRoleShared: true, Operation: "readWrite"}},
			"/# http":           {{RoleName: admin.RoleAdmin, RoleID: adm.ID, IsRoleShared: true, Operation: "readWrite"}},
			"/api/session http": {{RoleName: admin.RoleMinimum, RoleID: minimum.ID, IsRoleShared: true, Operation: "read"}},
			"/line/# http":      {{RoleName: "line-ops", RoleID: ops.ID, IsRoleShared: true, Operation: "write"}},
			"/line/# mqtt": {
				// A user's own role names its user; other roles, shared or
				// not, have username and userId null.
				{RoleName: "carol", RoleID: carolRole, IsRoleShared: false, Operation: "write", Username: rStr("carol"), UserID: rStr(carolID)},
				{RoleName: "line-ops", RoleID: ops.ID, IsRoleShared: true, Operation: "read"},
				{RoleName: "private-ops", RoleID: private.ID, IsRoleShared: false, Operation: "readWrite"},
			},
		}
		for i, g := range all {
			w := want[keys[i]]
			if !slices.EqualFunc(g.Usage, w, rSameUsage) {
				t.Errorf("%s: usage %s, want %s", keys[i], rShowUsage(g.Usage), rShowUsage(w))
			}
		}
		// null, not absent, for shared roles.
		code, b := a.do("GET", "/api/permissions/page?pageNumber=1&rowsPerPage=1", a.admin, nil)
		if code != http.StatusOK || !strings.Contains(string(b), `"username":null`) || !strings.Contains(string(b), `"userId":null`) {
			t.Fatalf("first page: %d %s, want username and userId null", code, b)
		}

		// Pagination: 5 groups, 2 per page.
		var paged []rGroup
		for n, wantP := range []func(map[string]any){
			func(p map[string]any) { rPagination(t, p, 3, 5, 2, 1, 2, 2) },
			func(p map[string]any) { rPagination(t, p, 3, 5, 2, 2, 3, 2) },
			func(p map[string]any) { rPagination(t, p, 3, 5, 1, 3, 0, 2) },
			func(p map[string]any) { rPagination(t, p, 3, 5, 0, 4, 0, 2) },
		} {
			gs, p := rPermPage(t, a, "rowsPerPage=2&pageNumber="+strconv.Itoa(n+1))
			wantP(p)
			paged = append(paged, gs...)
		}
		if !slices.EqualFunc(paged, all, func(x, y rGroup) bool {
			return x.Resource == y.Resource && x.Context == y.Context && slices.EqualFunc(x.Usage, y.Usage, rSameUsage)
		}) {
			t.Fatalf("pages of 2 differ from one page of 50: %+v", paged)
		}

		// ids restricts the page to those permissions.
		gs, p := rPermPage(t, a, "pageNumber=1&rowsPerPage=10&ids="+carol.Permissions[0].ID)
		rPagination(t, p, 1, 1, 1, 1, 0, 10)
		if len(gs) != 1 || gs[0].Resource != "/line/#" || gs[0].Context != "mqtt" || len(gs[0].Usage) != 1 ||
			!rSameUsage(gs[0].Usage[0], want["/line/# mqtt"][0]) {
			t.Fatalf("ids=carol's permission: %+v", gs)
		}
		for _, q := range []string{
			"ids=" + ops.Permissions[0].ID + "&ids[]=" + ops.Permissions[1].ID + "&ids=" + adm.Permissions[1].ID,
			"ids=" + ops.Permissions[0].ID + "&ids=" + ops.Permissions[1].ID + "&ids=" + adm.Permissions[1].ID,
			"ids[]=" + ops.Permissions[0].ID + "&ids[]=" + ops.Permissions[1].ID + "&ids[]=" + adm.Permissions[1].ID,
		} {
			gs, p := rPermPage(t, a, "pageNumber=1&rowsPerPage=10&"+q)
			rPagination(t, p, 1, 3, 3, 1, 0, 10)
			var got []string
			for _, g := range gs {
				for _, u := range g.Usage {
					got = append(got, g.Resource+" "+g.Context+" "+u.RoleName+" "+u.Operation)
				}
			}
			if w := []string{"# mqtt " + admin.RoleAdmin + " readWrite", "/line/# http line-ops write", "/line/# mqtt line-ops read"}; !slices.Equal(got, w) {
				t.Errorf("%s: %q, want %q", q, got, w)
			}
		}
		gs, p = rPermPage(t, a, "pageNumber=1&rowsPerPage=10&ids=no-such-permission")
		rPagination(t, p, 0, 0, 0, 1, 0, 10)
		if len(gs) != 0 {
			t.Fatalf("ids=unknown: %+v", gs)
		}

		// The page follows changes: a deleted permission and a deleted
		// user's own role are gone.
		a.must("DELETE", "/api/roles/"+ops.ID+"/permissions/"+ops.Permissions[1].ID, nil, http.StatusOK, nil)
		a.must("DELETE", "/api/users/"+carolID, nil, http.StatusOK, nil)
		all, p = rPermPage(t, a, "pageNumber=1&rowsPerPage=50")
		rPagination(t, p, 1, 4, 4, 1, 0, 50)
		if rGroupOf(all, "/line/#", "http") != nil {
			t.Fatalf("the deleted permission is still listed: %+v", all)
		}
		g := rGroupOf(all, "/line/#", "mqtt")
		if g == nil || !slices.EqualFunc(g.Usage, want["/line/# mqtt"][1:], rSameUsage) {
			t.Fatalf("/line/# mqtt after deleting carol: %+v", g)
		}
	})
}

func TestPermissionsIDs(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, a *api) {
		status := rPerm{Resource: "plant/+/status", Operation: "read", Context: "mqtt"}
		r1 := rCreateRole(t, a, "r1", true, status, rPerm{Resource: "/x", Operation: "read", Context: "mqtt"})
		r2 := rCreateRole(t, a, "r2", false, status, rPerm{Resource: "/x", Operation: "read", Context: "http"})
		r3 := rCreateRole(t, a, "r3", true, rPerm{Resource: "plant/+/status", Operation: "write", Context: "mqtt"})
		_, kimRole := rCreateUser(t, a, "kim", []string{r1.ID}, status)
		kim := rGetRole(t, a, kimRole)

		get := func() []rIDs {
			t.Helper()
			code, b := a.do("GET", "/api/permissions/ids", a.admin, nil)
			if code != http.StatusOK {
				t.Fatalf("GET /api/permissions/ids: %d %s", code, b)
			}
			var raw []map[string]any
			if err := json.Unmarshal(b, &raw); err != nil {
				t.Fatalf("GET /api/permissions/ids: %s", b)
			}
			for _, e := range raw {
				if got := rKeys(e); got != "context,ids,operation,resource" {
					t.Fatalf("entry fields %s, want context,ids,operation,resource: %s", got, b)
				}
			}
			var out []rIDs
			if err := json.Unmarshal(b, &out); err != nil {
				t.Fatal(err)
			}
			for i := range out {
				slices.Sort(out[i].IDs)
			}
			return out
		}
		entry := func(es []rIDs, p rPerm) *rIDs {
			for i, e := range es {
				if e.Resource == p.Resource && e.Operation == p.Operation && e.Context == p.Context {
					return &es[i]
				}
			}
			return nil
		}
		sorted := func(ids ...string) []string { slices.Sort(ids); return ids }

		es := get()
		// One entry per resource, operation and context, holding the ids of
		// every role's permission: three roles declare status.
		if e := entry(es, status); e == nil || !slices.Equal(e.IDs, sorted(r1.Permissions[0].ID, r2.Permissions[0].ID, kim.Permissions[0].ID)) {
			t.Fatalf("entry of %+v = %+v, want the ids of r1, r2 and kim", status, e)
		}
		if e := entry(es, r3.Permissions[0]); e == nil || !slices.Equal(e.IDs, []string{r3.Permissions[0].ID}) {
			t.Fatalf("another operation is another entry: %+v", e)
		}
		if e := entry(es, r1.Permissions[1]); e == nil || !slices.Equal(e.IDs, []string{r1.Permissions[1].ID}) {
			t.Fatalf("/x mqtt: %+v", e)
		}
		if e := entry(es, r2.Permissions[1]); e == nil || !slices.Equal(e.IDs, []string{r2.Permissions[1].ID}) {
			t.Fatalf("another context is another entry: %+v", e)
		}
		// Every permission of every role is in exactly one entry.
		var roles []rRole
		a.must("GET", "/api/roles", nil, http.StatusOK, &roles)
		var want, got []string
		for _, ro := range roles {
			want = append(want, rPermIDs(ro.Permissions)...)
		}
		for _, e := range es {
			got = append(got, e.IDs...)
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(got, want) || len(es) != 7 {
			t.Fatalf("%d entries with ids %v, want 7 entries with the ids %v", len(es), got, want)
		}

		// Removing declarations shrinks the entry, then removes it.
		a.must("DELETE", "/api/roles/"+r1.ID+"/permissions/"+r1.Permissions[0].ID, nil, http.StatusOK, nil)
		a.must("PUT", "/api/roles/"+kimRole, map[string]any{"permissions": []rPerm{}}, http.StatusOK, nil)
		if e := entry(get(), status); e == nil || !slices.Equal(e.IDs, []string{r2.Permissions[0].ID}) {
			t.Fatalf("after removing two declarations: %+v", e)
		}
		a.must("DELETE", "/api/roles/"+r2.ID, nil, http.StatusOK, nil)
		if e := entry(get(), status); e != nil {
			t.Fatalf("after deleting the last declaring role: %+v", e)
		}
	})
}

func TestPermissionsAuthorization(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, a *api) {
		minimum := rRoleByName(t, a, admin.RoleMinimum)
		rCreateUser(t, a, "mallory", []string{minimum.ID}, rPerm{Resource: "secret/#", Operation: "read", Context: "mqtt"})
		mallory := a.login("mallory", rPassword)
		for _, p := range []string{"/api/permissions/page?pageNumber=1&rowsPerPage=10", "/api/permissions/ids", "/api/permissions"} {
			rWantErr(t, a, "", "GET", p, nil, http.StatusUnauthorized)
			rWantErr(t, a, "not-a-token", "GET", p, nil, http.StatusUnauthorized)
		}
		rWantErr(t, a, mallory, "GET", "/api/permissions/page?pageNumber=1&rowsPerPage=10", nil, http.StatusForbidden)
		rWantErr(t, a, mallory, "GET", "/api/permissions/ids", nil, http.StatusForbidden)

		// Anyone may read its own permissions: its roles' and its own.
		var own []rPerm
		a.mustAs(mallory, "GET", "/api/permissions", nil, http.StatusOK, &own)
		var got []string
		for _, p := range own {
			if p.ID == "" {
				t.Fatalf("own permission without an id: %+v", p)
			}
			got = append(got, p.Context+" "+p.Operation+" "+p.Resource)
		}
		slices.Sort(got)
		if want := []string{"http read /api/session", "mqtt read secret/#"}; !slices.Equal(got, want) {
			t.Fatalf("mallory's permissions %q, want %q", got, want)
		}

		// Read access to /api/permissions/# opens both lists.
		rCreateUser(t, a, "auditor", nil, rPerm{Resource: "/api/permissions/#", Operation: "read", Context: "http"})
		auditor := a.login("auditor", rPassword)
		a.mustAs(auditor, "GET", "/api/permissions/page?pageNumber=1&rowsPerPage=10", nil, http.StatusOK, nil)
		a.mustAs(auditor, "GET", "/api/permissions/ids", nil, http.StatusOK, nil)
		rWantErr(t, a, auditor, "GET", "/api/roles", nil, http.StatusForbidden)
	})
}
