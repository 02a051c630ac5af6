package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/warden-mqtt/warden/store"
)

// The contract of the directory links: a role's LdapGroups (validated
// group DNs, kept as written) and a user's LdapRoles (roles the directory
// gave it, kept apart from Roles, references checked like Roles).

const (
	groupAdmins = "cn=admins,ou=groups,dc=example,dc=org"
	groupOps    = "cn=operators,ou=groups,dc=example,dc=org"
)

func testRoleLdapGroups(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	r := mustRole(t, s, store.Role{Name: "admins", LdapGroups: []string{groupAdmins, "CN=Plant 1, OU=Groups, DC=example, DC=org"}})
	want := []string{groupAdmins, "CN=Plant 1, OU=Groups, DC=example, DC=org"}
	for name, read := range map[string]func() (store.Role, error){
		"Role":       func() (store.Role, error) { return s.Role(ctx, r.ID) },
		"RoleByName": func() (store.Role, error) { return s.RoleByName(ctx, "admins") },
		"Roles": func() (store.Role, error) {
			rs, err := s.Roles(ctx)
			if err != nil || len(rs) != 1 {
				return store.Role{}, fmt.Errorf("roles %v: %w", roleNames(rs), err)
			}
			return rs[0], nil
		},
	} {
		got, err := read()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !slices.Equal(got.LdapGroups, want) {
			t.Errorf("%s: LdapGroups = %q, want %q as written", name, got.LdapGroups, want)
		}
	}
	up, err := s.UpdateRole(ctx, r.ID, func(x *store.Role) error { x.LdapGroups = []string{groupOps}; return nil })
	if err != nil {
		t.Fatalf("UpdateRole: %v", err)
	}
	if got, _ := s.Role(ctx, r.ID); !slices.Equal(got.LdapGroups, []string{groupOps}) || !slices.Equal(up.LdapGroups, got.LdapGroups) {
		t.Errorf("after UpdateRole: stored %q, returned %q, want [%s]", got.LdapGroups, up.LdapGroups, groupOps)
	}
	// A changing fn that fails leaves the links as they were.
	boom := errors.New("boom")
	if _, err := s.UpdateRole(ctx, r.ID, func(x *store.Role) error { x.LdapGroups[0] = groupAdmins; return boom }); !errors.Is(err, boom) {
		t.Fatalf("UpdateRole with failing fn: %v", err)
	}
	if got, _ := s.Role(ctx, r.ID); !slices.Equal(got.LdapGroups, []string{groupOps}) {
		t.Errorf("a failed UpdateRole changed LdapGroups to %q", got.LdapGroups)
	}
	if _, err := s.UpdateRole(ctx, r.ID, func(x *store.Role) error { x.LdapGroups = nil; return nil }); err != nil {
		t.Fatalf("UpdateRole removing links: %v", err)
	}
	if got, _ := s.Role(ctx, r.ID); len(got.LdapGroups) != 0 {
		t.Errorf("links removed, still stored: %q", got.LdapGroups)
	}
}

func testRoleLdapGroupsInvalid(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	r := mustRole(t, s, store.Role{Name: "linked", LdapGroups: []string{groupOps}})
	many := make([]string, store.MaxLdapGroups+1)
	for i := range many {
		many[i] = fmt.Sprintf("cn=g%d,dc=example", i)
	}
	for _, tc := range []struct {
		name, want string
		groups     []string
	}{
		{"not a DN", "not a distinguished name", []string{"operators"}},
		{"an empty DN", "not a distinguished name", []string{""}},
		{"an empty RDN", "not a distinguished name", []string{"cn=a,,dc=example"}},
		{"an unescaped special character", "must be escaped", []string{"cn=a;b,dc=example"}},
		{"the same group twice, spelt apart", "same group", []string{groupOps, "CN=Operators, OU=Groups,DC=Example,DC=Org"}},
		{"a DN too long", "longer than", []string{"cn=" + strings.Repeat("a", store.MaxDNBytes) + ",dc=example"}},
		{"too many groups", "more than", many},
	} {
		_, err := s.CreateRole(ctx, store.Role{Name: "new-" + tc.name, LdapGroups: tc.groups})
		if !errors.Is(err, store.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("CreateRole with %s: err = %v, want ErrInvalid saying %q", tc.name, err, tc.want)
		}
		_, err = s.UpdateRole(ctx, r.ID, func(x *store.Role) error { x.LdapGroups = tc.groups; return nil })
		if !errors.Is(err, store.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("UpdateRole with %s: err = %v, want ErrInvalid saying %q", tc.name, err, tc.want)
		}
	}
	if got, _ := s.Role(ctx, r.ID); !slices.Equal(got.LdapGroups, []string{groupOps}) {
		t.Errorf("refused updates changed the links to %q", got.LdapGroups)
	}
	if rs, _ := s.Roles(ctx); len(rs) != 1 {
		t.Errorf("refused creates stored roles: %v", roleNames(rs))
	}
}

func testUserLdapRoles(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	byHand := mustRole(t, s, store.Role{Name: "by-hand"})
	synced := mustRole(t, s, store.Role{Name: "synced", LdapGroups: []string{groupOps}})
	_, err := s.CreateUser(ctx, store.User{Username: "ghost", LdapRoles: []string{"no-such-role"}})
	wantErr(t, "CreateUser with an unknown directory role", err, store.ErrNotFound)
	u := mustUser(t, s, store.User{Username: "dora", IdentityProvider: "ldap", Roles: []string{byHand.ID}})
	_, err = s.UpdateUser(ctx, u.ID, func(x *store.User) error { x.LdapRoles = []string{"no-such-role"}; return nil })
	wantErr(t, "UpdateUser with an unknown directory role", err, store.ErrNotFound)
	if _, err := s.UpdateUser(ctx, u.ID, func(x *store.User) error { x.LdapRoles = []string{synced.ID, byHand.ID}; return nil }); err != nil {
		t.Fatalf("UpdateUser setting LdapRoles: %v", err)
	}
	got := mustGetUser(t, s, u.ID)
	if !slices.Equal(got.Roles, []string{byHand.ID}) || !slices.Equal(got.LdapRoles, []string{synced.ID, byHand.ID}) {
		t.Errorf("stored Roles %q, LdapRoles %q: the directory's roles must be kept apart", got.Roles, got.LdapRoles)
	}
	if eff := got.EffectiveRoles(); !slices.Equal(eff, []string{byHand.ID, synced.ID}) {
		t.Errorf("EffectiveRoles = %q, want each of Roles and LdapRoles once", eff)
	}
	// A role held only through the directory can be deleted: it goes from
	// the user's LdapRoles too. A role given by hand still cannot.
	if err := s.DeleteRole(ctx, synced.ID); err != nil {
		t.Fatalf("DeleteRole of a role held only through the directory: %v", err)
	}
	if got := mustGetUser(t, s, u.ID); !slices.Equal(got.LdapRoles, []string{byHand.ID}) {
		t.Errorf("after DeleteRole, LdapRoles = %q, want [%s]", got.LdapRoles, byHand.ID)
	}
	wantErr(t, "DeleteRole given by hand (and by the directory)", s.DeleteRole(ctx, byHand.ID), store.ErrConflict)
	// No dangling reference remains: the model restores as it is.
	if err := s.Restore(ctx, snapshot(t, s)); err != nil {
		t.Errorf("the model after these changes does not restore: %v", err)
	}
}

func testRestoreLdapLinks(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	fill(t, s)
	before := snapshot(t, s)
	badDN := before
	badDN.Roles = append(slices.Clone(before.Roles), store.Role{ID: "bad-dn", Name: "bad-dn", LdapGroups: []string{"not a dn"}})
	dangling := before
	dangling.Users = append(slices.Clone(before.Users), store.User{ID: "z", Username: "zed", LdapRoles: []string{"no-such-role"}})
	for name, snap := range map[string]store.Snapshot{"a role with an invalid group DN": badDN, "a user with a missing directory role": dangling} {
		if err := s.Restore(ctx, snap); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("Restore with %s: err = %v, want ErrInvalid", name, err)
		}
		if diff := SameModel(snapshot(t, s), before); diff != "" {
			t.Errorf("failed Restore with %s changed the model:\n%s", name, diff)
		}
	}
}
