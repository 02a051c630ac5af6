package account

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/store"
)

// The escalation rule, after Kubernetes RBAC's privilege escalation
// prevention: an actor may create or change a role, grant a role, or give
// a user permissions (a user's own role, initialPermissions, a registry
// confirmation, a batch) only when it holds every permission the result
// grants itself, compared with acl's Grants (same context, an operation
// that includes it, a resource that covers it with placeholders compared
// as written). Kubernetes lets the escalate and bind verbs lift the rule;
// here holding RoleAdmin does, and only a holder of that role may grant
// it. Removing permissions is always allowed. Every path that grants
// calls grantRule.check; nothing else decides. Changing how another user
// logs in (checkTakeover) and renaming a user whose permissions use
// {username} (checkRename) grant too, and so does linking a role to a
// directory group, which grants the role to the group's members
// (linksGrant); restoring a backup, a backup's keys
// and trusting a CA grant everything, so only holders of RoleAdmin may
// (RequireAdmin).

// grantRule is the actor's side of the rule, read once per change so the
// check itself reads nothing (it runs inside store transactions, which
// may repeat it).
type grantRule struct {
	exempt    bool             // the actor holds RoleAdmin
	adminRole string           // the ID of RoleAdmin ("" if missing)
	held      []acl.Permission // the actor's effective permissions
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

// ruleFor reads a's side of the rule.
func (s *Service) ruleFor(ctx context.Context, a Actor) (grantRule, error) {
	rid, err := s.adminRoleID(ctx)
	if err != nil {
		return grantRule{}, err
	}
	// RoleAdmin given by the directory is held as much as one given by hand.
	return grantRule{exempt: rid != "" && slices.Contains(a.User.EffectiveRoles(), rid), adminRole: rid, held: a.Permissions}, nil
}

// RequireAdmin refuses (ErrForbidden) an actor that does not hold
// RoleAdmin (the rule's exempt actor) the action named by what: actions
// that no permission check can bound, because they hand out everything
// at once (a restore sets every user and role; the key material of a
// backup signs any token; a trusted CA vouches for any certificate name).
func (s *Service) RequireAdmin(ctx context.Context, a Actor, what string) error {
	g, err := s.ruleFor(ctx, a)
	if err != nil {
		return err
	}
	if !g.exempt {
		return errorf(ErrForbidden, "only a holder of %s may %s", RoleAdmin, what)
	}
	return nil
}

// check refuses (ErrForbidden) a grant of anything the actor does not
// hold, naming the first permission it lacks.
func (g grantRule) check(gr grant) error {
	if g.exempt {
		return nil
	}
	for _, ro := range gr.roles {
		if g.adminRole != "" && ro.ID == g.adminRole {
			return errorf(ErrForbidden, "cannot grant role %s: only its holders can", RoleAdmin)
		}
	}
	held := append(slices.Clone(g.held), gr.already...)
	if p, missing := acl.Ungranted(held, gr.perms); missing {
		return errorf(ErrForbidden, "cannot grant %s on %s %s : you do not hold it", p.Operation, p.Context, p.Resource)
	}
	for _, ro := range gr.roles {
		if p, missing := acl.Ungranted(g.held, ro.Permissions); missing {
			return errorf(ErrForbidden, "cannot grant %s on %s %s : you do not hold it (role %q grants it)",
				p.Operation, p.Context, p.Resource, ro.Name)
		}
	}
	return nil
}

// checkTakeover applies the rule to changing how another user logs in
// (username, password, grant types, certificates, an MFA reset or MFA
// key): whoever sets those can act as that user, so it must hold
// everything that user holds (Kubernetes treats impersonation the same
// way). roles reads from the store or from the transaction that makes
// the change, so the check and the change see the same target.
func checkTakeover(g grantRule, a Actor, target store.User, roles roleReader) error {
	if g.exempt || target.ID == a.User.ID {
		return nil
	}
	if g.adminRole != "" && slices.Contains(target.EffectiveRoles(), g.adminRole) {
		return errorf(ErrForbidden, "cannot change how %q logs in: it holds role %s, and you do not", target.Username, RoleAdmin)
	}
	perms, err := permissionsOf(roles, target)
	if err != nil {
		return err
	}
	if p, missing := acl.Ungranted(g.held, perms); missing {
		return errorf(ErrForbidden, "cannot change how %q logs in: it holds %s on %s %s, and you do not",
			target.Username, p.Operation, p.Context, p.Resource)
	}
	return nil
}

// CheckTakeover refuses (ErrForbidden) a change of how target logs in by
// a, on the store's current roles, unless a holds everything target
// holds (checkTakeover): for changes made outside this package, such as
// an admin deleting another user's MFA key.
func (s *Service) CheckTakeover(ctx context.Context, a Actor, target store.User) error {
	g, err := s.ruleFor(ctx, a)
	if err != nil {
		return err
	}
	return checkTakeover(g, a, target, storeRoles{ctx, s.st})
}

// usernamePlaceholder is acl's placeholder for the user's own name.
const usernamePlaceholder = "{username}"

// checkRename applies the rule to renaming a user whose permissions use
// the {username} placeholder: the new name points them at other topics
// (or paths), those of the user that name stands for, so the rename grants
// what the actor may not hold (plant1/# for a rename to plant1). Only a
// holder of RoleAdmin may. roles reads as in checkTakeover.
func checkRename(g grantRule, target store.User, roles roleReader) error {
	if g.exempt {
		return nil
	}
	perms, err := permissionsOf(roles, target)
	if err != nil {
		return err
	}
	for _, p := range perms {
		if strings.Contains(p.Resource, usernamePlaceholder) {
			return errorf(ErrForbidden, "cannot rename %q: its permission %s on %s %s uses %s, so a new name would reach other resources; only a holder of %s may rename it",
				target.Username, p.Operation, p.Context, p.Resource, usernamePlaceholder, RoleAdmin)
		}
	}
	return nil
}

// grantedRoles loads the roles a change gives user uid ("" for a new
// user): ErrNotFound naming the first that does not exist (and, to an
// actor that may read roles, the ID of a role it names instead:
// missingRole), ErrConflict for another user's own role. roles reads from
// the store or a transaction.
func grantedRoles(roles roleReader, ids []string, uid string, a Actor) ([]store.Role, error) {
	out := make([]store.Role, 0, len(ids))
	for _, id := range ids {
		ro, err := roles.Role(id)
		if errors.Is(err, store.ErrNotFound) {
			return nil, missingRole(roles, a, "roles", id, refusal(ErrNotFound, "role %q does not exist", id))
		}
		if err != nil {
			return nil, err
		}
		if ownedByOther(ro, uid) {
			return nil, errorf(ErrConflict, "role %q belongs to another user", ro.Name)
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

// ownedByOther: ro is the own role of a user other than uid. Roles
// created auto-generated through the API have no owner.
func ownedByOther(ro store.Role, uid string) bool {
	return ro.AutoGenerated && ro.OwnerID != "" && ro.OwnerID != uid
}

// Grant is what a user to be created is given (a registry confirmation).
type Grant struct {
	MQTTPublishPrefix string
	GrantTypes        []store.GrantType
	// Roles are role IDs; empty and repeated ones are dropped.
	Roles []string
	// Permissions are those of the user's own role.
	Permissions []acl.Permission
}

// CheckGrant validates g and applies the escalation rule to it: a may
// give a new user only roles and permissions it holds itself. It returns
// g's roles as they are to be stored (UniqueIDs).
func (s *Service) CheckGrant(ctx context.Context, a Actor, g Grant) ([]string, error) {
	roles := UniqueIDs(g.Roles)
	if err := firstError(validPrefix(g.MQTTPublishPrefix), validGrantTypes(g.GrantTypes), checkPermissions(g.Permissions)); err != nil {
		return nil, err
	}
	granted, err := grantedRoles(storeRoles{ctx, s.st}, roles, "", a)
	if err != nil {
		return nil, err
	}
	rule, err := s.ruleFor(ctx, a)
	if err != nil {
		return nil, err
	}
	if err := rule.check(grant{roles: granted, perms: g.Permissions}); err != nil {
		return nil, err
	}
	return roles, nil
}
