package account_test

import (
	"strings"
	"testing"

	"github.com/warden-mqtt/warden/account"
	"github.com/warden-mqtt/warden/acl"
)

// ops creates the user "ops", which may use the whole API and plant1's
// topics but does not hold RoleAdmin, and returns it as an actor.
func (f *fixture) ops() account.Actor {
	return f.actor(f.user("ops", nil, httpPerm("/api/#", acl.OpReadWrite), mqttPerm("plant1/#", acl.OpReadWrite)))
}

// TestNoPrivilegeEscalation: an actor that does not hold RoleAdmin gives
// (to a role, a user, a registry grant) only permissions it holds, never
// RoleAdmin; narrowing what it gave is always allowed. The refusal names
// the first permission it lacks.
func TestNoPrivilegeEscalation(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		ctx := t.Context()
		ops := f.ops()
		device := f.user("device", nil, mqttPerm("plant1/in", acl.OpRead))
		within := []acl.Permission{mqttPerm("plant1/out", acl.OpWrite)}
		beyond := []acl.Permission{mqttPerm("plant2/#", acl.OpRead)}
		const lacks = "cannot grant read on mqtt plant2/# : you do not hold it"

		role, err := f.svc.CreateRole(ctx, ops, account.NewRole{Name: "within", Permissions: within})
		wantErr(t, "a role within the actor's permissions", err, nil, "")
		_, err = f.svc.CreateRole(ctx, ops, account.NewRole{Name: "beyond", Permissions: beyond})
		wantErr(t, "a role beyond them", err, account.ErrForbidden, lacks)
		_, err = f.svc.AddPermission(ctx, ops, role.ID, beyond[0])
		wantErr(t, "adding a permission beyond them", err, account.ErrForbidden, lacks)
		_, err = f.svc.UpdateRole(ctx, ops, role.ID, account.RoleUpdate{Permissions: []acl.Permission{}})
		wantErr(t, "emptying the role", err, nil, "")

		_, err = f.svc.CreateUser(ctx, ops, account.NewUser{Username: "new", InitialPermissions: beyond})
		wantErr(t, "a user with initial permissions beyond them", err, account.ErrForbidden, lacks)
		_, err = f.svc.UpdateUser(ctx, ops, device.ID, account.UserUpdate{Permissions: beyond})
		wantErr(t, "a user's own permissions beyond them", err, account.ErrForbidden, lacks)
		_, err = f.svc.UpdateUser(ctx, ops, device.ID, account.UserUpdate{Permissions: within})
		wantErr(t, "a user's own permissions within them", err, nil, "")
		_, err = f.svc.CheckGrant(ctx, ops, account.Grant{Permissions: beyond})
		wantErr(t, "a registry grant beyond them", err, account.ErrForbidden, lacks)

		wantErr(t, "granting RoleAdmin", f.svc.AddRole(ctx, ops, device.ID, f.adminRole.ID), account.ErrForbidden,
			"cannot grant role connectware-admin: only its holders can")
		_, err = f.svc.UpdateUser(ctx, ops, device.ID, account.UserUpdate{Roles: []string{f.adminRole.ID}})
		wantErr(t, "granting RoleAdmin through the user's roles", err, account.ErrForbidden, "")
		wantErr(t, "RoleAdmin granting RoleAdmin", f.svc.AddRole(ctx, f.admin, device.ID, f.adminRole.ID), nil, "")

		wantErr(t, "an admin-only action", f.svc.RequireAdmin(ctx, ops, "restore a backup"), account.ErrForbidden,
			"only a holder of connectware-admin may restore a backup")
		wantErr(t, "an admin-only action by an admin", f.svc.RequireAdmin(ctx, f.admin, "restore a backup"), nil, "")
	})
}

// TestTakeoverAndRename: changing how another user logs in takes
// everything that user holds; renaming a user whose permissions use
// {username} takes RoleAdmin. Both are checked on the store's view inside
// the change's transaction.
func TestTakeoverAndRename(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		ctx := t.Context()
		ops := f.ops()
		small := f.user("small", nil, mqttPerm("plant1/a", acl.OpRead))
		big := f.user("big", nil, mqttPerm("plant2/a", acl.OpRead))
		placeholder := f.user("placeholder", nil, mqttPerm("devices/{username}/#", acl.OpRead))
		pw, name := "another-password-1", "renamed"

		_, err := f.svc.UpdateUser(ctx, ops, small.ID, account.UserUpdate{Password: &pw})
		wantErr(t, "a new password for a user holding less", err, nil, "")
		_, err = f.svc.UpdateUser(ctx, ops, big.ID, account.UserUpdate{Password: &pw})
		wantErr(t, "a new password for a user holding more", err, account.ErrForbidden,
			`cannot change how "big" logs in: it holds read on mqtt plant2/a, and you do not`)
		_, err = f.svc.UpdateUser(ctx, ops, f.admin.User.ID, account.UserUpdate{Password: &pw})
		wantErr(t, "a new password for an admin", err, account.ErrForbidden,
			`cannot change how "admin" logs in: it holds role connectware-admin, and you do not`)
		_, err = f.svc.UpdateUser(ctx, ops, ops.User.ID, account.UserUpdate{Password: &pw})
		wantErr(t, "the actor's own new password", err, nil, "")
		wantErr(t, "a certificate for a user holding more", f.svc.AddCertificate(ctx, ops, big.ID, strings.Repeat("ab", 32)),
			account.ErrForbidden, "")
		wantErr(t, "CheckTakeover of a user holding more", f.svc.CheckTakeover(ctx, ops, big), account.ErrForbidden, "")

		_, err = f.svc.UpdateUser(ctx, ops, placeholder.ID, account.UserUpdate{Username: &name})
		wantErr(t, "renaming a user whose permissions use {username}", err, account.ErrForbidden, "")
		if !strings.Contains(err.Error(), "devices/{username}/#") {
			t.Errorf("the refusal %q does not name the permission that uses {username}", err)
		}
		u, err := f.svc.UpdateUser(ctx, f.admin, placeholder.ID, account.UserUpdate{Username: &name})
		wantErr(t, "an admin renaming it", err, nil, "")
		if u.Username != name || f.ownRoleOf(u) == "" {
			t.Fatalf("renamed user %+v, want %q with its own role renamed", u, name)
		}
	})
}

// TestMissingRoleNamesIDsOnlyToRoleReaders: a role name sent where an ID
// goes is answered with that role's ID only to an actor that may read
// roles; to others the answer is the one for any missing role.
func TestMissingRoleNamesIDsOnlyToRoleReaders(t *testing.T) {
	f := boltFixture(t)
	ctx := t.Context()
	id := f.sharedRole("readers")
	target := f.user("target", nil)
	reader := f.actor(f.user("reader", nil, httpPerm("/api/#", acl.OpReadWrite), mqttPerm("#", acl.OpRead)))
	writer := f.actor(f.user("writer", nil, httpPerm("/api/users/#", acl.OpReadWrite), mqttPerm("#", acl.OpRead)))
	for _, tc := range []struct {
		name  string
		actor account.Actor
		msg   string
	}{
		{"a role reader learns the ID", reader, "roleId takes a role ID (see GET /api/roles); the role named \"readers\" has ID " + id},
		{"anyone else learns nothing", writer, "role not found"},
	} {
		wantErr(t, tc.name, f.svc.AddRole(ctx, tc.actor, target.ID, "readers"), account.ErrNotFound, tc.msg)
	}
	_, err := f.svc.CreateUser(ctx, reader, account.NewUser{Username: "fresh", Roles: []string{"readers"}})
	wantErr(t, "a role name in a new user's roles", err, account.ErrNotFound,
		"roles takes role IDs (see GET /api/roles); the role named \"readers\" has ID "+id)
}
