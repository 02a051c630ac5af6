package account_test

import (
	"context"
	"errors"
	"testing"

	"github.com/warden-mqtt/warden/account"
	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/store"
)

// sharedRole creates a shared role holding read on the topic name, as the
// admin, and returns its ID.
func (f *fixture) sharedRole(name string) string {
	f.t.Helper()
	ro, err := f.svc.CreateRole(context.Background(), f.admin, account.NewRole{
		Name: name, IsShared: true, Permissions: []acl.Permission{mqttPerm(name, acl.OpRead)},
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return ro.ID
}

// TestBuiltinAdminRoleIsFixed: RoleAdmin keeps its name and permissions
// and cannot be deleted; whether it is shared may change.
func TestBuiltinAdminRoleIsFixed(t *testing.T) {
	f := boltFixture(t)
	ctx := t.Context()
	id, name, shared := f.adminRole.ID, "boss", true
	_, err := f.svc.UpdateRole(ctx, f.admin, id, account.RoleUpdate{Name: &name})
	wantErr(t, "renaming RoleAdmin", err, account.ErrBuiltinRole, "the built-in role connectware-admin cannot be changed or deleted")
	_, err = f.svc.UpdateRole(ctx, f.admin, id, account.RoleUpdate{Permissions: []acl.Permission{}})
	wantErr(t, "replacing its permissions", err, account.ErrBuiltinRole, "")
	_, err = f.svc.AddPermission(ctx, f.admin, id, mqttPerm("x", acl.OpRead))
	wantErr(t, "adding a permission", err, account.ErrBuiltinRole, "")
	wantErr(t, "deleting it", f.svc.DeleteRole(ctx, f.admin, id), account.ErrBuiltinRole, "")
	_, err = f.svc.UpdateRole(ctx, f.admin, id, account.RoleUpdate{IsShared: &shared})
	wantErr(t, "setting isShared", err, nil, "")
}

// TestRoleRules: role names are valid and no user's; permissions are
// valid and declared once; a permission is edited by its ID, which an
// update keeps; a held role is not deleted.
func TestRoleRules(t *testing.T) {
	f := boltFixture(t)
	ctx := t.Context()
	f.user("alice", nil)
	for _, tc := range []struct {
		name string
		role account.NewRole
		want error
		msg  string
	}{
		{"a user's name", account.NewRole{Name: "alice"}, account.ErrConflict, `"alice" is a user's name, and so the name of that user's own role`},
		{"an empty name", account.NewRole{Name: ""}, account.ErrInvalid, "name is required"},
		{"a zero-width character", account.NewRole{Name: "a\u200bb"}, account.ErrInvalid, ""},
		{"an invalid permission", account.NewRole{Name: "r", Permissions: []acl.Permission{mqttPerm("a/#/b", acl.OpRead)}}, account.ErrInvalid, ""},
		{"a permission twice", account.NewRole{Name: "r", Permissions: []acl.Permission{mqttPerm("a", acl.OpRead), mqttPerm("a", acl.OpRead)}},
			account.ErrConflict, "permission mqtt read a is declared twice"},
	} {
		_, err := f.svc.CreateRole(ctx, f.admin, tc.role)
		wantErr(t, tc.name, err, tc.want, tc.msg)
	}

	ro, err := f.svc.CreateRole(ctx, f.admin, account.NewRole{Name: "r", IsShared: true, Permissions: []acl.Permission{mqttPerm("a", acl.OpRead)}})
	wantErr(t, "a valid role", err, nil, "")
	p, err := f.svc.AddPermission(ctx, f.admin, ro.ID, mqttPerm("b", acl.OpRead))
	wantErr(t, "adding a permission", err, nil, "")
	_, err = f.svc.AddPermission(ctx, f.admin, ro.ID, mqttPerm("b", acl.OpRead))
	wantErr(t, "adding it again", err, account.ErrConflict, "")
	res := "c"
	q, err := f.svc.UpdatePermission(ctx, f.admin, ro.ID, p.ID, account.PermissionUpdate{Resource: &res})
	if err != nil || q.ID != p.ID || q.Resource != "c" {
		t.Fatalf("updating a permission: %+v %v, want resource c under the same ID %s", q, err, p.ID)
	}
	_, err = f.svc.UpdatePermission(ctx, f.admin, ro.ID, "missing", account.PermissionUpdate{Resource: &res})
	wantErr(t, "updating a missing permission", err, account.ErrNotFound, "permission not found")
	kept := []acl.Permission{{ID: p.ID, Resource: "d", Operation: acl.OpRead, Context: acl.ContextMQTT}, {ID: p.ID, Resource: "e", Operation: acl.OpRead, Context: acl.ContextMQTT}}
	ro, err = f.svc.UpdateRole(ctx, f.admin, ro.ID, account.RoleUpdate{Permissions: kept})
	if err != nil || len(ro.Permissions) != 2 || ro.Permissions[0].ID != p.ID || ro.Permissions[1].ID == p.ID {
		t.Fatalf("replacing the permissions: %+v %v, want the first to keep ID %s and the second a new one", ro.Permissions, err, p.ID)
	}
	wantErr(t, "deleting a permission", f.svc.DeletePermission(ctx, f.admin, ro.ID, p.ID), nil, "")

	f.user("holder", []string{ro.ID})
	if err := f.svc.DeleteRole(ctx, f.admin, ro.ID); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("deleting a held role: %v, want store.ErrConflict", err)
	}
	wantErr(t, "deleting a missing role", f.svc.DeleteRole(ctx, f.admin, "missing"), account.ErrNotFound, "role not found")
}
