package admin

import (
	"context"
	"errors"
	"net/http"
	"slices"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/store"
)

// The escalation rule, after Kubernetes RBAC's privilege escalation
// prevention: a caller may create or change a role, grant a role, or give
// a user permissions (a user's own role, initialPermissions, a registry
// confirmation, a batch) only when it holds every permission the result
// grants itself, compared with acl's Grants (same context, an operation
// that includes it, a resource that covers it with placeholders compared
// as written). Kubernetes lets the escalate and bind verbs lift the rule;
// here holding the connectware-admin role does, and only a holder of that
// role may grant it. Removing permissions is always allowed. Every path
// that grants calls grantRule.check; nothing else decides.

// grantRule is the caller's side of the rule, read once per request so
// the check itself reads nothing (it runs inside store transactions,
// which may repeat it).
type grantRule struct {
	exempt bool             // the caller holds connectware-admin
	held   []acl.Permission // the caller's effective permissions
}

// grant is what one change hands out.
type grant struct {
	// roles are given to a user, with all their permissions.
	roles []store.Role
	// perms are given directly: a role's new permission set, a user's
	// own-role permissions or initialPermissions.
	perms []acl.Permission
	// already are the permissions the holders of a changed role held
	// through it before: a permission they keep, or one narrowed within
	// them, grants nothing new.
	already []acl.Permission
}

// grantRuleFor reads the caller's side of the rule.
func (s *Server) grantRuleFor(ctx context.Context, c *caller) (grantRule, error) {
	rid, err := s.adminRoleID(ctx)
	if err != nil {
		return grantRule{}, err
	}
	return grantRule{exempt: rid != "" && slices.Contains(c.user.Roles, rid), held: c.perms}, nil
}

// check refuses (403) a grant of anything the caller does not hold,
// naming the first permission it lacks.
func (g grantRule) check(gr grant) error {
	if g.exempt {
		return nil
	}
	for _, ro := range gr.roles {
		if ro.Name == RoleAdmin {
			return errorf(http.StatusForbidden, "cannot grant role %s: only its holders can", RoleAdmin)
		}
	}
	held := append(slices.Clone(g.held), gr.already...)
	if p, missing := acl.Ungranted(held, gr.perms); missing {
		return errorf(http.StatusForbidden, "cannot grant %s on %s %s : you do not hold it", p.Operation, p.Context, p.Resource)
	}
	for _, ro := range gr.roles {
		if p, missing := acl.Ungranted(g.held, ro.Permissions); missing {
			return errorf(http.StatusForbidden, "cannot grant %s on %s %s : you do not hold it (role %q grants it)",
				p.Operation, p.Context, p.Resource, ro.Name)
		}
	}
	return nil
}

// checkTakeover applies the rule to changing how another user logs in
// (username, password, grant types, certificates, an MFA reset): whoever
// sets those can act as that user, so it must hold everything that user
// holds (Kubernetes treats impersonation the same way).
func (s *Server) checkTakeover(ctx context.Context, g grantRule, c *caller, target store.User) error {
	if g.exempt || target.ID == c.user.ID {
		return nil
	}
	rid, err := s.adminRoleID(ctx)
	if err != nil {
		return err
	}
	if rid != "" && slices.Contains(target.Roles, rid) {
		return errorf(http.StatusForbidden, "cannot change how %q logs in: it holds role %s, and you do not", target.Username, RoleAdmin)
	}
	perms, err := s.effectivePermissions(ctx, target)
	if err != nil {
		return err
	}
	if p, missing := acl.Ungranted(g.held, perms); missing {
		return errorf(http.StatusForbidden, "cannot change how %q logs in: it holds %s on %s %s, and you do not",
			target.Username, p.Operation, p.Context, p.Resource)
	}
	return nil
}

// grantedRoles loads the roles a change gives user uid ("" for a new
// user): 404 naming the first that does not exist, 409 for another
// user's own role. get reads a role from the store or a transaction.
func grantedRoles(get func(id string) (store.Role, error), ids []string, uid string) ([]store.Role, error) {
	out := make([]store.Role, 0, len(ids))
	for _, id := range ids {
		ro, err := get(id)
		if errors.Is(err, store.ErrNotFound) {
			return nil, errorf(http.StatusNotFound, "role %q does not exist", id)
		}
		if err != nil {
			return nil, err
		}
		if ownedByOther(ro, uid) {
			return nil, errorf(http.StatusConflict, "role %q belongs to another user", ro.Name)
		}
		out = append(out, ro)
	}
	return out, nil
}

// newRoles returns the roles of granted that held does not list.
func newRoles(granted []store.Role, held []string) []store.Role {
	var out []store.Role
	for _, ro := range granted {
		if !slices.Contains(held, ro.ID) {
			out = append(out, ro)
		}
	}
	return out
}
