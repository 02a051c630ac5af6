package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os/exec"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/store"
)

// opTimeout bounds every store call of the suite, so a deadlocked
// implementation fails the test instead of hanging it.
const opTimeout = 20 * time.Second

// eventTimeout bounds the wait for one change-feed event.
const eventTimeout = 5 * time.Second

// Run runs the contract suite as subtests of t. open must return a fresh,
// empty store for the subtest it is given and register its own cleanup
// (closing the store); it is called once per subtest.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"CreateUser", testCreateUser},
		{"UsersOrderedByUsername", testUsersOrdered},
		{"UpdateUser", testUpdateUser},
		{"UpdateUserRename", testUpdateUserRename},
		{"PasswordVersion", testPasswordVersion},
		{"RehashPassword", testRehashPassword},
		{"UpdateUserFnError", testUpdateUserFnError},
		{"UpdateUserInvalid", testUpdateUserInvalid},
		{"DeleteUser", testDeleteUser},
		{"DeleteUserAutoRoleHeldByOther", testDeleteUserAutoRoleHeldByOther},
		{"NotFound", testNotFound},
		{"Conflict", testConflict},
		{"Invalid", testInvalid},
		{"ConcurrentCreateUser", testConcurrentCreateUser},
		{"ConcurrentCreateRole", testConcurrentCreateRole},
		{"ConcurrentUpdateUser", testConcurrentUpdateUser},
		{"ConcurrentUpdateRole", testConcurrentUpdateRole},
		{"AtomicAllOrNothing", testAtomicAllOrNothing},
		{"LastHolderRace", testLastHolderRace},
		{"RenameRenamesOwnRole", testRenameRenamesOwnRole},
		{"ConcurrentRenameFold", testConcurrentRenameFold},
		{"UsernameFolding", testUsernameFolding},
		{"UsernameNormalization", testUsernameNormalization},
		{"RestoreKeepsFoldDuplicates", testRestoreKeepsFoldDuplicates},
		{"MFAState", testMFAState},
		{"ConcurrentMFAStep", testConcurrentMFAStep},
		{"Roles", testRoles},
		{"DeleteRoleHeld", testDeleteRoleHeld},
		{"RoleLdapGroups", testRoleLdapGroups},
		{"RoleLdapGroupsInvalid", testRoleLdapGroupsInvalid},
		{"UserLdapRoles", testUserLdapRoles},
		{"RestoreLdapLinks", testRestoreLdapLinks},
		{"Tokens", testTokens},
		{"TokenFamilies", testTokenFamilies},
		{"DeleteUserTokensWhere", testDeleteUserTokensWhere},
		{"TokenPasswordVersion", testTokenPasswordVersion},
		{"ConcurrentRevokeAndExchange", testConcurrentRevokeAndExchange},
		{"TokenFamiliesSnapshot", testTokenFamiliesSnapshot},
		{"RegistryRequests", testRegistryRequests},
		{"Settings", testSettings},
		{"SettingKeysAndDelete", testSettingKeysAndDelete},
		{"Watch", testWatch},
		{"WatchCancel", testWatchCancel},
		{"SnapshotRestore", testSnapshotRestore},
		{"RestoreInvalid", testRestoreInvalid},
		{"RestoreKeeping", testRestoreKeeping},
		{"Close", testClose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

// ---- helpers ----

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), opTimeout)
	t.Cleanup(cancel)
	return ctx
}

func mustUser(t *testing.T, s store.Store, u store.User) store.User {
	t.Helper()
	got, err := s.CreateUser(testCtx(t), u)
	if err != nil {
		t.Fatalf("CreateUser(%q): %v", u.Username, err)
	}
	return got
}

func mustRole(t *testing.T, s store.Store, r store.Role) store.Role {
	t.Helper()
	got, err := s.CreateRole(testCtx(t), r)
	if err != nil {
		t.Fatalf("CreateRole(%q): %v", r.Name, err)
	}
	return got
}

func mustToken(t *testing.T, s store.Store, tok store.Token) store.Token {
	t.Helper()
	got, err := s.CreateToken(testCtx(t), tok)
	if err != nil {
		t.Fatalf("CreateToken(%q): %v", tok.ID, err)
	}
	return got
}

func mustGetUser(t *testing.T, s store.Store, id string) store.User {
	t.Helper()
	u, err := s.User(testCtx(t), id)
	if err != nil {
		t.Fatalf("User(%q): %v", id, err)
	}
	return u
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: err = %v, want errors.Is(err, %v)", what, err, target)
	}
}

func mqttPerm(resource string, op acl.Operation) acl.Permission {
	return acl.Permission{Resource: resource, Operation: op, Context: acl.ContextMQTT}
}

// invalidPerm is rejected by acl.Permission.Validate: '#' must be last.
var invalidPerm = acl.Permission{Resource: "a/#/b", Operation: acl.OpRead, Context: acl.ContextMQTT}

func usernames(us []store.User) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.Username
	}
	return out
}

func roleNames(rs []store.Role) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Name
	}
	return out
}

func tokenIDs(ts []store.Token) []string {
	out := make([]string, len(ts))
	for i, tok := range ts {
		out[i] = tok.ID
	}
	return out
}

// ts returns a fixed UTC instant, so records compare equal after a JSON
// round trip through the store.
func ts(minute int) time.Time {
	return time.Date(2025, 1, 2, 3, minute, 5, 6000, time.UTC)
}

// nextEvent returns the next event of ch, failing the test when none
// arrives in time or the channel closes.
func nextEvent(t *testing.T, ch <-chan store.Event) store.Event {
	t.Helper()
	select {
	case e, ok := <-ch:
		if !ok {
			t.Fatal("Watch channel closed unexpectedly")
		}
		return e
	case <-time.After(eventTimeout):
		t.Fatalf("no event within %v", eventTimeout)
	}
	return store.Event{}
}

// waitClosed drains ch until it closes, failing the test if it stays open.
func waitClosed(t *testing.T, ch <-chan store.Event) {
	t.Helper()
	deadline := time.After(eventTimeout)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatalf("Watch channel still open %v later", eventTimeout)
		}
	}
}

func snapshot(t *testing.T, s store.Store) store.Snapshot {
	t.Helper()
	snap, err := s.Snapshot(testCtx(t))
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	return snap
}

// SameModel reports how two snapshots' models differ (every record and
// setting; the version is ignored), or "" when they are the same. Empty
// and nil setting values count as equal: both are the empty value.
func SameModel(a, b store.Snapshot) string {
	var diffs []string
	if !reflect.DeepEqual(a.Users, b.Users) {
		diffs = append(diffs, fmt.Sprintf("users:\n  %+v\nvs\n  %+v", a.Users, b.Users))
	}
	if !reflect.DeepEqual(a.Roles, b.Roles) {
		diffs = append(diffs, fmt.Sprintf("roles:\n  %+v\nvs\n  %+v", a.Roles, b.Roles))
	}
	if !reflect.DeepEqual(a.Tokens, b.Tokens) {
		diffs = append(diffs, fmt.Sprintf("tokens:\n  %+v\nvs\n  %+v", a.Tokens, b.Tokens))
	}
	if !reflect.DeepEqual(a.RegistryRequests, b.RegistryRequests) {
		diffs = append(diffs, fmt.Sprintf("registry requests:\n  %+v\nvs\n  %+v", a.RegistryRequests, b.RegistryRequests))
	}
	if len(a.Settings) != len(b.Settings) {
		diffs = append(diffs, fmt.Sprintf("settings: %d keys vs %d", len(a.Settings), len(b.Settings)))
	}
	for k, v := range a.Settings {
		if w, ok := b.Settings[k]; !ok || !bytes.Equal(v, w) {
			diffs = append(diffs, fmt.Sprintf("setting %q: %q vs %q (present %v)", k, v, w, ok))
		}
	}
	return strings.Join(diffs, "\n")
}

// ---- users ----

func testCreateUser(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	before := time.Now()
	u, err := s.CreateUser(ctx, store.User{
		Username:          "alice",
		MQTTPublishPrefix: "plant1",
		GrantTypes:        []store.GrantType{{Method: store.GrantPassword, IsRequired: true}},
	})
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	after := time.Now()
	if u.ID == "" {
		t.Error("CreateUser left ID empty")
	}
	if u.CreatedAt.Before(before.Add(-time.Second)) || u.CreatedAt.After(after.Add(time.Second)) {
		t.Errorf("CreatedAt = %v, want between %v and %v", u.CreatedAt, before, after)
	}
	if u.UpdatedAt.IsZero() {
		t.Error("CreateUser left UpdatedAt zero")
	}
	if u.PasswordVersion != 0 {
		t.Errorf("PasswordVersion of a user without password = %d, want 0", u.PasswordVersion)
	}
	byID := mustGetUser(t, s, u.ID)
	if !reflect.DeepEqual(byID, u) {
		t.Errorf("User(id) = %+v\nwant %+v", byID, u)
	}
	byName, err := s.UserByUsername(ctx, "alice")
	if err != nil {
		t.Fatalf("UserByUsername: %v", err)
	}
	if !reflect.DeepEqual(byName, u) {
		t.Errorf("UserByUsername = %+v\nwant %+v", byName, u)
	}

	// A caller-chosen ID and creation time are kept.
	fixed := store.User{ID: "fixed-id", Username: "bob", CreatedAt: ts(1)}
	got := mustUser(t, s, fixed)
	if got.ID != "fixed-id" || !got.CreatedAt.Equal(ts(1)) {
		t.Errorf("CreateUser with ID and CreatedAt = %q %v, want fixed-id %v", got.ID, got.CreatedAt, ts(1))
	}
	if stored := mustGetUser(t, s, "fixed-id"); stored.Username != "bob" {
		t.Errorf("User(fixed-id).Username = %q, want bob", stored.Username)
	}

	// The record is returned by value: changing it changes nothing stored.
	byID.Username = "mallory"
	byID.Roles = append(byID.Roles, "x")
	if again := mustGetUser(t, s, u.ID); !reflect.DeepEqual(again, u) {
		t.Errorf("stored user changed through a returned copy: %+v", again)
	}
}

func testUsersOrdered(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	users, err := s.Users(ctx)
	if err != nil {
		t.Fatalf("Users on empty store: %v", err)
	}
	if len(users) != 0 {
		t.Fatalf("Users on empty store = %v, want none", usernames(users))
	}
	for _, name := range []string{"carol", "alice", "dave", "bob"} {
		mustUser(t, s, store.User{Username: name})
	}
	users, err = s.Users(ctx)
	if err != nil {
		t.Fatalf("Users: %v", err)
	}
	if got, want := usernames(users), []string{"alice", "bob", "carol", "dave"}; !slices.Equal(got, want) {
		t.Errorf("Users = %v, want %v", got, want)
	}
}

func testUpdateUser(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	role := mustRole(t, s, store.Role{Name: "readers", IsShared: true})
	u := mustUser(t, s, store.User{Username: "alice", CreatedAt: ts(1)})
	got, err := s.UpdateUser(ctx, u.ID, func(u *store.User) error {
		u.MQTTPublishPrefix = "plant1"
		u.Suspended = true
		u.Roles = append(u.Roles, role.ID)
		u.Certificates = append(u.Certificates, store.Certificate{Fingerprint: "ab12", CreatedAt: ts(2), ExpiresAt: ts(3)})
		// ID and CreatedAt are the store's; changes to them are ignored.
		u.ID = "other"
		u.CreatedAt = ts(9)
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	if got.ID != u.ID || !got.CreatedAt.Equal(ts(1)) {
		t.Errorf("UpdateUser changed ID/CreatedAt to %q/%v", got.ID, got.CreatedAt)
	}
	if got.UpdatedAt.Before(u.UpdatedAt) {
		t.Errorf("UpdatedAt went back: %v < %v", got.UpdatedAt, u.UpdatedAt)
	}
	stored := mustGetUser(t, s, u.ID)
	if !reflect.DeepEqual(stored, got) {
		t.Errorf("User after update = %+v\nwant %+v", stored, got)
	}
	if stored.MQTTPublishPrefix != "plant1" || !stored.Suspended ||
		!slices.Equal(stored.Roles, []string{role.ID}) || len(stored.Certificates) != 1 {
		t.Errorf("update not stored: %+v", stored)
	}
	if _, err := s.User(ctx, "other"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("User(other) after ID change attempt: err = %v, want ErrNotFound", err)
	}
}

func testUpdateUserRename(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	u := mustUser(t, s, store.User{Username: "alice"})
	other := mustUser(t, s, store.User{Username: "bob"})

	if _, err := s.UpdateUser(ctx, u.ID, func(u *store.User) error { u.Username = "bob"; return nil }); !errors.Is(err, store.ErrConflict) {
		t.Errorf("rename onto a taken username: err = %v, want ErrConflict", err)
	}
	if got := mustGetUser(t, s, u.ID); got.Username != "alice" {
		t.Errorf("failed rename changed username to %q", got.Username)
	}
	if got, err := s.UserByUsername(ctx, "bob"); err != nil || got.ID != other.ID {
		t.Errorf("UserByUsername(bob) after failed rename = %q, %v; want %q", got.ID, err, other.ID)
	}

	renamed, err := s.UpdateUser(ctx, u.ID, func(u *store.User) error { u.Username = "alice2"; return nil })
	if err != nil {
		t.Fatalf("rename: %v", err)
	}
	if renamed.Username != "alice2" {
		t.Errorf("renamed.Username = %q", renamed.Username)
	}
	if got, err := s.UserByUsername(ctx, "alice2"); err != nil || got.ID != u.ID {
		t.Errorf("UserByUsername(new name) = %q, %v; want %q", got.ID, err, u.ID)
	}
	if _, err := s.UserByUsername(ctx, "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UserByUsername(old name): err = %v, want ErrNotFound", err)
	}
	// The old name is free again.
	again := mustUser(t, s, store.User{Username: "alice"})
	if again.ID == u.ID {
		t.Error("new user reused the renamed user's ID")
	}
	users, err := s.Users(ctx)
	if err != nil {
		t.Fatalf("Users: %v", err)
	}
	if got, want := usernames(users), []string{"alice", "alice2", "bob"}; !slices.Equal(got, want) {
		t.Errorf("Users = %v, want %v", got, want)
	}
}

func testPasswordVersion(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	u := mustUser(t, s, store.User{Username: "alice", PasswordHash: "hash1"})
	if u.PasswordVersion == 0 {
		t.Fatal("a user created with a password has PasswordVersion 0")
	}
	v1 := u.PasswordVersion
	u, err := s.UpdateUser(ctx, u.ID, func(u *store.User) error { u.PasswordHash = "hash2"; return nil })
	if err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	if u.PasswordVersion <= v1 {
		t.Errorf("PasswordVersion after password change = %d, want > %d", u.PasswordVersion, v1)
	}
	v2 := u.PasswordVersion
	// Other changes, and attempts to set the version directly, keep it.
	u, err = s.UpdateUser(ctx, u.ID, func(u *store.User) error {
		u.MQTTPublishPrefix = "p"
		u.PasswordVersion = 0
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	if u.PasswordVersion != v2 {
		t.Errorf("PasswordVersion after unrelated change = %d, want %d", u.PasswordVersion, v2)
	}
	u, err = s.UpdateUser(ctx, u.ID, func(u *store.User) error { u.PasswordHash = ""; return nil })
	if err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	if u.PasswordVersion <= v2 {
		t.Errorf("PasswordVersion after removing the password = %d, want > %d", u.PasswordVersion, v2)
	}
	if got := mustGetUser(t, s, u.ID); got.PasswordVersion != u.PasswordVersion || got.PasswordHash != "" {
		t.Errorf("stored user = version %d hash %q, want %d and no hash", got.PasswordVersion, got.PasswordHash, u.PasswordVersion)
	}
}

func testUpdateUserFnError(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	u := mustUser(t, s, store.User{Username: "alice", MQTTPublishPrefix: "before"})
	ver, err := s.Version(ctx)
	if err != nil {
		t.Fatalf("Version: %v", err)
	}
	boom := errors.New("boom")
	_, err = s.UpdateUser(ctx, u.ID, func(u *store.User) error {
		u.MQTTPublishPrefix = "after"
		u.Username = "renamed"
		return boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("UpdateUser with failing fn: err = %v, want it to wrap fn's error", err)
	}
	if got := mustGetUser(t, s, u.ID); !reflect.DeepEqual(got, u) {
		t.Errorf("failed update changed the user: %+v\nwant %+v", got, u)
	}
	if _, err := s.UserByUsername(ctx, "renamed"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UserByUsername(renamed) after failed update: err = %v, want ErrNotFound", err)
	}
	if after, err := s.Version(ctx); err != nil || after != ver {
		t.Errorf("Version after failed update = %d, %v; want %d", after, err, ver)
	}
}

func testUpdateUserInvalid(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	u := mustUser(t, s, store.User{Username: "alice"})
	_, err := s.UpdateUser(ctx, u.ID, func(u *store.User) error { u.Username = ""; return nil })
	wantErr(t, "UpdateUser to empty username", err, store.ErrInvalid)
	_, err = s.UpdateUser(ctx, u.ID, func(u *store.User) error { u.Roles = append(u.Roles, "no-such-role"); return nil })
	wantErr(t, "UpdateUser granting a missing role", err, store.ErrNotFound)
	if got := mustGetUser(t, s, u.ID); !reflect.DeepEqual(got, u) {
		t.Errorf("rejected updates changed the user: %+v\nwant %+v", got, u)
	}
}

func testDeleteUser(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	shared := mustRole(t, s, store.Role{Name: "shared", IsShared: true})
	u := mustUser(t, s, store.User{Username: "alice"})
	own := mustRole(t, s, store.Role{Name: "alice-role", AutoGenerated: true, OwnerID: u.ID,
		Permissions: []acl.Permission{mqttPerm("alice/#", acl.OpReadWrite)}})
	bob := mustUser(t, s, store.User{Username: "bob"})
	bobs := mustRole(t, s, store.Role{Name: "bob-role", AutoGenerated: true, OwnerID: bob.ID})
	if _, err := s.UpdateUser(ctx, u.ID, func(u *store.User) error { u.Roles = []string{own.ID, shared.ID}; return nil }); err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	if _, err := s.UpdateUser(ctx, bob.ID, func(u *store.User) error { u.Roles = []string{bobs.ID, shared.ID}; return nil }); err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	mustToken(t, s, store.Token{ID: "t1", UserID: u.ID, Kind: "login"})
	mustToken(t, s, store.Token{ID: "t2", UserID: u.ID, Kind: "app"})
	mustToken(t, s, store.Token{ID: "t3", UserID: bob.ID, Kind: "login"})

	if err := s.DeleteUser(ctx, u.ID); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	if _, err := s.User(ctx, u.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("User after delete: err = %v, want ErrNotFound", err)
	}
	if _, err := s.UserByUsername(ctx, "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UserByUsername after delete: err = %v, want ErrNotFound", err)
	}
	for _, id := range []string{"t1", "t2"} {
		if _, err := s.Token(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Token(%s) of deleted user: err = %v, want ErrNotFound", id, err)
		}
	}
	if toks, err := s.UserTokens(ctx, u.ID); err != nil || len(toks) != 0 {
		t.Errorf("UserTokens of deleted user = %v, %v; want none", tokenIDs(toks), err)
	}
	if _, err := s.Role(ctx, own.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("auto-generated role of deleted user: err = %v, want ErrNotFound", err)
	}
	if _, err := s.RoleByName(ctx, "alice-role"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RoleByName of deleted auto-generated role: err = %v, want ErrNotFound", err)
	}
	// Everything that is not the deleted user's stays.
	for _, id := range []string{shared.ID, bobs.ID} {
		if _, err := s.Role(ctx, id); err != nil {
			t.Errorf("Role(%s) after deleting another user: %v", id, err)
		}
	}
	if _, err := s.Token(ctx, "t3"); err != nil {
		t.Errorf("other user's token after delete: %v", err)
	}
	if got := mustGetUser(t, s, bob.ID); !slices.Equal(got.Roles, []string{bobs.ID, shared.ID}) {
		t.Errorf("other user's roles = %v", got.Roles)
	}
	// Name and role name are free again.
	mustUser(t, s, store.User{Username: "alice"})
	mustRole(t, s, store.Role{Name: "alice-role"})
	if err := s.DeleteUser(ctx, u.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second DeleteUser: err = %v, want ErrNotFound", err)
	}
}

// testDeleteUserAutoRoleHeldByOther: an auto-generated role granted to a
// second user must not leave that user holding a role that no longer
// exists (which every write and Restore refuse), whatever DeleteUser
// chooses to do about it.
func testDeleteUserAutoRoleHeldByOther(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	owner := mustUser(t, s, store.User{Username: "owner"})
	own := mustRole(t, s, store.Role{Name: "owner-role", AutoGenerated: true, OwnerID: owner.ID})
	if _, err := s.UpdateUser(ctx, owner.ID, func(u *store.User) error { u.Roles = []string{own.ID}; return nil }); err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	other := mustUser(t, s, store.User{Username: "other", Roles: []string{own.ID}})

	err := s.DeleteUser(ctx, owner.ID)
	if err != nil && !errors.Is(err, store.ErrConflict) {
		t.Fatalf("DeleteUser: %v", err)
	}
	got := mustGetUser(t, s, other.ID)
	for _, rid := range got.Roles {
		if _, err := s.Role(ctx, rid); err != nil {
			t.Errorf("after DeleteUser(owner), user %q holds role %q: %v", got.Username, rid, err)
		}
	}
	// The store's own backup must restore.
	if err := s.Restore(ctx, snapshot(t, s)); err != nil {
		t.Errorf("Restore(Snapshot()) after DeleteUser: %v", err)
	}
}

// ---- errors ----

func testNotFound(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	noop := func(*store.User) error { return nil }
	_, err := s.User(ctx, "nope")
	wantErr(t, "User", err, store.ErrNotFound)
	_, err = s.UserByUsername(ctx, "nope")
	wantErr(t, "UserByUsername", err, store.ErrNotFound)
	_, err = s.UpdateUser(ctx, "nope", noop)
	wantErr(t, "UpdateUser", err, store.ErrNotFound)
	wantErr(t, "DeleteUser", s.DeleteUser(ctx, "nope"), store.ErrNotFound)
	_, err = s.Role(ctx, "nope")
	wantErr(t, "Role", err, store.ErrNotFound)
	_, err = s.RoleByName(ctx, "nope")
	wantErr(t, "RoleByName", err, store.ErrNotFound)
	_, err = s.UpdateRole(ctx, "nope", func(*store.Role) error { return nil })
	wantErr(t, "UpdateRole", err, store.ErrNotFound)
	wantErr(t, "DeleteRole", s.DeleteRole(ctx, "nope"), store.ErrNotFound)
	_, err = s.Token(ctx, "nope")
	wantErr(t, "Token", err, store.ErrNotFound)
	wantErr(t, "DeleteToken", s.DeleteToken(ctx, "nope"), store.ErrNotFound)
	_, err = s.CreateToken(ctx, store.Token{ID: "t", UserID: "nope"})
	wantErr(t, "CreateToken for missing user", err, store.ErrNotFound)
	_, err = s.RegistryRequest(ctx, "nope")
	wantErr(t, "RegistryRequest", err, store.ErrNotFound)
	_, err = s.UpdateRegistryRequest(ctx, "nope", func(*store.RegistryRequest) error { return nil })
	wantErr(t, "UpdateRegistryRequest", err, store.ErrNotFound)
	wantErr(t, "DeleteRegistryRequest", s.DeleteRegistryRequest(ctx, "nope"), store.ErrNotFound)
	_, err = s.Setting(ctx, "nope")
	wantErr(t, "Setting", err, store.ErrNotFound)
	_, err = s.CreateUser(ctx, store.User{Username: "alice", Roles: []string{"no-such-role"}})
	wantErr(t, "CreateUser with a missing role", err, store.ErrNotFound)
	if _, err := s.UserByUsername(ctx, "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("rejected CreateUser stored the user: err = %v", err)
	}
}

func testConflict(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	u := mustUser(t, s, store.User{Username: "alice"})
	_, err := s.CreateUser(ctx, store.User{Username: "alice"})
	wantErr(t, "CreateUser with taken username", err, store.ErrConflict)
	_, err = s.CreateUser(ctx, store.User{ID: u.ID, Username: "bob"})
	wantErr(t, "CreateUser with taken ID", err, store.ErrConflict)
	if _, err := s.UserByUsername(ctx, "bob"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("CreateUser with taken ID stored the username: err = %v", err)
	}
	if got := mustGetUser(t, s, u.ID); got.Username != "alice" {
		t.Errorf("CreateUser with taken ID overwrote the user: %+v", got)
	}

	r := mustRole(t, s, store.Role{Name: "readers"})
	_, err = s.CreateRole(ctx, store.Role{Name: "readers"})
	wantErr(t, "CreateRole with taken name", err, store.ErrConflict)
	_, err = s.CreateRole(ctx, store.Role{ID: r.ID, Name: "writers"})
	wantErr(t, "CreateRole with taken ID", err, store.ErrConflict)
	if _, err := s.RoleByName(ctx, "writers"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("CreateRole with taken ID stored the name: err = %v", err)
	}
	if got, err := s.Role(ctx, r.ID); err != nil || got.Name != "readers" {
		t.Errorf("CreateRole with taken ID overwrote the role: %+v, %v", got, err)
	}
	roles, err := s.Roles(ctx)
	if err != nil || len(roles) != 1 {
		t.Errorf("Roles after conflicts = %v, %v; want [readers]", roleNames(roles), err)
	}

	mustToken(t, s, store.Token{ID: "tok", UserID: u.ID})
	_, err = s.CreateToken(ctx, store.Token{ID: "tok", UserID: u.ID})
	wantErr(t, "CreateToken with taken ID", err, store.ErrConflict)
}

func testInvalid(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	_, err := s.CreateUser(ctx, store.User{})
	wantErr(t, "CreateUser with empty username", err, store.ErrInvalid)
	_, err = s.CreateRole(ctx, store.Role{})
	wantErr(t, "CreateRole with empty name", err, store.ErrInvalid)
	_, err = s.CreateRole(ctx, store.Role{Name: "bad", Permissions: []acl.Permission{mqttPerm("ok/#", acl.OpRead), invalidPerm}})
	wantErr(t, "CreateRole with invalid permission", err, store.ErrInvalid)
	if _, err := s.RoleByName(ctx, "bad"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("invalid role was stored: err = %v", err)
	}
	r := mustRole(t, s, store.Role{Name: "good", Permissions: []acl.Permission{mqttPerm("ok/#", acl.OpRead)}})
	_, err = s.UpdateRole(ctx, r.ID, func(r *store.Role) error { r.Permissions = append(r.Permissions, invalidPerm); return nil })
	wantErr(t, "UpdateRole adding invalid permission", err, store.ErrInvalid)
	_, err = s.UpdateRole(ctx, r.ID, func(r *store.Role) error { r.Name = ""; return nil })
	wantErr(t, "UpdateRole to empty name", err, store.ErrInvalid)
	if got, err := s.Role(ctx, r.ID); err != nil || !reflect.DeepEqual(got, r) {
		t.Errorf("rejected role updates changed the role: %+v, %v\nwant %+v", got, err, r)
	}

	u := mustUser(t, s, store.User{Username: "alice"})
	_, err = s.CreateToken(ctx, store.Token{UserID: u.ID})
	wantErr(t, "CreateToken with empty ID", err, store.ErrInvalid)
	_, err = s.CreateRegistryRequest(ctx, store.RegistryRequest{})
	wantErr(t, "CreateRegistryRequest with empty username", err, store.ErrInvalid)
	_, err = s.CreateRegistryRequest(ctx, store.RegistryRequest{Username: "dev", Permissions: []acl.Permission{invalidPerm}})
	wantErr(t, "CreateRegistryRequest with invalid permission", err, store.ErrInvalid)
	wantErr(t, "PutSetting with empty key", s.PutSetting(ctx, "", []byte("v")), store.ErrInvalid)
	wantErr(t, "CreateSetting with empty key", s.CreateSetting(ctx, "", []byte("v")), store.ErrInvalid)
}

// ---- concurrency ----

// concurrently runs fn(i) for i in [0,n) at once and returns the errors.
func concurrently(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = fn(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// exactlyOneWins checks that one call succeeded and the rest conflicted.
func exactlyOneWins(t *testing.T, what string, errs []error) {
	t.Helper()
	ok, conflicts := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, store.ErrConflict):
			conflicts++
		default:
			t.Errorf("%s: unexpected error %v", what, err)
		}
	}
	if ok != 1 || conflicts != len(errs)-1 {
		t.Errorf("%s: %d succeeded and %d conflicted, want 1 and %d", what, ok, conflicts, len(errs)-1)
	}
}

func testConcurrentCreateUser(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	const n = 8
	errs := concurrently(n, func(i int) error {
		_, err := s.CreateUser(ctx, store.User{Username: "alice", MQTTPublishPrefix: strconv.Itoa(i)})
		return err
	})
	exactlyOneWins(t, "concurrent CreateUser", errs)
	users, err := s.Users(ctx)
	if err != nil || len(users) != 1 {
		t.Fatalf("Users = %v, %v; want exactly alice", usernames(users), err)
	}
	byName, err := s.UserByUsername(ctx, "alice")
	if err != nil || byName.ID != users[0].ID {
		t.Errorf("UserByUsername(alice) = %q, %v; want the one stored user %q", byName.ID, err, users[0].ID)
	}
	// The same for a caller-chosen ID under different usernames.
	errs = concurrently(n, func(i int) error {
		_, err := s.CreateUser(ctx, store.User{ID: "same-id", Username: "u" + strconv.Itoa(i)})
		return err
	})
	exactlyOneWins(t, "concurrent CreateUser with one ID", errs)
	if users, err := s.Users(ctx); err != nil || len(users) != 2 {
		t.Errorf("Users = %v, %v; want 2", usernames(users), err)
	}
}

func testConcurrentCreateRole(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	const n = 8
	errs := concurrently(n, func(int) error {
		_, err := s.CreateRole(ctx, store.Role{Name: "readers"})
		return err
	})
	exactlyOneWins(t, "concurrent CreateRole", errs)
	roles, err := s.Roles(ctx)
	if err != nil || len(roles) != 1 {
		t.Fatalf("Roles = %v, %v; want exactly readers", roleNames(roles), err)
	}
	if r, err := s.RoleByName(ctx, "readers"); err != nil || r.ID != roles[0].ID {
		t.Errorf("RoleByName(readers) = %q, %v; want %q", r.ID, err, roles[0].ID)
	}
}

func testConcurrentUpdateUser(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	const n = 20
	roleIDs := make([]string, n)
	for i := range n {
		roleIDs[i] = mustRole(t, s, store.Role{Name: fmt.Sprintf("role%02d", i)}).ID
	}
	u := mustUser(t, s, store.User{Username: "alice"})
	errs := concurrently(n, func(i int) error {
		_, err := s.UpdateUser(ctx, u.ID, func(u *store.User) error {
			u.MQTTPublishPrefix += "x"
			u.Roles = append(u.Roles, roleIDs[i])
			return nil
		})
		return err
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("UpdateUser %d: %v", i, err)
		}
	}
	got := mustGetUser(t, s, u.ID)
	if got.MQTTPublishPrefix != strings.Repeat("x", n) {
		t.Errorf("MQTTPublishPrefix = %q (%d appends landed), want %d", got.MQTTPublishPrefix, len(got.MQTTPublishPrefix), n)
	}
	held := slices.Clone(got.Roles)
	slices.Sort(held)
	want := slices.Clone(roleIDs)
	slices.Sort(want)
	if !slices.Equal(held, want) {
		t.Errorf("user holds %d roles %v, want all %d", len(held), held, n)
	}
}

func testConcurrentUpdateRole(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	const n = 20
	r := mustRole(t, s, store.Role{Name: "devices"})
	errs := concurrently(n, func(i int) error {
		_, err := s.UpdateRole(ctx, r.ID, func(r *store.Role) error {
			r.Permissions = append(r.Permissions, mqttPerm(fmt.Sprintf("dev/%d/#", i), acl.OpWrite))
			return nil
		})
		return err
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("UpdateRole %d: %v", i, err)
		}
	}
	got, err := s.Role(ctx, r.ID)
	if err != nil {
		t.Fatalf("Role: %v", err)
	}
	seen := map[string]bool{}
	for _, p := range got.Permissions {
		seen[p.Resource] = true
	}
	if len(got.Permissions) != n || len(seen) != n {
		t.Errorf("role has %d permissions (%d distinct), want %d", len(got.Permissions), len(seen), n)
	}
}

// ---- roles ----

func testRoles(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	perms := []acl.Permission{mqttPerm("a/+/c", acl.OpRead), {ID: "keep", Resource: "/api/x", Operation: acl.OpWrite, Context: acl.ContextHTTP}}
	r, err := s.CreateRole(ctx, store.Role{Name: "writers", IsShared: true, Permissions: perms})
	if err != nil {
		t.Fatalf("CreateRole: %v", err)
	}
	if r.ID == "" || r.CreatedAt.IsZero() || r.UpdatedAt.IsZero() {
		t.Errorf("CreateRole left ID/CreatedAt/UpdatedAt empty: %+v", r)
	}
	if len(r.Permissions) != 2 || r.Permissions[0].ID == "" || r.Permissions[1].ID != "keep" {
		t.Errorf("permissions = %+v, want a new ID on the first and 'keep' on the second", r.Permissions)
	}
	if r.Permissions[0].Resource != "a/+/c" || r.Permissions[1].Resource != "/api/x" {
		t.Errorf("permissions reordered or changed: %+v", r.Permissions)
	}
	if got, err := s.Role(ctx, r.ID); err != nil || !reflect.DeepEqual(got, r) {
		t.Errorf("Role = %+v, %v\nwant %+v", got, err, r)
	}
	if got, err := s.RoleByName(ctx, "writers"); err != nil || !reflect.DeepEqual(got, r) {
		t.Errorf("RoleByName = %+v, %v\nwant %+v", got, err, r)
	}
	mustRole(t, s, store.Role{Name: "admins"})
	mustRole(t, s, store.Role{Name: "readers"})
	roles, err := s.Roles(ctx)
	if err != nil {
		t.Fatalf("Roles: %v", err)
	}
	if got, want := roleNames(roles), []string{"admins", "readers", "writers"}; !slices.Equal(got, want) {
		t.Errorf("Roles = %v, want %v", got, want)
	}

	// Rename: onto a taken name conflicts; otherwise the old name frees.
	_, err = s.UpdateRole(ctx, r.ID, func(r *store.Role) error { r.Name = "readers"; return nil })
	wantErr(t, "UpdateRole onto a taken name", err, store.ErrConflict)
	up, err := s.UpdateRole(ctx, r.ID, func(r *store.Role) error {
		r.Name = "publishers"
		r.Permissions = append(r.Permissions, mqttPerm("new/#", acl.OpReadWrite))
		r.ID = "ignored"
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateRole: %v", err)
	}
	if up.ID != r.ID || !up.CreatedAt.Equal(r.CreatedAt) || len(up.Permissions) != 3 || up.Permissions[2].ID == "" {
		t.Errorf("UpdateRole result = %+v", up)
	}
	if got, err := s.RoleByName(ctx, "publishers"); err != nil || !reflect.DeepEqual(got, up) {
		t.Errorf("RoleByName(new name) = %+v, %v\nwant %+v", got, err, up)
	}
	if _, err := s.RoleByName(ctx, "writers"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RoleByName(old name): err = %v, want ErrNotFound", err)
	}
	mustRole(t, s, store.Role{Name: "writers"})

	// A failing fn changes nothing.
	boom := errors.New("boom")
	_, err = s.UpdateRole(ctx, r.ID, func(r *store.Role) error { r.Name = "zzz"; return boom })
	if !errors.Is(err, boom) {
		t.Errorf("UpdateRole with failing fn: err = %v, want fn's error", err)
	}
	if got, err := s.Role(ctx, r.ID); err != nil || !reflect.DeepEqual(got, up) {
		t.Errorf("failed UpdateRole changed the role: %+v, %v", got, err)
	}

	if err := s.DeleteRole(ctx, r.ID); err != nil {
		t.Fatalf("DeleteRole: %v", err)
	}
	if _, err := s.Role(ctx, r.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Role after delete: err = %v, want ErrNotFound", err)
	}
	if _, err := s.RoleByName(ctx, "publishers"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RoleByName after delete: err = %v, want ErrNotFound", err)
	}
	wantErr(t, "second DeleteRole", s.DeleteRole(ctx, r.ID), store.ErrNotFound)
}

func testDeleteRoleHeld(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	r := mustRole(t, s, store.Role{Name: "readers"})
	other := mustRole(t, s, store.Role{Name: "other"})
	u := mustUser(t, s, store.User{Username: "alice", Roles: []string{other.ID, r.ID}})
	// A user whose other fields merely mention the role's ID holds nothing.
	mustUser(t, s, store.User{Username: r.ID, MQTTPublishPrefix: other.ID})
	wantErr(t, "DeleteRole held by a user", s.DeleteRole(ctx, r.ID), store.ErrConflict)
	if _, err := s.Role(ctx, r.ID); err != nil {
		t.Errorf("refused DeleteRole removed the role: %v", err)
	}
	if _, err := s.UpdateUser(ctx, u.ID, func(u *store.User) error { u.Roles = []string{other.ID}; return nil }); err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	if err := s.DeleteRole(ctx, r.ID); err != nil {
		t.Errorf("DeleteRole no longer held: %v", err)
	}
}

// ---- tokens ----

func testTokens(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	u := mustUser(t, s, store.User{Username: "alice"})
	v := mustUser(t, s, store.User{Username: "bob"})
	// Created out of order: UserTokens sorts by CreatedAt, not insertion.
	mustToken(t, s, store.Token{ID: "b", UserID: u.ID, Kind: "login", CreatedAt: ts(2), ExpiresAt: ts(50)})
	mustToken(t, s, store.Token{ID: "c", UserID: u.ID, Kind: "app", Label: "ci", CreatedAt: ts(3), ExpiresAt: ts(50)})
	mustToken(t, s, store.Token{ID: "a", UserID: u.ID, Kind: "device", CreatedAt: ts(1), ExpiresAt: ts(50)})
	mustToken(t, s, store.Token{ID: "z", UserID: v.ID, Kind: "login", CreatedAt: ts(0)})
	now := mustToken(t, s, store.Token{ID: "d", UserID: v.ID, Kind: "login"})
	if now.CreatedAt.IsZero() {
		t.Error("CreateToken left CreatedAt zero")
	}

	got, err := s.Token(ctx, "c")
	want := store.Token{ID: "c", UserID: u.ID, Kind: "app", Label: "ci", CreatedAt: ts(3), ExpiresAt: ts(50)}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Token(c) = %+v, %v\nwant %+v", got, err, want)
	}
	toks, err := s.UserTokens(ctx, u.ID)
	if err != nil {
		t.Fatalf("UserTokens: %v", err)
	}
	if got, want := tokenIDs(toks), []string{"a", "b", "c"}; !slices.Equal(got, want) {
		t.Errorf("UserTokens = %v, want %v (oldest first)", got, want)
	}

	if err := s.DeleteToken(ctx, "b"); err != nil {
		t.Fatalf("DeleteToken: %v", err)
	}
	if _, err := s.Token(ctx, "b"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Token after delete: err = %v, want ErrNotFound", err)
	}
	wantErr(t, "second DeleteToken", s.DeleteToken(ctx, "b"), store.ErrNotFound)
	toks, _ = s.UserTokens(ctx, u.ID)
	if got, want := tokenIDs(toks), []string{"a", "c"}; !slices.Equal(got, want) {
		t.Errorf("UserTokens after delete = %v, want %v", got, want)
	}

	n, err := s.DeleteUserTokens(ctx, u.ID)
	if err != nil || n != 2 {
		t.Errorf("DeleteUserTokens = %d, %v; want 2", n, err)
	}
	if toks, err := s.UserTokens(ctx, u.ID); err != nil || len(toks) != 0 {
		t.Errorf("UserTokens after DeleteUserTokens = %v, %v; want none", tokenIDs(toks), err)
	}
	for _, id := range []string{"a", "c"} {
		if _, err := s.Token(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Token(%s) after DeleteUserTokens: err = %v, want ErrNotFound", id, err)
		}
	}
	if n, err := s.DeleteUserTokens(ctx, u.ID); err != nil || n != 0 {
		t.Errorf("second DeleteUserTokens = %d, %v; want 0", n, err)
	}
	// The other user's tokens are untouched.
	toks, _ = s.UserTokens(ctx, v.ID)
	if got, want := tokenIDs(toks), []string{"z", "d"}; !slices.Equal(got, want) {
		t.Errorf("other user's tokens = %v, want %v", got, want)
	}
	// The user can get new tokens after a revocation of all.
	mustToken(t, s, store.Token{ID: "e", UserID: u.ID})
	if toks, _ := s.UserTokens(ctx, u.ID); !slices.Equal(tokenIDs(toks), []string{"e"}) {
		t.Errorf("UserTokens after new token = %v, want [e]", tokenIDs(toks))
	}
}

// ---- registry requests ----

func testRegistryRequests(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	if reqs, err := s.RegistryRequests(ctx); err != nil || len(reqs) != 0 {
		t.Fatalf("RegistryRequests on empty store = %v, %v", reqs, err)
	}
	if err := s.ClearRegistryRequests(ctx); err != nil {
		t.Errorf("ClearRegistryRequests on empty store: %v", err)
	}
	dev2 := store.RegistryRequest{Username: "dev2", CredentialType: "certificate", CSR: []byte{0, 1, 2, 255},
		Fingerprint: "ff", Permissions: []acl.Permission{mqttPerm("dev2/#", acl.OpReadWrite)}, Timestamp: ts(2)}
	for _, r := range []store.RegistryRequest{
		dev2,
		{Username: "dev1", CredentialType: "password", PasswordHash: "h", Roles: []string{"r"}, Timestamp: ts(1)},
		{Username: "dev3", CredentialType: "password", Timestamp: ts(3)},
	} {
		if _, err := s.CreateRegistryRequest(ctx, r); err != nil {
			t.Fatalf("CreateRegistryRequest(%s): %v", r.Username, err)
		}
	}
	_, err := s.CreateRegistryRequest(ctx, store.RegistryRequest{Username: "dev2", CredentialType: "password"})
	wantErr(t, "duplicate CreateRegistryRequest", err, store.ErrConflict)
	got, err := s.RegistryRequest(ctx, "dev2")
	if err != nil || !reflect.DeepEqual(got, dev2) {
		t.Errorf("RegistryRequest(dev2) = %+v, %v\nwant %+v", got, err, dev2)
	}
	reqs, err := s.RegistryRequests(ctx)
	if err != nil {
		t.Fatalf("RegistryRequests: %v", err)
	}
	var names []string
	for _, r := range reqs {
		names = append(names, r.Username)
	}
	if want := []string{"dev1", "dev2", "dev3"}; !slices.Equal(names, want) {
		t.Errorf("RegistryRequests = %v, want %v (oldest first)", names, want)
	}

	up, err := s.UpdateRegistryRequest(ctx, "dev2", func(r *store.RegistryRequest) error {
		r.Granted = true
		r.Result = []byte("cert")
		r.Username = "ignored"
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateRegistryRequest: %v", err)
	}
	if up.Username != "dev2" || !up.Granted {
		t.Errorf("UpdateRegistryRequest = %+v", up)
	}
	if got, err := s.RegistryRequest(ctx, "dev2"); err != nil || !got.Granted || string(got.Result) != "cert" {
		t.Errorf("RegistryRequest after update = %+v, %v", got, err)
	}
	if _, err := s.RegistryRequest(ctx, "ignored"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateRegistryRequest renamed the request: err = %v", err)
	}
	_, err = s.UpdateRegistryRequest(ctx, "dev2", func(r *store.RegistryRequest) error {
		r.Permissions = append(r.Permissions, invalidPerm)
		return nil
	})
	wantErr(t, "UpdateRegistryRequest with invalid permission", err, store.ErrInvalid)

	if err := s.DeleteRegistryRequest(ctx, "dev1"); err != nil {
		t.Fatalf("DeleteRegistryRequest: %v", err)
	}
	if _, err := s.RegistryRequest(ctx, "dev1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RegistryRequest after delete: err = %v, want ErrNotFound", err)
	}
	if err := s.ClearRegistryRequests(ctx); err != nil {
		t.Fatalf("ClearRegistryRequests: %v", err)
	}
	if reqs, err := s.RegistryRequests(ctx); err != nil || len(reqs) != 0 {
		t.Errorf("RegistryRequests after clear = %d, %v; want none", len(reqs), err)
	}
	// A cleared username can request again.
	if _, err := s.CreateRegistryRequest(ctx, store.RegistryRequest{Username: "dev2", CredentialType: "password"}); err != nil {
		t.Errorf("CreateRegistryRequest after clear: %v", err)
	}
}

// ---- settings ----

func testSettings(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	if _, err := s.Setting(ctx, "ca"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Setting(missing): err = %v, want ErrNotFound", err)
	}
	bin := []byte{0, 1, 2, 0xff, '\n'}
	if err := s.PutSetting(ctx, "ca", bin); err != nil {
		t.Fatalf("PutSetting: %v", err)
	}
	if v, err := s.Setting(ctx, "ca"); err != nil || !bytes.Equal(v, bin) {
		t.Errorf("Setting = %q, %v; want %q", v, err, bin)
	}
	if err := s.PutSetting(ctx, "ca", []byte("v2")); err != nil {
		t.Fatalf("PutSetting replace: %v", err)
	}
	if v, err := s.Setting(ctx, "ca"); err != nil || string(v) != "v2" {
		t.Errorf("Setting after replace = %q, %v; want v2", v, err)
	}

	if err := s.CreateSetting(ctx, "key", []byte("first")); err != nil {
		t.Fatalf("CreateSetting: %v", err)
	}
	wantErr(t, "second CreateSetting", s.CreateSetting(ctx, "key", []byte("second")), store.ErrConflict)
	if v, err := s.Setting(ctx, "key"); err != nil || string(v) != "first" {
		t.Errorf("Setting after CreateSetting conflict = %q, %v; want first", v, err)
	}

	// An empty value is a value: present, readable, and it wins a create.
	if err := s.CreateSetting(ctx, "empty", nil); err != nil {
		t.Fatalf("CreateSetting(empty): %v", err)
	}
	if v, err := s.Setting(ctx, "empty"); err != nil || len(v) != 0 {
		t.Errorf("Setting(empty) = %q, %v; want an empty value", v, err)
	}
	wantErr(t, "CreateSetting over an empty value", s.CreateSetting(ctx, "empty", []byte("x")), store.ErrConflict)

	// Concurrent creates agree on one value.
	errs := concurrently(8, func(i int) error { return s.CreateSetting(ctx, "race", []byte(strconv.Itoa(i))) })
	exactlyOneWins(t, "concurrent CreateSetting", errs)
	winner := -1
	for i, err := range errs {
		if err == nil {
			winner = i
		}
	}
	if v, err := s.Setting(ctx, "race"); err != nil || string(v) != strconv.Itoa(winner) {
		t.Errorf("Setting(race) = %q, %v; want the winner's %d", v, err, winner)
	}
}

// testSettingKeysAndDelete: SettingKeys lists exactly the keys under a
// prefix, in byte order (a key equal to the prefix included, a key that
// only shares its first bytes with a shorter prefix's sibling not);
// DeleteSetting removes one key, tells a missing key apart, and reports
// the removal on the change feed.
func testSettingKeysAndDelete(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	if keys, err := s.SettingKeys(ctx, "clients/"); err != nil || len(keys) != 0 {
		t.Errorf("SettingKeys on an empty store = %q, %v; want none", keys, err)
	}
	for _, k := range []string{"clients/node/b", "clients/node/a", "clients/nodeX", "clients/kick/a/1", "client", "jwt/keys"} {
		if err := s.PutSetting(ctx, k, []byte("v "+k)); err != nil {
			t.Fatalf("PutSetting(%q): %v", k, err)
		}
	}
	for prefix, want := range map[string][]string{
		"clients/node/": {"clients/node/a", "clients/node/b"},
		"clients/node":  {"clients/node/a", "clients/node/b", "clients/nodeX"},
		"clients/":      {"clients/kick/a/1", "clients/node/a", "clients/node/b", "clients/nodeX"},
		"client":        {"client", "clients/kick/a/1", "clients/node/a", "clients/node/b", "clients/nodeX"},
		"":              {"client", "clients/kick/a/1", "clients/node/a", "clients/node/b", "clients/nodeX", "jwt/keys"},
		"nothing/":      nil,
	} {
		keys, err := s.SettingKeys(ctx, prefix)
		if err != nil || !slices.Equal(keys, want) {
			t.Errorf("SettingKeys(%q) = %q, %v; want %q", prefix, keys, err, want)
		}
	}

	ch, err := s.Watch(ctx)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	if err := s.DeleteSetting(ctx, "clients/node/a"); err != nil {
		t.Fatalf("DeleteSetting: %v", err)
	}
	if e := nextEvent(t, ch); e.Kind != store.KindSetting || e.Op != store.OpDelete || e.ID != "clients/node/a" {
		t.Errorf("event after DeleteSetting = %+v, want a setting delete of clients/node/a", e)
	}
	wantErr(t, "DeleteSetting of a deleted key", s.DeleteSetting(ctx, "clients/node/a"), store.ErrNotFound)
	if _, err := s.Setting(ctx, "clients/node/a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Setting after DeleteSetting: err = %v, want ErrNotFound", err)
	}
	if keys, err := s.SettingKeys(ctx, "clients/node/"); err != nil || !slices.Equal(keys, []string{"clients/node/b"}) {
		t.Errorf("SettingKeys after DeleteSetting = %q, %v; want [clients/node/b]", keys, err)
	}
	if v, err := s.Setting(ctx, "clients/node/b"); err != nil || string(v) != "v clients/node/b" {
		t.Errorf("the other setting after DeleteSetting = %q, %v", v, err)
	}
	select {
	case e := <-ch:
		t.Errorf("unexpected event %+v after a refused DeleteSetting", e)
	case <-time.After(100 * time.Millisecond):
	}
}

// ---- change feed ----

func testWatch(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	v0, err := s.Version(ctx)
	if err != nil {
		t.Fatalf("Version: %v", err)
	}
	ch, err := s.Watch(ctx)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	u := mustUser(t, s, store.User{Username: "alice"})
	if _, err := s.UpdateUser(ctx, u.ID, func(u *store.User) error { u.Suspended = true; return nil }); err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	r := mustRole(t, s, store.Role{Name: "alice-role", AutoGenerated: true, OwnerID: u.ID})
	if _, err := s.UpdateUser(ctx, u.ID, func(u *store.User) error { u.Roles = []string{r.ID}; return nil }); err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	mustToken(t, s, store.Token{ID: "tok", UserID: u.ID})
	if _, err := s.CreateRegistryRequest(ctx, store.RegistryRequest{Username: "dev"}); err != nil {
		t.Fatalf("CreateRegistryRequest: %v", err)
	}
	if err := s.PutSetting(ctx, "k", []byte("v")); err != nil {
		t.Fatalf("PutSetting: %v", err)
	}
	// A write that fails emits nothing.
	if _, err := s.CreateUser(ctx, store.User{Username: "alice"}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate CreateUser: err = %v", err)
	}
	if err := s.DeleteUser(ctx, u.ID); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}

	type ev struct {
		Kind store.Kind
		Op   store.Op
		ID   string
	}
	// One commit per line; events of one commit may come in any order.
	commits := [][]ev{
		{{store.KindUser, store.OpPut, u.ID}},
		{{store.KindUser, store.OpPut, u.ID}},
		{{store.KindRole, store.OpPut, r.ID}},
		{{store.KindUser, store.OpPut, u.ID}},
		{{store.KindToken, store.OpPut, "tok"}},
		{{store.KindRegistry, store.OpPut, "dev"}},
		{{store.KindSetting, store.OpPut, "k"}},
		{{store.KindToken, store.OpDelete, "tok"}, {store.KindRole, store.OpDelete, r.ID}, {store.KindUser, store.OpDelete, u.ID}},
	}
	var last uint64
	for i, want := range commits {
		var got []ev
		for range want {
			e := nextEvent(t, ch)
			if e.Version != v0+uint64(i)+1 {
				t.Errorf("commit %d: event %+v has Version %d, want %d", i, e, e.Version, v0+uint64(i)+1)
			}
			last = e.Version
			got = append(got, ev{e.Kind, e.Op, e.ID})
		}
		sortEv := func(a, b ev) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) }
		slices.SortFunc(got, sortEv)
		slices.SortFunc(want, sortEv)
		if !slices.Equal(got, want) {
			t.Errorf("commit %d: events %+v, want %+v", i, got, want)
		}
	}
	if v, err := s.Version(ctx); err != nil || v != last {
		t.Errorf("Version = %d, %v; want the last event's %d", v, err, last)
	}
	select {
	case e := <-ch:
		t.Errorf("unexpected extra event %+v", e)
	default:
	}
}

func testWatchCancel(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(testCtx(t))
	ch, err := s.Watch(ctx)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	other, err := s.Watch(testCtx(t))
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	cancel()
	waitClosed(t, ch)
	// The store and the other consumer carry on.
	u := mustUser(t, s, store.User{Username: "alice"})
	if e := nextEvent(t, other); e.Kind != store.KindUser || e.ID != u.ID {
		t.Errorf("event after another consumer left = %+v", e)
	}
}

// ---- MFA state ----

// mfaState returns an MFA state using every field: two keys (one active,
// one pending), backup code hashes, a trusted device, a pending login
// challenge and a lock.
func mfaState() *store.MFAState {
	return &store.MFAState{
		Keys: []store.MFAKey{
			{ID: "k1", Type: store.MFATypeTOTP, Status: store.MFAStatusActive, Secret: "v1:sealed-1", LastStep: 58000000, CreatedAt: ts(1), ActivatedAt: ts(2)},
			{ID: "k2", Type: store.MFATypeTOTP, Status: store.MFAStatusPending, Secret: "v1:sealed-2", CreatedAt: ts(3)},
		},
		BackupCodes:    []string{"h1", "h2", "h3"},
		TrustedDevices: []store.TrustedDevice{{ID: "d1", Name: "curl/8.5", TokenHash: "th", CreatedAt: ts(4), ExpiresAt: ts(50)}},
		Challenge:      &store.MFAChallenge{SecretHash: "sh", ExpiresAt: ts(9), TokenTTL: 90 * time.Minute, Label: "ci"},
		FailedCodes:    2,
		FailedSince:    ts(6),
		LockedUntil:    ts(7),
	}
}

// testMFAState: the MFA state round-trips, changes through UpdateUser
// (also through the pointer fn receives), and can be removed.
func testMFAState(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	u := mustUser(t, s, store.User{Username: "alice", MFA: mfaState()})
	if got := mustGetUser(t, s, u.ID); !reflect.DeepEqual(got, u) {
		t.Fatalf("User with MFA = %+v\nwant %+v", got.MFA, u.MFA)
	}

	// A failing fn that changed the state in place changes nothing.
	_, err := s.UpdateUser(ctx, u.ID, func(x *store.User) error {
		x.MFA.Keys[0].LastStep++
		x.MFA.BackupCodes[0] = "changed"
		x.MFA.Challenge.Label = "changed"
		return errors.New("no")
	})
	if err == nil {
		t.Fatal("UpdateUser with a failing fn succeeded")
	}
	if got := mustGetUser(t, s, u.ID); !reflect.DeepEqual(got, u) {
		t.Fatalf("failed update changed the MFA state: %+v", got.MFA)
	}

	got, err := s.UpdateUser(ctx, u.ID, func(x *store.User) error {
		x.MFA.Keys[0].LastStep = 58000001
		x.MFA.Keys = x.MFA.Keys[:1]
		x.MFA.BackupCodes = slices.Delete(x.MFA.BackupCodes, 1, 2)
		x.MFA.Challenge = nil
		x.MFA.FailedCodes, x.MFA.FailedSince, x.MFA.LockedUntil = 0, time.Time{}, time.Time{}
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	stored := mustGetUser(t, s, u.ID)
	if !reflect.DeepEqual(stored, got) {
		t.Errorf("stored MFA = %+v\nreturned %+v", stored.MFA, got.MFA)
	}
	m := stored.MFA
	if len(m.Keys) != 1 || m.Keys[0].LastStep != 58000001 || !slices.Equal(m.BackupCodes, []string{"h1", "h3"}) ||
		m.Challenge != nil || m.FailedCodes != 0 || !m.LockedUntil.IsZero() || len(m.TrustedDevices) != 1 {
		t.Errorf("MFA after update = %+v", m)
	}

	// The record is returned by value, MFA state included.
	stored.MFA.Keys[0].Secret = "mallory"
	stored.MFA.BackupCodes[0] = "mallory"
	if again := mustGetUser(t, s, u.ID); !reflect.DeepEqual(again, got) {
		t.Errorf("stored MFA changed through a returned copy: %+v", again.MFA)
	}

	if _, err := s.UpdateUser(ctx, u.ID, func(x *store.User) error { x.MFA = nil; return nil }); err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	if got := mustGetUser(t, s, u.ID); got.MFA != nil {
		t.Errorf("MFA after removal = %+v, want nil", got.MFA)
	}
}

// errReplay is what testConcurrentMFAStep's updater returns for a step
// already used.
var errReplay = fmt.Errorf("%w: step used", store.ErrConflict)

// testConcurrentMFAStep: the check-and-consume of a TOTP step that the
// admin API does in UpdateUser is atomic: of many concurrent uses of one
// step, exactly one succeeds.
func testConcurrentMFAStep(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	u := mustUser(t, s, store.User{Username: "alice", MFA: mfaState()})
	const n = 8
	errs := concurrently(n, func(int) error {
		_, err := s.UpdateUser(ctx, u.ID, func(x *store.User) error {
			k := &x.MFA.Keys[0]
			if k.LastStep >= 58000005 {
				return errReplay
			}
			k.LastStep = 58000005
			x.MFA.BackupCodes = append(x.MFA.BackupCodes, "x")
			return nil
		})
		return err
	})
	exactlyOneWins(t, "concurrent use of one TOTP step", errs)
	if got := mustGetUser(t, s, u.ID).MFA; got.Keys[0].LastStep != 58000005 || len(got.BackupCodes) != 4 {
		t.Errorf("after concurrent use: LastStep %d, %d backup codes; want 58000005 and 4", got.Keys[0].LastStep, len(got.BackupCodes))
	}
}

// ---- snapshot and restore ----

// fill writes a small model touching every kind of record.
func fill(t *testing.T, s store.Store) {
	t.Helper()
	ctx := testCtx(t)
	shared := mustRole(t, s, store.Role{Name: "shared", IsShared: true, Permissions: []acl.Permission{mqttPerm("plant/+/data", acl.OpRead)},
		LdapGroups: []string{groupOps}})
	alice := mustUser(t, s, store.User{Username: "alice", PasswordHash: "h", Certificates: []store.Certificate{{Fingerprint: "aa", CreatedAt: ts(1), ExpiresAt: ts(2)}}})
	own := mustRole(t, s, store.Role{Name: "alice-role", AutoGenerated: true, OwnerID: alice.ID, Permissions: []acl.Permission{mqttPerm("{username}/#", acl.OpReadWrite)}})
	if _, err := s.UpdateUser(ctx, alice.ID, func(u *store.User) error { u.Roles = []string{own.ID, shared.ID}; return nil }); err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	bob := mustUser(t, s, store.User{Username: "bob", Roles: []string{shared.ID}, LdapRoles: []string{shared.ID}, MQTTPublishPrefix: "b", MFA: mfaState()})
	mustToken(t, s, store.Token{ID: "ta", UserID: alice.ID, Kind: "login", CreatedAt: ts(3)})
	mustToken(t, s, store.Token{ID: "tb", UserID: bob.ID, Kind: "app", CreatedAt: ts(4)})
	if _, err := s.CreateRegistryRequest(ctx, store.RegistryRequest{Username: "dev", CredentialType: "certificate", CSR: []byte{1, 2}, Timestamp: ts(5)}); err != nil {
		t.Fatalf("CreateRegistryRequest: %v", err)
	}
	if err := s.PutSetting(ctx, "ca", []byte{0, 0xff}); err != nil {
		t.Fatalf("PutSetting: %v", err)
	}
	if err := s.PutSetting(ctx, "empty", nil); err != nil {
		t.Fatalf("PutSetting: %v", err)
	}
}

func testSnapshotRestore(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	fill(t, s)
	snap := snapshot(t, s)
	if len(snap.Users) != 2 || len(snap.Roles) != 2 || len(snap.Tokens) != 2 || len(snap.RegistryRequests) != 1 || len(snap.Settings) != 2 {
		t.Fatalf("snapshot has %d users, %d roles, %d tokens, %d requests, %d settings; want 2, 2, 2, 1, 2",
			len(snap.Users), len(snap.Roles), len(snap.Tokens), len(snap.RegistryRequests), len(snap.Settings))
	}
	if v, err := s.Version(ctx); err != nil || snap.Version != v {
		t.Errorf("snapshot Version = %d, store Version = %d, %v", snap.Version, v, err)
	}

	// Mutate every kind of record, including an index (a rename).
	alice, err := s.UserByUsername(ctx, "alice")
	if err != nil {
		t.Fatalf("UserByUsername: %v", err)
	}
	bob, _ := s.UserByUsername(ctx, "bob")
	if err := s.DeleteUser(ctx, alice.ID); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	if _, err := s.UpdateUser(ctx, bob.ID, func(u *store.User) error { u.Username = "robert"; return nil }); err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	dave := mustUser(t, s, store.User{Username: "dave"})
	mustToken(t, s, store.Token{ID: "td", UserID: dave.ID})
	mustRole(t, s, store.Role{Name: "extra"})
	if err := s.ClearRegistryRequests(ctx); err != nil {
		t.Fatalf("ClearRegistryRequests: %v", err)
	}
	if err := s.PutSetting(ctx, "ca", []byte("changed")); err != nil {
		t.Fatalf("PutSetting: %v", err)
	}
	if err := s.PutSetting(ctx, "new", []byte("x")); err != nil {
		t.Fatalf("PutSetting: %v", err)
	}

	ch, err := s.Watch(ctx)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	if err := s.Restore(ctx, snap); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	e := nextEvent(t, ch)
	if e.Kind != store.KindReset {
		t.Errorf("event after Restore = %+v, want KindReset", e)
	}
	if v, err := s.Version(ctx); err != nil || e.Version != v || v <= snap.Version {
		t.Errorf("reset Version = %d, store Version = %d (%v), snapshot Version = %d; want equal and past the snapshot's", e.Version, v, err, snap.Version)
	}
	if diff := SameModel(snapshot(t, s), snap); diff != "" {
		t.Errorf("model after Restore differs from the snapshot:\n%s", diff)
	}

	// Indexes are rebuilt: lookups by name and per-user tokens work,
	// names created after the snapshot are free again.
	if got, err := s.UserByUsername(ctx, "alice"); err != nil || got.ID != alice.ID {
		t.Errorf("UserByUsername(alice) after Restore = %q, %v; want %q", got.ID, err, alice.ID)
	}
	if got, err := s.UserByUsername(ctx, "bob"); err != nil || got.ID != bob.ID {
		t.Errorf("UserByUsername(bob) after Restore = %q, %v", got.ID, err)
	}
	for _, name := range []string{"robert", "dave"} {
		if _, err := s.UserByUsername(ctx, name); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("UserByUsername(%s) after Restore: err = %v, want ErrNotFound", name, err)
		}
	}
	if _, err := s.RoleByName(ctx, "alice-role"); err != nil {
		t.Errorf("RoleByName(alice-role) after Restore: %v", err)
	}
	if _, err := s.RoleByName(ctx, "extra"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RoleByName(extra) after Restore: err = %v, want ErrNotFound", err)
	}
	if toks, err := s.UserTokens(ctx, alice.ID); err != nil || !slices.Equal(tokenIDs(toks), []string{"ta"}) {
		t.Errorf("UserTokens(alice) after Restore = %v, %v; want [ta]", tokenIDs(toks), err)
	}
	if v, err := s.Setting(ctx, "empty"); err != nil || len(v) != 0 {
		t.Errorf("Setting(empty) after Restore = %q, %v; want an empty value", v, err)
	}
	if toks, err := s.UserTokens(ctx, dave.ID); err != nil || len(toks) != 0 {
		t.Errorf("UserTokens(dave) after Restore = %v, %v; want none", tokenIDs(toks), err)
	}
	mustUser(t, s, store.User{Username: "dave"})
	if _, err := s.CreateUser(ctx, store.User{Username: "bob"}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("CreateUser(bob) after Restore: err = %v, want ErrConflict", err)
	}
	if n, err := s.DeleteUserTokens(ctx, bob.ID); err != nil || n != 1 {
		t.Errorf("DeleteUserTokens(bob) after Restore = %d, %v; want 1", n, err)
	}

	// Restoring an empty snapshot empties the store.
	if err := s.Restore(ctx, store.Snapshot{}); err != nil {
		t.Fatalf("Restore(empty): %v", err)
	}
	if diff := SameModel(snapshot(t, s), store.Snapshot{}); diff != "" {
		t.Errorf("model after empty Restore:\n%s", diff)
	}
	if _, err := s.UserByUsername(ctx, "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UserByUsername(alice) after empty Restore: err = %v, want ErrNotFound", err)
	}
}

func testRestoreInvalid(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	fill(t, s)
	before := snapshot(t, s)
	u := before.Users[0]
	dupName := before
	dupName.Users = append(slices.Clone(before.Users), store.User{ID: "other-id", Username: u.Username})
	dangling := before
	dangling.Users = append(slices.Clone(before.Users), store.User{ID: "other-id", Username: "zed", Roles: []string{"no-such-role"}})
	orphanToken := before
	orphanToken.Tokens = append(slices.Clone(before.Tokens), store.Token{ID: "tz", UserID: "no-such-user"})
	dupRole := before
	dupRole.Roles = append(slices.Clone(before.Roles), store.Role{ID: "other-role", Name: before.Roles[0].Name})
	badPerm := before
	badPerm.Roles = append(slices.Clone(before.Roles), store.Role{ID: "bad-role", Name: "bad", Permissions: []acl.Permission{invalidPerm}})

	ch, err := s.Watch(ctx)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	for _, tc := range []struct {
		name string
		snap store.Snapshot
	}{
		{"duplicate username", dupName},
		{"user holding a missing role", dangling},
		{"token of a missing user", orphanToken},
		{"duplicate role name", dupRole},
		{"invalid permission", badPerm},
	} {
		err := s.Restore(ctx, tc.snap)
		if err == nil {
			t.Errorf("Restore with %s succeeded", tc.name)
		} else if !errors.Is(err, store.ErrInvalid) {
			t.Errorf("Restore with %s: err = %v, want ErrInvalid", tc.name, err)
		}
		after := snapshot(t, s)
		if diff := SameModel(after, before); diff != "" {
			t.Errorf("failed Restore with %s changed the model:\n%s", tc.name, diff)
		}
		if after.Version != before.Version {
			t.Errorf("failed Restore with %s changed the version: %d -> %d", tc.name, before.Version, after.Version)
		}
	}
	if _, err := s.UserByUsername(ctx, "zed"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UserByUsername(zed) after failed restores: err = %v", err)
	}
	select {
	case e := <-ch:
		t.Errorf("failed Restore emitted %+v", e)
	default:
	}
}

// testRestoreKeeping: the settings the patterns select keep the store's
// values (or stay absent), whatever the snapshot holds for them; every
// other record and setting comes from the snapshot.
func testRestoreKeeping(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	fill(t, s)
	for k, v := range map[string]string{"k/a": "old-a", "k/b": "old-b", "exact": "old-exact", "exactly": "old-exactly", "k": "old-k"} {
		if err := s.PutSetting(ctx, k, []byte(v)); err != nil {
			t.Fatalf("PutSetting: %v", err)
		}
	}
	snap := snapshot(t, s)
	snap.Settings["k/a"] = []byte("snap-a")
	snap.Settings["k/c"] = []byte("snap-c")
	snap.Settings["exact"] = []byte("snap-exact")
	snap.Settings["exactly"] = []byte("snap-exactly")
	snap.Settings["k"] = []byte("snap-k")

	// Changes after the snapshot: a kept setting changes, a user goes.
	if err := s.PutSetting(ctx, "k/b", []byte("new-b")); err != nil {
		t.Fatalf("PutSetting: %v", err)
	}
	alice, err := s.UserByUsername(ctx, "alice")
	if err != nil {
		t.Fatalf("UserByUsername: %v", err)
	}
	if err := s.DeleteUser(ctx, alice.ID); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	ch, err := s.Watch(ctx)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	if err := s.RestoreKeeping(ctx, snap, []string{"k/", "exact"}); err != nil {
		t.Fatalf("RestoreKeeping: %v", err)
	}
	if e := nextEvent(t, ch); e.Kind != store.KindReset {
		t.Errorf("event after RestoreKeeping = %+v, want KindReset", e)
	}
	want := snap
	want.Settings = maps.Clone(snap.Settings)
	want.Settings["k/a"] = []byte("old-a")
	want.Settings["k/b"] = []byte("new-b")
	delete(want.Settings, "k/c")
	want.Settings["exact"] = []byte("old-exact")
	if diff := SameModel(snapshot(t, s), want); diff != "" {
		t.Errorf("model after RestoreKeeping:\n%s", diff)
	}
	if _, err := s.UserByUsername(ctx, "alice"); err != nil {
		t.Errorf("alice after RestoreKeeping: %v", err)
	}

	// Keeping settings of a store that has none leaves them absent.
	if err := s.Restore(ctx, store.Snapshot{}); err != nil {
		t.Fatalf("Restore(empty): %v", err)
	}
	if err := s.RestoreKeeping(ctx, snap, []string{"k/"}); err != nil {
		t.Fatalf("RestoreKeeping: %v", err)
	}
	for _, k := range []string{"k/a", "k/b", "k/c"} {
		if v, err := s.Setting(ctx, k); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Setting(%s) = %q, %v; want ErrNotFound", k, v, err)
		}
	}
	if v, err := s.Setting(ctx, "exact"); err != nil || string(v) != "snap-exact" {
		t.Errorf("Setting(exact) = %q, %v; want the snapshot's", v, err)
	}

	if err := s.RestoreKeeping(ctx, snap, []string{""}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("RestoreKeeping with an empty pattern: err = %v, want ErrInvalid", err)
	}
}

// ---- close ----

func testClose(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	u := mustUser(t, s, store.User{Username: "alice"})
	snap := snapshot(t, s)
	ch, err := s.Watch(ctx)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	waitClosed(t, ch)

	noopUser := func(*store.User) error { return nil }
	calls := map[string]func() error{
		"User":                  func() error { _, err := s.User(ctx, u.ID); return err },
		"UserByUsername":        func() error { _, err := s.UserByUsername(ctx, "alice"); return err },
		"Users":                 func() error { _, err := s.Users(ctx); return err },
		"CreateUser":            func() error { _, err := s.CreateUser(ctx, store.User{Username: "bob"}); return err },
		"UpdateUser":            func() error { _, err := s.UpdateUser(ctx, u.ID, noopUser); return err },
		"DeleteUser":            func() error { return s.DeleteUser(ctx, u.ID) },
		"CreateRole":            func() error { _, err := s.CreateRole(ctx, store.Role{Name: "r"}); return err },
		"Roles":                 func() error { _, err := s.Roles(ctx); return err },
		"DeleteRole":            func() error { return s.DeleteRole(ctx, "r") },
		"CreateToken":           func() error { _, err := s.CreateToken(ctx, store.Token{ID: "t", UserID: u.ID}); return err },
		"UserTokens":            func() error { _, err := s.UserTokens(ctx, u.ID); return err },
		"DeleteUserTokens":      func() error { _, err := s.DeleteUserTokens(ctx, u.ID); return err },
		"CreateRegistryRequest": func() error { _, err := s.CreateRegistryRequest(ctx, store.RegistryRequest{Username: "d"}); return err },
		"RegistryRequests":      func() error { _, err := s.RegistryRequests(ctx); return err },
		"ClearRegistryRequests": func() error { return s.ClearRegistryRequests(ctx) },
		"Setting":               func() error { _, err := s.Setting(ctx, "k"); return err },
		"PutSetting":            func() error { return s.PutSetting(ctx, "k", []byte("v")) },
		"CreateSetting":         func() error { return s.CreateSetting(ctx, "k", []byte("v")) },
		"DeleteSetting":         func() error { return s.DeleteSetting(ctx, "k") },
		"SettingKeys":           func() error { _, err := s.SettingKeys(ctx, "k"); return err },
		"Watch":                 func() error { _, err := s.Watch(ctx); return err },
		"Version":               func() error { _, err := s.Version(ctx); return err },
		"Snapshot":              func() error { _, err := s.Snapshot(ctx); return err },
		"Restore":               func() error { return s.Restore(ctx, snap) },
		"Ping":                  func() error { return s.Ping(ctx) },
	}
	for name, call := range calls {
		wantErr(t, name+" after Close", call(), store.ErrClosed)
	}
}

// ---- redis-server ----

// Redis is a redis-server process started for a test by StartRedis. It is
// stopped when the test ends; Stop ends it earlier, to test how a store
// behaves when Redis goes away.
type Redis struct {
	// URL selects database 0 of the server, for store.OpenRedis.
	URL string
	// Addr is the server's host:port, for go-redis options.
	Addr string

	cmd    *exec.Cmd
	out    bytes.Buffer  // the server's output; read only after exited
	exited chan struct{} // closed once the process has been waited for
	once   sync.Once
}

// StartRedis starts a redis-server without persistence on a free loopback
// port and waits until it answers PING. The server is killed when the test
// ends. A missing redis-server fails the test: the Redis store must never
// go untested by accident.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not found; install it with `apt-get install redis-server` or run `make test`, which installs it (%v)", err)
	}
	dir := t.TempDir()
	// The free port may be taken between our probe and the server's bind;
	// a server that exits early is retried on another port.
	var errs []error
	for range 3 {
		r, err := startRedis(bin, dir)
		if err == nil {
			t.Cleanup(r.Stop)
			return r
		}
		errs = append(errs, err)
	}
	t.Fatalf("start redis-server: %v", errors.Join(errs...))
	return nil
}

func startRedis(bin, dir string) (*Redis, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("find a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	return startRedisAt(bin, dir, port)
}

// startRedisAt starts redis-server without persistence on the port.
func startRedisAt(bin, dir string, port int) (*Redis, error) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	r := &Redis{
		URL:    "redis://" + addr + "/0",
		Addr:   addr,
		exited: make(chan struct{}),
	}
	r.cmd = exec.Command(bin, "--save", "", "--appendonly", "no",
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir)
	r.cmd.Stdout = &r.out
	r.cmd.Stderr = &r.out
	if err := r.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		_ = r.cmd.Wait()
		close(r.exited)
	}()

	client := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second, MaxRetries: -1})
	defer client.Close()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := client.Ping(ctx).Err()
		cancel()
		if err == nil {
			return r, nil
		}
		select {
		case <-r.exited:
			return nil, fmt.Errorf("redis-server on port %d exited: %s", port, strings.TrimSpace(r.out.String()))
		case <-deadline.C:
			r.Stop()
			return nil, fmt.Errorf("redis-server on port %d did not answer PING within 10s: %v; output: %s", port, err, strings.TrimSpace(r.out.String()))
		case <-tick.C:
		}
	}
}

// Stop kills the server and waits for it to exit. It is safe to call more
// than once.
func (r *Redis) Stop() {
	r.once.Do(func() {
		_ = r.cmd.Process.Kill()
		<-r.exited
	})
}

// Client returns a go-redis client of the server, closed when the test
// ends, for test set-up and fault injection (FLUSHALL, CLIENT KILL).
func (r *Redis) Client(t testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: r.Addr})
	t.Cleanup(func() { _ = c.Close() })
	return c
}
