package admin

import (
	"cmp"
	"net/http"
	"slices"

	"github.com/warden-mqtt/warden/acl"
)

func (s *Server) registerPermissions() {
	s.handle("GET /api/permissions/page", permitted, s.permissionsPage)
	s.handle("GET /api/permissions/ids", permitted, s.permissionIDs)
}

// permissionUsage is one role granting a permission. username and userId
// name the owner of a user's own role and are null for shared roles.
type permissionUsage struct {
	RoleName     string        `json:"roleName"`
	RoleID       string        `json:"roleId"`
	IsRoleShared bool          `json:"isRoleShared"`
	Username     *string       `json:"username"`
	UserID       *string       `json:"userId"`
	Operation    acl.Operation `json:"operation"`
}

// permissionGroup is every grant of one resource in one context.
type permissionGroup struct {
	Resource string            `json:"resource"`
	Context  acl.Context       `json:"context"`
	Usage    []permissionUsage `json:"usage"`
}

// permissionsPage lists permissions grouped by resource and context, with
// the roles (and owners of users' own roles) that grant them; ids limits
// it to the given permission IDs.
func (s *Server) permissionsPage(w http.ResponseWriter, r *http.Request, _ *caller) error {
	page, rows, err := pageParams(r, maxPageRows, maxPageRows, true)
	if err != nil {
		return err
	}
	ids := listQuery(r, "ids")
	roles, err := s.st.Roles(r.Context())
	if err != nil {
		return err
	}
	users, err := s.st.Users(r.Context())
	if err != nil {
		return err
	}
	owners := map[string]string{}
	for _, u := range users {
		owners[u.ID] = u.Username
	}
	groups := map[[2]string]*permissionGroup{}
	for _, ro := range roles {
		for _, p := range ro.Permissions {
			if len(ids) > 0 && !slices.Contains(ids, p.ID) {
				continue
			}
			k := [2]string{p.Resource, string(p.Context)}
			g := groups[k]
			if g == nil {
				g = &permissionGroup{Resource: p.Resource, Context: p.Context}
				groups[k] = g
			}
			use := permissionUsage{RoleName: ro.Name, RoleID: ro.ID, IsRoleShared: ro.IsShared, Operation: p.Operation}
			if name, ok := owners[ro.OwnerID]; ok && ro.OwnerID != "" {
				uid := ro.OwnerID
				use.Username, use.UserID = &name, &uid
			}
			g.Usage = append(g.Usage, use)
		}
	}
	list := make([]permissionGroup, 0, len(groups))
	for _, g := range groups {
		list = append(list, *g)
	}
	slices.SortFunc(list, func(a, b permissionGroup) int {
		return cmp.Or(cmp.Compare(a.Resource, b.Resource), cmp.Compare(a.Context, b.Context))
	})
	from, to, p := paginate(len(list), page, rows)
	writeJSON(w, http.StatusOK, struct {
		Permissions []permissionGroup `json:"permissions"`
		Pagination  pagination        `json:"pagination"`
	}{list[from:to], p})
	return nil
}

type permissionIDs struct {
	Resource  string        `json:"resource"`
	Operation acl.Operation `json:"operation"`
	Context   acl.Context   `json:"context"`
	IDs       []string      `json:"ids"`
}

// permissionIDs aggregates permission IDs by resource, operation and
// context across all roles.
func (s *Server) permissionIDs(w http.ResponseWriter, r *http.Request, _ *caller) error {
	roles, err := s.st.Roles(r.Context())
	if err != nil {
		return err
	}
	byKey := map[[3]string]*permissionIDs{}
	var keys [][3]string
	for _, ro := range roles {
		for _, p := range ro.Permissions {
			k := permKey(p)
			e := byKey[k]
			if e == nil {
				e = &permissionIDs{Resource: p.Resource, Operation: p.Operation, Context: p.Context}
				byKey[k] = e
				keys = append(keys, k)
			}
			e.IDs = append(e.IDs, p.ID)
		}
	}
	slices.SortFunc(keys, func(a, b [3]string) int {
		return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[2], b[2]), cmp.Compare(a[1], b[1]))
	})
	out := make([]permissionIDs, 0, len(keys))
	for _, k := range keys {
		out = append(out, *byKey[k])
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
