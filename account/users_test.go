package account_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/warden-mqtt/warden/account"
	"github.com/warden-mqtt/warden/acl"
)

// TestLastActiveAdminCannotGo: every change that would leave no active
// holder of RoleAdmin is refused with ErrLastAdmin, and changes nothing;
// with a second active admin the same change passes.
func TestLastActiveAdminCannotGo(t *testing.T) {
	suspend := true
	// change acts on the admin id; other is a user that is no admin.
	type change func(f *fixture, ops account.Actor, id, other string) error
	for name, change := range map[string]change{
		"deleting it": func(f *fixture, ops account.Actor, id, _ string) error {
			return f.svc.DeleteUser(context.Background(), ops, id)
		},
		"deleting it in a batch": func(f *fixture, ops account.Actor, id, other string) error {
			return f.svc.DeleteUsers(context.Background(), ops, []string{other, id})
		},
		"suspending it": func(f *fixture, ops account.Actor, id, _ string) error {
			_, err := f.svc.UpdateUser(context.Background(), ops, id, account.UserUpdate{Suspended: &suspend})
			return err
		},
		"taking the role away": func(f *fixture, ops account.Actor, id, _ string) error {
			return f.svc.RemoveRole(context.Background(), ops, id, f.adminRole.ID)
		},
		"replacing its roles": func(f *fixture, ops account.Actor, id, _ string) error {
			_, err := f.svc.UpdateUser(context.Background(), ops, id, account.UserUpdate{Roles: []string{}})
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			eachStore(t, func(t *testing.T, f *fixture) {
				ops := f.actor(f.user("ops", nil, httpPerm("/api/users/#", acl.OpReadWrite)))
				// A suspended admin does not count.
				idle := f.user("idle", []string{f.adminRole.ID})
				if _, err := f.svc.UpdateUser(t.Context(), f.admin, idle.ID, account.UserUpdate{Suspended: &suspend}); err != nil {
					t.Fatal(err)
				}
				other := f.user("bystander", nil).ID
				wantErr(t, "the last active admin", change(f, ops, f.admin.User.ID, other), account.ErrLastAdmin,
					"the last user holding connectware-admin cannot lose it")
				if u, err := f.st.User(t.Context(), f.admin.User.ID); err != nil || !account.ActiveAdmin(u, f.adminRole.ID) {
					t.Fatalf("after the refusal the admin is %+v (%v), want it unchanged", u, err)
				}
				if _, err := f.st.User(t.Context(), other); err != nil {
					t.Fatalf("after the refusal the bystander is gone (%v), want nothing changed", err)
				}
				f.user("admin2", []string{f.adminRole.ID})
				wantErr(t, "one of two active admins", change(f, ops, f.admin.User.ID, other), nil, "")
			})
		})
	}
}

// TestLastTwoAdminsRemovedAtOnce: two deletes of the last two active
// admins at the same moment: exactly one passes, on both stores.
func TestLastTwoAdminsRemovedAtOnce(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		for round := range 3 {
			other := f.user("admin-"+string(rune('a'+round)), []string{f.adminRole.ID})
			ops := f.actor(f.user("ops-"+string(rune('a'+round)), nil, httpPerm("/api/users/#", acl.OpReadWrite)))
			ids := []string{f.admin.User.ID, other.ID}
			var errs [2]error
			var wg sync.WaitGroup
			for i := range 2 {
				wg.Go(func() { errs[i] = f.svc.DeleteUser(context.Background(), ops, ids[i]) })
			}
			wg.Wait()
			if (errs[0] == nil) == (errs[1] == nil) || !errors.Is(errors.Join(errs[:]...), account.ErrLastAdmin) {
				t.Fatalf("round %d: concurrent deletes of the last two admins: %v, want one to pass and one ErrLastAdmin", round, errs)
			}
			// The survivor is the admin of the next round.
			survivor := ids[0]
			if errs[0] == nil {
				survivor = ids[1]
			}
			u, err := f.st.User(t.Context(), survivor)
			if err != nil {
				t.Fatal(err)
			}
			f.admin = f.actor(u)
		}
	})
}

// TestOwnRoleStaysOwn: a user's own role is never removed from it, given
// to another user, renamed or shared; its permissions are set through the
// user, and replacing the user's roles keeps it.
func TestOwnRoleStaysOwn(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		ctx := t.Context()
		alice := f.user("alice", nil, mqttPerm("alice/#", acl.OpRead))
		bob := f.user("bob", nil)
		own := f.ownRoleOf(alice)
		shared, name, yes := f.sharedRole("readers"), "other", true
		wantErr(t, "removing alice's own role", f.svc.RemoveRole(ctx, f.admin, alice.ID, own), account.ErrConflict,
			"a user's own role cannot be removed from it")
		wantErr(t, "granting alice's own role to bob", f.svc.AddRole(ctx, f.admin, bob.ID, own), account.ErrConflict,
			`role "alice" belongs to another user`)
		_, err := f.svc.UpdateRole(ctx, f.admin, own, account.RoleUpdate{Name: &name})
		wantErr(t, "renaming alice's own role", err, account.ErrConflict, "a user's own role is named after the user; rename the user instead")
		_, err = f.svc.UpdateRole(ctx, f.admin, own, account.RoleUpdate{IsShared: &yes})
		wantErr(t, "sharing alice's own role", err, account.ErrConflict, "a user's own role cannot be shared")

		u, err := f.svc.UpdateUser(ctx, f.admin, alice.ID, account.UserUpdate{
			Roles: []string{shared}, Permissions: []acl.Permission{mqttPerm("alice/out/#", acl.OpWrite)},
		})
		wantErr(t, "replacing alice's roles and permissions", err, nil, "")
		if !slices.Equal(u.Roles, []string{own, shared}) {
			t.Errorf("alice's roles are %v, want her own role first, then %v", u.Roles, shared)
		}
		perms, err := f.svc.Permissions(ctx, u)
		if err != nil || len(perms) != 2 || perms[0].Resource != "alice/out/#" {
			t.Errorf("alice's permissions are %+v (%v), want alice/out/# from her own role, then the shared role's", perms, err)
		}
		_, err = f.svc.UpdateUser(ctx, f.admin, f.admin.User.ID, account.UserUpdate{Permissions: []acl.Permission{}})
		wantErr(t, "setting the permissions of a user without a role of its own", err, account.ErrConflict,
			`user "admin" has no role of its own to hold permissions`)
	})
}

// TestCreateUserRules: usernames follow credential's rules and are free
// (also as a role name), and a batch is stored whole or not at all.
func TestCreateUserRules(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		ctx := t.Context()
		f.user("taken", nil)
		f.sharedRole("a-role")
		for _, tc := range []struct {
			name, username string
			want           error
			msg            string
		}{
			{"a username with white space is refused", "two words ", account.ErrInvalid, ""},
			{"a taken username is refused", "taken", account.ErrConflict, `username "taken" is taken`},
			{"a role's name is refused", "a-role", account.ErrConflict, `a role named "a-role" exists; every user gets a role of its own name`},
			{"a free name passes", "fresh", nil, ""},
		} {
			_, err := f.svc.CreateUser(ctx, f.admin, account.NewUser{Username: tc.username, Password: testPassword})
			wantErr(t, tc.name, err, tc.want, tc.msg)
		}
		_, err := account.BatchUsernames([]account.NewUser{{Username: "Dev"}, {Username: "dev"}})
		wantErr(t, "a batch naming a user twice under case folding", err, account.ErrConflict, `username "dev" appears twice in the batch`)

		before, err := f.st.Users(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.svc.CreateUsers(ctx, f.admin, []account.NewUser{
			{Username: "batch-1", Password: testPassword}, {Username: "batch-2", MQTTPublishPrefix: "$SYS/"},
		})
		var be *account.BatchError
		if !errors.As(err, &be) || be.Index != 1 || !errors.Is(err, account.ErrInvalid) {
			t.Fatalf("a batch whose second user has a bad prefix: %v, want a BatchError at index 1 of kind ErrInvalid", err)
		}
		if after, err := f.st.Users(ctx); err != nil || len(after) != len(before) {
			t.Fatalf("after a refused batch %d users (%v), want %d", len(after), err, len(before))
		}
		ids, err := f.svc.CreateUsers(ctx, f.admin, []account.NewUser{{Username: "batch-1"}, {Username: "batch-2"}})
		if err != nil || len(ids) != 2 {
			t.Fatalf("a valid batch: %v %v, want two IDs", ids, err)
		}
	})
}

// TestCertificates: a fingerprint is normalized, registered once, and
// removed only if registered.
func TestCertificates(t *testing.T) {
	f := boltFixture(t)
	ctx := t.Context()
	dev := f.user("device", nil)
	fp := "AB:" + string(slices.Repeat([]byte("cd"), 31))
	wantErr(t, "a malformed fingerprint", f.svc.AddCertificate(ctx, f.admin, dev.ID, "abc"), account.ErrInvalid, "")
	wantErr(t, "registering", f.svc.AddCertificate(ctx, f.admin, dev.ID, fp), nil, "")
	wantErr(t, "registering again", f.svc.AddCertificate(ctx, f.admin, dev.ID, fp), account.ErrConflict,
		"certificate already registered on this user")
	u, err := f.st.User(ctx, dev.ID)
	if err != nil || len(u.Certificates) != 1 || u.Certificates[0].Fingerprint != "ab"+string(slices.Repeat([]byte("cd"), 31)) {
		t.Fatalf("certificates %+v (%v), want the one fingerprint in lower-case hex", u.Certificates, err)
	}
	wantErr(t, "removing", f.svc.RemoveCertificate(ctx, f.admin, dev.ID, fp), nil, "")
	wantErr(t, "removing again", f.svc.RemoveCertificate(ctx, f.admin, dev.ID, fp), account.ErrNotFound, "certificate not found")
	wantErr(t, "a missing user", f.svc.AddCertificate(ctx, f.admin, "nobody", fp), account.ErrNotFound, "user not found")
}

// TestUniqueIDs: empty and repeated IDs go, the first order stays.
func TestUniqueIDs(t *testing.T) {
	if got := account.UniqueIDs([]string{"b", "", "a", "b"}); !slices.Equal(got, []string{"b", "a"}) {
		t.Fatalf("UniqueIDs = %v, want [b a]", got)
	}
	if got := account.UniqueIDs(nil); got == nil || len(got) != 0 {
		t.Fatalf("UniqueIDs(nil) = %#v, want an empty list (roles replaced by none)", got)
	}
}
