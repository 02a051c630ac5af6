package account_test

import (
	"context"
	"slices"
	"testing"

	"github.com/warden-mqtt/warden/account"
	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/store"
)

const (
	opsGroup   = "cn=operators,ou=groups,dc=example,dc=org"
	adminGroup = "cn=admins,ou=groups,dc=example,dc=org"
)

// TestLdapGroupLinksAreGrants: linking a role to a directory group hands
// the role to the group's members, so it follows the rule for granting
// the role: an actor links only a role whose permissions it holds, only
// a holder of RoleAdmin links RoleAdmin, and removing links is always
// allowed. A user's own role is linked to no group.
func TestLdapGroupLinksAreGrants(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		ctx := t.Context()
		ops := f.ops()
		within, err := f.svc.CreateRole(ctx, f.admin, account.NewRole{Name: "within", Permissions: []acl.Permission{mqttPerm("plant1/out", acl.OpWrite)}})
		wantErr(t, "creating a role", err, nil, "")
		beyond, err := f.svc.CreateRole(ctx, f.admin, account.NewRole{Name: "beyond", Permissions: []acl.Permission{mqttPerm("plant2/#", acl.OpRead)}})
		wantErr(t, "creating a role", err, nil, "")
		links := func(dns ...string) account.RoleUpdate { return account.RoleUpdate{LdapGroups: &dns} }

		ro, err := f.svc.UpdateRole(ctx, ops, within.ID, links(opsGroup))
		wantErr(t, "linking a role within the actor's permissions", err, nil, "")
		if !slices.Equal(ro.LdapGroups, []string{opsGroup}) {
			t.Errorf("linked role has ldapGroups %q", ro.LdapGroups)
		}
		_, err = f.svc.UpdateRole(ctx, ops, beyond.ID, links(opsGroup))
		wantErr(t, "linking a role beyond them", err, account.ErrForbidden,
			`cannot grant read on mqtt plant2/# : you do not hold it (role "beyond" grants it)`)
		_, err = f.svc.CreateRole(ctx, ops, account.NewRole{Name: "new-beyond", Permissions: beyond.Permissions, LdapGroups: []string{opsGroup}})
		wantErr(t, "creating a linked role beyond them", err, account.ErrForbidden, "")
		_, err = f.svc.UpdateRole(ctx, ops, f.adminRole.ID, links(adminGroup))
		wantErr(t, "linking RoleAdmin", err, account.ErrForbidden, "cannot grant role connectware-admin: only its holders can")
		_, err = f.svc.UpdateRole(ctx, f.admin, f.adminRole.ID, links(adminGroup))
		wantErr(t, "a holder of RoleAdmin linking it", err, nil, "")

		_, err = f.svc.UpdateRole(ctx, f.admin, beyond.ID, links(opsGroup, adminGroup))
		wantErr(t, "the admin linking the other role", err, nil, "")
		_, err = f.svc.UpdateRole(ctx, ops, beyond.ID, links("CN=Operators, OU=Groups, DC=example, DC=org"))
		wantErr(t, "the actor removing a link (and respelling the other)", err, nil, "")
		_, err = f.svc.UpdateRole(ctx, ops, f.adminRole.ID, links())
		wantErr(t, "the actor removing RoleAdmin's links", err, nil, "")
		if ro, _ := f.st.Role(ctx, f.adminRole.ID); len(ro.LdapGroups) != 0 {
			t.Errorf("RoleAdmin still linked to %q", ro.LdapGroups)
		}

		own := f.user("device", nil, mqttPerm("plant1/in", acl.OpRead))
		_, err = f.svc.UpdateRole(ctx, f.admin, f.ownRoleOf(own), links(opsGroup))
		wantErr(t, "linking a user's own role", err, account.ErrConflict, "a user's own role cannot be linked to directory groups")
	})
}

// TestLdapGroupLinksValidated: every problem with the links is refused as
// invalid, with the field and the position named; nothing is stored.
func TestLdapGroupLinksValidated(t *testing.T) {
	f := boltFixture(t)
	ctx := t.Context()
	ro, err := f.svc.CreateRole(ctx, f.admin, account.NewRole{Name: "linked", LdapGroups: []string{opsGroup}})
	wantErr(t, "a linked role", err, nil, "")
	for _, tc := range []struct {
		name   string
		groups []string
		msg    string
	}{
		{"a name that is no DN", []string{opsGroup, "operators"},
			`ldapGroups[1]: "operators" is not a distinguished name: at byte 9: expected '=' after attribute type "operators"`},
		{"one group twice", []string{opsGroup, "cn=Operators,ou=Groups,dc=example,dc=org"},
			`ldapGroups[1]: "cn=Operators,ou=Groups,dc=example,dc=org" names the same group as ldapGroups[0]`},
	} {
		_, err := f.svc.CreateRole(ctx, f.admin, account.NewRole{Name: "new", LdapGroups: tc.groups})
		wantErr(t, "creating with "+tc.name, err, account.ErrInvalid, tc.msg)
		_, err = f.svc.UpdateRole(ctx, f.admin, ro.ID, account.RoleUpdate{LdapGroups: &tc.groups})
		wantErr(t, "updating with "+tc.name, err, account.ErrInvalid, tc.msg)
	}
	if got, _ := f.st.Role(ctx, ro.ID); !slices.Equal(got.LdapGroups, []string{opsGroup}) {
		t.Errorf("refused updates left links %q", got.LdapGroups)
	}
	// An update that does not mention the links keeps them.
	shared := true
	if got, err := f.svc.UpdateRole(ctx, f.admin, ro.ID, account.RoleUpdate{IsShared: &shared}); err != nil || !slices.Equal(got.LdapGroups, []string{opsGroup}) {
		t.Errorf("update without ldapGroups: links %q, %v; want them kept", got.LdapGroups, err)
	}
}

// TestDirectoryRolesGrantPermissions: the roles the directory gave a user
// (LdapRoles) count in its permissions as the roles given by hand do, and
// RolesByLdapGroups finds the roles a directory user's groups link.
func TestDirectoryRolesGrantPermissions(t *testing.T) {
	f := boltFixture(t)
	ctx := t.Context()
	linked, err := f.svc.CreateRole(ctx, f.admin, account.NewRole{Name: "linked", IsShared: true,
		Permissions: []acl.Permission{mqttPerm("plant3/#", acl.OpRead)}, LdapGroups: []string{opsGroup}})
	wantErr(t, "a linked role", err, nil, "")
	f.sharedRole("unlinked")
	u := f.user("dora", nil)
	roles, err := f.svc.RolesByLdapGroups(ctx, []string{"CN=operators,OU=groups,DC=example,DC=org", "cn=other,dc=example,dc=org"})
	if err != nil || len(roles) != 1 || roles[0].ID != linked.ID {
		t.Fatalf("RolesByLdapGroups = %+v, %v; want only role linked", roles, err)
	}
	if _, err := f.st.UpdateUser(ctx, u.ID, func(x *store.User) error { x.LdapRoles = []string{linked.ID}; return nil }); err != nil {
		t.Fatal(err)
	}
	a := f.actor(u)
	if p, missing := acl.Ungranted(a.Permissions, []acl.Permission{mqttPerm("plant3/a", acl.OpRead)}); missing {
		t.Errorf("a user given role linked by the directory lacks %+v", p)
	}
	// Holding RoleAdmin through the directory makes the user an admin for
	// the grant rule too.
	if _, err := f.st.UpdateUser(ctx, u.ID, func(x *store.User) error {
		x.LdapRoles = []string{linked.ID, f.adminRole.ID}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "a directory admin doing an admin-only action", f.svc.RequireAdmin(context.Background(), f.actor(u), "restore a backup"), nil, "")
}

// TestUpdateDirectoryUserKeepsProvider: a directory user sent back as read
// (identityProvider "ldap") can be updated, e.g. given a role by hand; the
// provider itself cannot be set to anything but local.
func TestUpdateDirectoryUserKeepsProvider(t *testing.T) {
	f := boltFixture(t)
	ctx := t.Context()
	u, err := f.st.CreateUser(ctx, store.User{Username: "alice", IdentityProvider: "ldap", Roles: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	ldap := "ldap"
	got, err := f.svc.UpdateUser(ctx, f.admin, u.ID, account.UserUpdate{IdentityProvider: &ldap, Roles: []string{f.adminRole.ID}})
	wantErr(t, "updating a directory user sent back as read", err, nil, "")
	if got.IdentityProvider != "ldap" || !slices.Contains(got.Roles, f.adminRole.ID) {
		t.Errorf("after the update: provider %q roles %v", got.IdentityProvider, got.Roles)
	}
	local := f.user("bob", nil)
	_, err = f.svc.UpdateUser(ctx, f.admin, local.ID, account.UserUpdate{IdentityProvider: &ldap})
	wantErr(t, "making a local user a directory user", err, account.ErrInvalid, `identityProvider must be "local"`)
}
