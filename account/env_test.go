package account_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/warden-mqtt/warden/account"
	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

// fixture is a Service over a real store seeded with RoleAdmin and an
// admin holding it.
type fixture struct {
	t         *testing.T
	st        store.Store
	svc       *account.Service
	adminRole store.Role
	admin     account.Actor
}

// testParams keep hashing in the tests quick.
var testParams = credential.Params{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// testPassword meets the default policy.
const testPassword = "password-of-12"

// lockoutFailures is how many wrong current passwords lock a user out
// of a password change from one address.
const lockoutFailures = 2

// eachStore runs fn on a fixture over bbolt and over a redis-server of
// the test's own: the rules that run in a store transaction must hold on
// both (Redis transactions are optimistic and rerun).
func eachStore(t *testing.T, fn func(t *testing.T, f *fixture)) {
	t.Run("bolt", func(t *testing.T) {
		t.Parallel()
		fn(t, newFixture(t, storetest.OpenBolt(t)))
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		fn(t, newFixture(t, storetest.OpenRedis(t)))
	})
}

// boltFixture is a fixture over bbolt, for rules without a transaction.
func boltFixture(t *testing.T) *fixture {
	return newFixture(t, storetest.OpenBolt(t))
}

func newFixture(t *testing.T, st store.Store) *fixture {
	t.Helper()
	v, err := credential.NewVerifier(credential.VerifierOptions{Params: testParams})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := account.New(account.Options{
		Store: st, Verifier: v, Params: testParams, Logger: slog.New(slog.DiscardHandler),
		Lockout: credential.NewLockout(credential.LockoutOptions{MaxPerUserIP: lockoutFailures}),
	})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, st: st, svc: svc}
	ctx := context.Background()
	if f.adminRole, err = st.CreateRole(ctx, store.Role{Name: account.RoleAdmin, IsShared: true, Permissions: []acl.Permission{
		httpPerm("/#", acl.OpReadWrite), mqttPerm("#", acl.OpReadWrite),
	}}); err != nil {
		t.Fatal(err)
	}
	h, err := credential.Hash(testPassword, testParams)
	if err != nil {
		t.Fatal(err)
	}
	u, err := st.CreateUser(ctx, store.User{Username: "admin", PasswordHash: h, Roles: []string{f.adminRole.ID}})
	if err != nil {
		t.Fatal(err)
	}
	f.admin = f.actor(u)
	return f
}

func httpPerm(resource string, op acl.Operation) acl.Permission {
	return acl.Permission{Resource: resource, Operation: op, Context: acl.ContextHTTP}
}

func mqttPerm(resource string, op acl.Operation) acl.Permission {
	return acl.Permission{Resource: resource, Operation: op, Context: acl.ContextMQTT}
}

// actor is u, as read from the store now, with its effective permissions.
func (f *fixture) actor(u store.User) account.Actor {
	f.t.Helper()
	u, err := f.st.User(context.Background(), u.ID)
	if err != nil {
		f.t.Fatal(err)
	}
	perms, err := f.svc.Permissions(context.Background(), u)
	if err != nil {
		f.t.Fatal(err)
	}
	return account.Actor{User: u, Permissions: perms, Remote: "192.0.2.1:1234"}
}

// user creates a user with testPassword, the roles and its own role
// holding perms, as the admin.
func (f *fixture) user(name string, roles []string, perms ...acl.Permission) store.User {
	f.t.Helper()
	u, err := f.svc.CreateUser(context.Background(), f.admin, account.NewUser{
		Username: name, Password: testPassword, Roles: roles, InitialPermissions: perms,
		GrantTypes: []store.GrantType{{Method: store.GrantPassword}},
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return u
}

// ownRoleOf returns the ID of u's own role.
func (f *fixture) ownRoleOf(u store.User) string {
	f.t.Helper()
	ro, err := f.st.RoleByName(context.Background(), u.Username)
	if err != nil || ro.OwnerID != u.ID {
		f.t.Fatalf("own role of %s: %+v %v", u.Username, ro, err)
	}
	return ro.ID
}

// wantErr fails unless err is of kind want (nil: no error) and, when msg
// is set, the refusal's message (a store may wrap it with context) is msg.
func wantErr(t *testing.T, what string, err, want error, msg string) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Fatalf("%s: %v, want no error", what, err)
	case want != nil && !errors.Is(err, want):
		t.Fatalf("%s: %v, want %v", what, err, want)
	case msg != "" && refusal(err) != msg:
		t.Fatalf("%s: %q, want %q", what, refusal(err), msg)
	}
}

// refusal is the message an *account.Error in err's chain gives the
// actor, or err's text.
func refusal(err error) string {
	var e *account.Error
	if errors.As(err, &e) {
		return e.Msg
	}
	if err == nil {
		return ""
	}
	return err.Error()
}
