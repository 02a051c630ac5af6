package admin

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"

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
// that grants calls grantRule.check; nothing else decides. Changing how
// another user logs in (checkTakeover) and renaming a user whose
// permissions use {username} (checkRename) grant too; restoring a backup,
// a backup's keys and trusting a CA grant everything, so only holders of
// connectware-admin may (requireAdmin).

// grantRule is the caller's side of the rule, read once per request so
// the check itself reads nothing (it runs inside store transactions,
// which may repeat it).
type grantRule struct {
	exempt    bool             // the caller holds connectware-admin
	adminRole string           // the ID of connectware-admin ("" if missing)
	held      []acl.Permission // the caller's effective permissions
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
	return grantRule{exempt: rid != "" && slices.Contains(c.user.Roles, rid), adminRole: rid, held: c.perms}, nil
}

// requireAdmin refuses (403) a caller that does not hold connectware-admin
// (the rule's exempt caller) the action named by what: actions that no
// permission check can bound, because they hand out everything at once
// (a restore sets every user and role; the key material of a backup
// signs any token; a trusted CA vouches for any certificate name).
func (s *Server) requireAdmin(ctx context.Context, c *caller, what string) error {
	g, err := s.grantRuleFor(ctx, c)
	if err != nil {
		return err
	}
	if !g.exempt {
		return errorf(http.StatusForbidden, "only a holder of %s may %s", RoleAdmin, what)
	}
	return nil
}

// check refuses (403) a grant of anything the caller does not hold,
// naming the first permission it lacks.
func (g grantRule) check(gr grant) error {
	if g.exempt {
		return nil
	}
	for _, ro := range gr.roles {
		if g.adminRole != "" && ro.ID == g.adminRole {
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
// (username, password, grant types, certificates, an MFA reset or MFA
// key): whoever sets those can act as that user, so it must hold
// everything that user holds (Kubernetes treats impersonation the same
// way). role reads a role from the store or from the transaction that
// makes the change, so the check and the change see the same target.
func checkTakeover(g grantRule, c *caller, target store.User, role func(id string) (store.Role, error)) error {
	if g.exempt || target.ID == c.user.ID {
		return nil
	}
	if g.adminRole != "" && slices.Contains(target.Roles, g.adminRole) {
		return errorf(http.StatusForbidden, "cannot change how %q logs in: it holds role %s, and you do not", target.Username, RoleAdmin)
	}
	perms, err := permissionsOf(role, target)
	if err != nil {
		return err
	}
	if p, missing := acl.Ungranted(g.held, perms); missing {
		return errorf(http.StatusForbidden, "cannot change how %q logs in: it holds %s on %s %s, and you do not",
			target.Username, p.Operation, p.Context, p.Resource)
	}
	return nil
}

// checkTakeoverOf is checkTakeover of target by c, on the store's
// current roles, for changes made outside a transaction.
func (s *Server) checkTakeoverOf(ctx context.Context, c *caller, target store.User) error {
	g, err := s.grantRuleFor(ctx, c)
	if err != nil {
		return err
	}
	return checkTakeover(g, c, target, func(id string) (store.Role, error) { return s.st.Role(ctx, id) })
}

// usernamePlaceholder is acl's placeholder for the user's own name.
const usernamePlaceholder = "{username}"

// checkRename applies the rule to renaming a user whose permissions use
// the {username} placeholder: the new name points them at other topics
// (or paths), those of the user that name stands for, so the rename grants
// what the caller may not hold (plant1/# for a rename to plant1). Only a
// holder of connectware-admin may. role reads as in checkTakeover.
func checkRename(g grantRule, target store.User, role func(id string) (store.Role, error)) error {
	if g.exempt {
		return nil
	}
	perms, err := permissionsOf(role, target)
	if err != nil {
		return err
	}
	for _, p := range perms {
		if strings.Contains(p.Resource, usernamePlaceholder) {
			return errorf(http.StatusForbidden, "cannot rename %q: its permission %s on %s %s uses %s, so a new name would reach other resources; only a holder of %s may rename it",
				target.Username, p.Operation, p.Context, p.Resource, usernamePlaceholder, RoleAdmin)
		}
	}
	return nil
}

// grantedRoles loads the roles a change gives user uid ("" for a new
// user): 404 naming the first that does not exist (and, to a caller that
// may read roles (reveal), the ID of a role it names instead:
// missingRole), 409 for another user's own role. roles reads from the
// store or a transaction.
func grantedRoles(roles roleReader, ids []string, uid string, reveal bool) ([]store.Role, error) {
	out := make([]store.Role, 0, len(ids))
	for _, id := range ids {
		ro, err := roles.Role(id)
		if errors.Is(err, store.ErrNotFound) {
			return nil, missingRole(roles, reveal, "roles", id, errorf(http.StatusNotFound, "role %q does not exist", id))
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
