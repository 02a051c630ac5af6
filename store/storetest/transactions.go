package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/store"
)

// The contract of Store.Atomic and of usernames (NFC, unique under case
// folding): multi-record changes commit together or not at all, also
// when two writers race; the races are forced to overlap where the
// backend lets them.

// errLastHolder is what the last-holder check of the race tests returns.
var errLastHolder = errors.New("the last holder of the role cannot lose it")

func testAtomicAllOrNothing(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	boom := errors.New("boom")
	err := s.Atomic(ctx, func(tx store.Tx) error {
		if _, err := tx.CreateUserWithRole(store.User{Username: "early"}, []acl.Permission{mqttPerm("a/#", acl.OpRead)}); err != nil {
			return err
		}
		// Reads inside the transaction see its own writes.
		if u, err := tx.UserByUsername("early"); err != nil || u.Username != "early" {
			return fmt.Errorf("UserByUsername inside the transaction = %+v, %v", u, err)
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Atomic: err = %v, want the function's error", err)
	}
	wantEmpty(t, s, "after a failed Atomic")

	// A batch whose third user folds like the first: nobody is stored.
	err = s.Atomic(ctx, func(tx store.Tx) error {
		for _, name := range []string{"u1", "u2", "U1"} {
			if _, err := tx.CreateUserWithRole(store.User{Username: name}, nil); err != nil {
				return err
			}
		}
		return nil
	})
	wantErr(t, "batch with a folded duplicate", err, store.ErrConflict)
	wantEmpty(t, s, "after a refused batch")

	err = s.Atomic(ctx, func(tx store.Tx) error {
		for _, name := range []string{"u1", "u2", "u3"} {
			if _, err := tx.CreateUserWithRole(store.User{Username: name}, []acl.Permission{mqttPerm(name+"/#", acl.OpReadWrite)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("batch: %v", err)
	}
	users, err := s.Users(ctx)
	if err != nil || !slices.Equal(usernames(users), []string{"u1", "u2", "u3"}) {
		t.Fatalf("Users after the batch = %v, %v", usernames(users), err)
	}
	for _, u := range users {
		r, err := s.RoleByName(ctx, u.Username)
		if err != nil || r.OwnerID != u.ID || len(u.Roles) == 0 || u.Roles[0] != r.ID {
			t.Errorf("own role of %s = %+v, %v; user roles %v", u.Username, r, err, u.Roles)
		}
	}
}

// wantEmpty fails unless the store holds no user and no role.
func wantEmpty(t *testing.T, s store.Store, when string) {
	t.Helper()
	ctx := testCtx(t)
	users, err := s.Users(ctx)
	if err != nil || len(users) != 0 {
		t.Errorf("Users %s = %v, %v; want none", when, usernames(users), err)
	}
	roles, err := s.Roles(ctx)
	if err != nil || len(roles) != 0 {
		t.Errorf("Roles %s = %v, %v; want none", when, roleNames(roles), err)
	}
}

// holders counts the users of tx holding role rid and not suspended.
func holders(tx store.Tx, rid string) (int, error) {
	users, err := tx.Users()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, u := range users {
		if !u.Suspended && slices.Contains(u.Roles, rid) {
			n++
		}
	}
	return n, nil
}

// meet lets two transactions' first attempts wait for each other after
// their reads, so both read the same state before either commits. A
// backend that serialises writers (bbolt) never lets the second in while
// the first waits: the wait then ends after a short while, which costs
// time, not correctness.
type meet struct {
	once [2]sync.Once
	ch   [2]chan struct{}
}

func newMeet() *meet { return &meet{ch: [2]chan struct{}{make(chan struct{}), make(chan struct{})}} }

func (m *meet) arrive(i int) {
	m.once[i].Do(func() {
		close(m.ch[i])
		select {
		case <-m.ch[1-i]:
		case <-time.After(300 * time.Millisecond):
		}
	})
}

// testLastHolderRace: two admins, each removed by its own transaction
// that refuses to leave the role without a holder. Whatever the
// interleaving, exactly one removal commits and one holder remains: the
// check and the write are one transaction, on bbolt and on Redis.
func testLastHolderRace(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	role := mustRole(t, s, store.Role{Name: "admins", IsShared: true})
	mustUser(t, s, store.User{Username: "bystander"})
	removals := map[string]func(tx store.Tx, id string) error{
		"delete": func(tx store.Tx, id string) error { return tx.DeleteUser(id) },
		"role removal": func(tx store.Tx, id string) error {
			_, err := tx.UpdateUser(id, func(u *store.User) error {
				u.Roles = slices.DeleteFunc(u.Roles, func(r string) bool { return r == role.ID })
				return nil
			})
			return err
		},
	}
	round := 0
	for _, first := range []string{"delete", "role removal"} {
		for _, second := range []string{"delete", "role removal"} {
			for _, forced := range []bool{true, false} {
				round++
				name := fmt.Sprintf("%s vs %s (overlap forced: %v)", first, second, forced)
				a := mustUser(t, s, store.User{Username: fmt.Sprintf("a%d", round), Roles: []string{role.ID}})
				b := mustUser(t, s, store.User{Username: fmt.Sprintf("b%d", round), Roles: []string{role.ID}})
				targets := [2]store.User{a, b}
				kinds := [2]string{first, second}
				m := newMeet()
				errs := concurrently(2, func(i int) error {
					return s.Atomic(ctx, func(tx store.Tx) error {
						before, err := holders(tx, role.ID)
						if err != nil {
							return err
						}
						if forced {
							m.arrive(i)
						}
						if err := removals[kinds[i]](tx, targets[i].ID); err != nil {
							return err
						}
						after, err := holders(tx, role.ID)
						if err != nil {
							return err
						}
						if before > 0 && after == 0 {
							return errLastHolder
						}
						return nil
					})
				})
				ok, refused := 0, 0
				for _, err := range errs {
					switch {
					case err == nil:
						ok++
					case errors.Is(err, errLastHolder):
						refused++
					default:
						t.Errorf("%s: unexpected error %v", name, err)
					}
				}
				if ok != 1 || refused != 1 {
					t.Errorf("%s: %d removals committed and %d were refused, want 1 and 1", name, ok, refused)
				}
				var left int
				if err := s.Atomic(ctx, func(tx store.Tx) (err error) {
					left, err = holders(tx, role.ID)
					return err
				}); err != nil {
					t.Fatal(err)
				}
				if left != 1 {
					t.Fatalf("%s: %d holders left, want 1", name, left)
				}
				// Start the next round with no holder: remove the survivor
				// outside the rule.
				for _, u := range targets {
					if err := s.DeleteUser(ctx, u.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
						t.Fatal(err)
					}
				}
			}
		}
	}
}

// testRenameRenamesOwnRole: a user's own role follows its name in the
// same transaction; a rename the role cannot follow changes nothing.
func testRenameRenamesOwnRole(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	u, err := store.CreateUserWithRole(ctx, s, store.User{Username: "alice"}, []acl.Permission{mqttPerm("alice/#", acl.OpReadWrite)})
	if err != nil {
		t.Fatal(err)
	}
	own := u.Roles[0]
	if _, err := s.UpdateUser(ctx, u.ID, func(x *store.User) error { x.Username = "alice2"; return nil }); err != nil {
		t.Fatalf("rename: %v", err)
	}
	if r, err := s.Role(ctx, own); err != nil || r.Name != "alice2" {
		t.Errorf("own role after the rename = %q, %v; want it named alice2", r.Name, err)
	}
	if _, err := s.RoleByName(ctx, "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RoleByName(old name): err = %v, want ErrNotFound", err)
	}
	mustRole(t, s, store.Role{Name: "taken", IsShared: true})
	_, err = s.UpdateUser(ctx, u.ID, func(x *store.User) error { x.Username = "taken"; return nil })
	wantErr(t, "rename onto the name of another role", err, store.ErrConflict)
	if got := mustGetUser(t, s, u.ID); got.Username != "alice2" {
		t.Errorf("refused rename changed the username to %q", got.Username)
	}
	if r, err := s.Role(ctx, own); err != nil || r.Name != "alice2" {
		t.Errorf("refused rename changed the own role to %q, %v", r.Name, err)
	}
	// Roles that are not the user's own keep their names.
	if r, err := s.RoleByName(ctx, "taken"); err != nil || r.OwnerID != "" {
		t.Errorf("role taken = %+v, %v", r, err)
	}
}

// testConcurrentRenameFold: two users renamed at once to names that fold
// alike: one wins, and each user's own role carries its user's name.
func testConcurrentRenameFold(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	var ids [2]string
	for i, name := range []string{"p", "q"} {
		u, err := store.CreateUserWithRole(ctx, s, store.User{Username: name + "-user"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = u.ID
	}
	targets := [2]string{"Carol", "carol"}
	errs := concurrently(2, func(i int) error {
		_, err := s.UpdateUser(ctx, ids[i], func(u *store.User) error { u.Username = targets[i]; return nil })
		return err
	})
	exactlyOneWins(t, "concurrent renames to Carol and carol", errs)
	for _, id := range ids {
		u := mustGetUser(t, s, id)
		r, err := s.Role(ctx, u.Roles[0])
		if err != nil || r.Name != u.Username {
			t.Errorf("user %s: own role named %q, %v; want the user's name", u.Username, r.Name, err)
		}
	}
}

func testUsernameFolding(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	adm := mustUser(t, s, store.User{Username: "admin"})
	for _, name := range []string{"Admin", "ADMIN", "ａｄｍｉｎ", "ad\u200bmin", "admin\ufe0f"} {
		_, err := s.CreateUser(ctx, store.User{Username: name})
		wantErr(t, fmt.Sprintf("CreateUser(%q) beside admin", name), err, store.ErrConflict)
	}
	bob := mustUser(t, s, store.User{Username: "bob"})
	_, err := s.UpdateUser(ctx, bob.ID, func(u *store.User) error { u.Username = "AdMiN"; return nil })
	wantErr(t, "rename bob to AdMiN", err, store.ErrConflict)
	// A user may change the case of its own name.
	if _, err := s.UpdateUser(ctx, adm.ID, func(u *store.User) error { u.Username = "Admin"; return nil }); err != nil {
		t.Fatalf("rename admin to Admin: %v", err)
	}
	if _, err := s.UserByUsername(ctx, "admin"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("lookups do not fold case: UserByUsername(admin) err = %v, want ErrNotFound", err)
	}
	if err := s.DeleteUser(ctx, adm.ID); err != nil {
		t.Fatal(err)
	}
	mustUser(t, s, store.User{Username: "ADMIN"}) // the name is free again

	errs := concurrently(6, func(i int) error {
		_, err := s.CreateUser(ctx, store.User{Username: []string{"dave", "Dave", "DAVE", "dAve", "daVe", "davE"}[i]})
		return err
	})
	exactlyOneWins(t, "concurrent CreateUser of names folding alike", errs)
}

func testUsernameNormalization(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	const nfd, nfc = "Jose\u0301", "Jos\u00e9"
	u := mustUser(t, s, store.User{Username: nfd})
	if u.Username != nfc {
		t.Errorf("stored username = %q, want the NFC form %q", u.Username, nfc)
	}
	for _, name := range []string{nfd, nfc} {
		if got, err := s.UserByUsername(ctx, name); err != nil || got.ID != u.ID {
			t.Errorf("UserByUsername(%q) = %q, %v; want %q", name, got.ID, err, u.ID)
		}
	}
	_, err := s.CreateUser(ctx, store.User{Username: nfc})
	wantErr(t, "CreateUser of the NFC spelling", err, store.ErrConflict)

	if _, err := s.CreateRegistryRequest(ctx, store.RegistryRequest{Username: "Zo\u0308e"}); err != nil {
		t.Fatal(err)
	}
	if q, err := s.RegistryRequest(ctx, "Z\u00f6e"); err != nil || q.Username != "Z\u00f6e" {
		t.Errorf("RegistryRequest(NFC) = %q, %v; want the request, keyed in NFC", q.Username, err)
	}
	if err := s.DeleteRegistryRequest(ctx, "Zo\u0308e"); err != nil {
		t.Errorf("DeleteRegistryRequest(NFD): %v", err)
	}
}

// testRestoreKeepsFoldDuplicates: names that fold alike in a backup from
// before the rule keep working; only new names are refused.
func testRestoreKeepsFoldDuplicates(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	snap := store.Snapshot{Users: []store.User{
		{ID: "id-upper", Username: "Admin", CreatedAt: ts(1), UpdatedAt: ts(1)},
		{ID: "id-lower", Username: "admin", CreatedAt: ts(2), UpdatedAt: ts(2)},
	}}
	if err := s.Restore(ctx, snap); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	for name, id := range map[string]string{"Admin": "id-upper", "admin": "id-lower"} {
		if u, err := s.UserByUsername(ctx, name); err != nil || u.ID != id {
			t.Errorf("UserByUsername(%s) = %q, %v; want %q", name, u.ID, err, id)
		}
	}
	_, err := s.CreateUser(ctx, store.User{Username: "ADMIN"})
	wantErr(t, "CreateUser(ADMIN) beside Admin and admin", err, store.ErrConflict)
	if err := s.DeleteUser(ctx, "id-upper"); err != nil {
		t.Fatal(err)
	}
	_, err = s.CreateUser(ctx, store.User{Username: "ADMIN"})
	wantErr(t, "CreateUser(ADMIN) beside admin", err, store.ErrConflict)
	if _, err := s.UpdateUser(ctx, "id-lower", func(u *store.User) error { u.Username = "other"; return nil }); err != nil {
		t.Fatal(err)
	}
	mustUser(t, s, store.User{Username: "ADMIN"})
}
