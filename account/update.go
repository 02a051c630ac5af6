package account

import (
	"context"
	"slices"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/store"
)

// UserUpdate is a change of a user: what is nil (or false) stays as it
// is. Its JSON names are the API's (PUT /api/users/{id}).
type UserUpdate struct {
	Username          *string `json:"username"`
	Password          *string `json:"password"`
	MQTTPublishPrefix *string `json:"mqttPublishPrefix"`
	IdentityProvider  *string `json:"identityProvider"`
	// GrantTypes replace the user's.
	GrantTypes []store.GrantType `json:"grantTypes"`
	// Roles replace the user's roles; its own role is kept.
	Roles []string `json:"roles"`
	// Permissions replace the permissions of the user's own role.
	Permissions []acl.Permission `json:"permissions"`
	// DisableMFA, when true, resets the user's MFA (a lost phone).
	DisableMFA           *bool `json:"disableMfa"`
	EnforceMFAEnrollment *bool `json:"enforceMFAEnrollment"`
	Suspended            *bool `json:"suspended"`
	// RevokeApplicationTokens, with password, revokes the user's
	// application tokens too (its login tokens always go).
	RevokeApplicationTokens bool `json:"revokeApplicationTokens"`
}

// userChange is one UpdateUser under way: the request, what it was found
// to do, and the actor's side of the escalation rule.
type userChange struct {
	uid      string // the user's ID
	req      UserUpdate
	actor    Actor
	rule     grantRule
	rename   bool   // the username changes
	takeover bool   // how the user logs in changes (checkTakeover)
	hash     string // the new password's hash; "": unchanged
}

// UpdateUser changes the user id as up says. Everything is one store
// transaction: the user, its own role (renamed with it), the escalation
// rule on what is newly granted, the takeover and rename rules and the
// last-admin rule. A new password ends the user's other sessions
// (endSessions).
func (s *Service) UpdateUser(ctx context.Context, a Actor, id string, up UserUpdate) (store.User, error) {
	c, err := s.planUpdate(ctx, a, id, up)
	if err != nil {
		return store.User{}, err
	}
	var u store.User
	if err := s.atomicKeepingAdmin(ctx, []string{c.uid}, func(tx store.Tx) (err error) {
		u, err = c.apply(tx)
		return err
	}); err != nil {
		return store.User{}, err
	}
	if c.hash != "" {
		if err := s.endSessions(ctx, u, up.RevokeApplicationTokens, ownLoginToken(a, u.ID)); err != nil {
			return store.User{}, err
		}
	}
	s.log.Info("user updated", "user", u.Username, "by", a.User.Username, "password_changed", c.hash != "")
	return u, nil
}

// planUpdate validates up against the user id as read before the
// transaction, applies the rules that need no transaction, reads the
// actor's rule and hashes a new password.
func (s *Service) planUpdate(ctx context.Context, a Actor, id string, up UserUpdate) (*userChange, error) {
	u, err := s.user(ctx, id)
	if err != nil {
		return nil, err
	}
	c := &userChange{uid: u.ID, req: up, actor: a}
	c.rename = up.Username != nil && store.NormalizeUsername(*up.Username) != u.Username
	if err := s.validateUpdate(ctx, u, c); err != nil {
		return nil, err
	}
	if up.Suspended != nil && *up.Suspended && u.ID == a.User.ID {
		return nil, errorf(ErrConflict, "you cannot suspend yourself")
	}
	if c.rule, err = s.ruleFor(ctx, a); err != nil {
		return nil, err
	}
	c.takeover = c.rename || up.Password != nil || up.GrantTypes != nil || (up.DisableMFA != nil && *up.DisableMFA)
	if c.hash, err = s.newPasswordHash(ctx, up); err != nil {
		return nil, err
	}
	return c, nil
}

// validateUpdate checks the fields of c's request: a new username is
// valid and free, the prefix, identity provider, grant types and
// permissions are well formed.
func (s *Service) validateUpdate(ctx context.Context, u store.User, c *userChange) error {
	up := c.req
	if c.rename {
		if err := validUsername(*up.Username); err != nil {
			return err
		}
		if err := s.nameFree(ctx, *up.Username, u.ID); err != nil {
			return err
		}
	}
	if up.MQTTPublishPrefix != nil {
		if err := validPrefix(*up.MQTTPublishPrefix); err != nil {
			return err
		}
	}
	// The provider is never changed through the API; a client that sends
	// the user back as it read it repeats a directory user's "ldap".
	if up.IdentityProvider != nil && *up.IdentityProvider != u.IdentityProvider {
		if err := validIdentityProvider(*up.IdentityProvider); err != nil {
			return err
		}
	}
	if err := validGrantTypes(up.GrantTypes); err != nil {
		return err
	}
	return checkPermissions(up.Permissions)
}

// newPasswordHash hashes up's new password ("" if it sets none); an
// empty password, or revokeApplicationTokens without one, is refused.
func (s *Service) newPasswordHash(ctx context.Context, up UserUpdate) (string, error) {
	if up.Password == nil {
		if up.RevokeApplicationTokens {
			return "", errorf(ErrInvalid, "revokeApplicationTokens goes with a new password")
		}
		return "", nil
	}
	if *up.Password == "" {
		return "", errorf(ErrInvalid, "password must not be empty")
	}
	return s.hashPassword(ctx, *up.Password)
}

// apply makes the change in tx: on the transaction's view, so that the
// user and roles checked are the ones changed. It may run more than once.
func (c *userChange) apply(tx store.Tx) (store.User, error) {
	cur, err := tx.User(c.uid)
	if err != nil {
		return store.User{}, notFound(err, errUserNotFound)
	}
	if err := c.authorize(tx, cur); err != nil {
		return store.User{}, err
	}
	own, err := ownRole(tx, cur)
	if err != nil {
		return store.User{}, err
	}
	if err := c.setOwnPermissions(tx, cur, own); err != nil {
		return store.User{}, err
	}
	roles, err := c.roles(tx, cur, own)
	if err != nil {
		return store.User{}, err
	}
	// The store renames the user's own role with it.
	return tx.UpdateUser(cur.ID, func(x *store.User) error {
		c.set(x, roles)
		return nil
	})
}

// authorize applies the takeover and rename rules to cur.
func (c *userChange) authorize(tx store.Tx, cur store.User) error {
	if c.takeover {
		if err := checkTakeover(c.rule, c.actor, cur, tx); err != nil {
			return err
		}
	}
	if c.rename {
		return checkRename(c.rule, cur, tx)
	}
	return nil
}

// setOwnPermissions replaces the permissions of cur's own role own, if
// the request lists them, with what the actor may grant.
func (c *userChange) setOwnPermissions(tx store.Tx, cur store.User, own *store.Role) error {
	perms := c.req.Permissions
	if perms == nil {
		return nil
	}
	if own == nil {
		return errorf(ErrConflict, "user %q has no role of its own to hold permissions", cur.Username)
	}
	if err := c.rule.check(grant{perms: perms, already: own.Permissions}); err != nil {
		return err
	}
	_, err := tx.UpdateRole(own.ID, func(ro *store.Role) error {
		ro.Permissions = withoutIDs(perms)
		return nil
	})
	return err
}

// roles returns the role IDs cur is to hold (nil: unchanged): the
// request's, each granted role the actor's to give, with cur's own role
// own kept first.
func (c *userChange) roles(tx store.Tx, cur store.User, own *store.Role) ([]string, error) {
	if c.req.Roles == nil {
		return nil, nil
	}
	roles := UniqueIDs(c.req.Roles)
	granted, err := grantedRoles(tx, roles, cur.ID, c.actor)
	if err != nil {
		return nil, err
	}
	if err := c.rule.check(grant{roles: newRoles(granted, cur.Roles)}); err != nil {
		return nil, err
	}
	if own != nil && !slices.Contains(roles, own.ID) {
		roles = append([]string{own.ID}, roles...)
	}
	return roles, nil
}

// set writes the changed fields into x; roles nil keeps x's roles.
func (c *userChange) set(x *store.User, roles []string) {
	up := c.req
	if up.Username != nil {
		x.Username = *up.Username
	}
	if c.hash != "" {
		setPassword(x, c.hash)
	}
	if up.MQTTPublishPrefix != nil {
		x.MQTTPublishPrefix = *up.MQTTPublishPrefix
	}
	if up.GrantTypes != nil {
		x.GrantTypes = up.GrantTypes
	}
	if roles != nil {
		x.Roles = roles
	}
	if up.EnforceMFAEnrollment != nil {
		x.EnforceMFAEnrollment = *up.EnforceMFAEnrollment
	}
	if up.DisableMFA != nil && *up.DisableMFA {
		// An admin's reset (a lost phone): keys, backup codes, trusted
		// devices, a pending login and a lock all go.
		x.MFA = nil
	}
	if up.Suspended != nil {
		x.Suspended = *up.Suspended
	}
}
