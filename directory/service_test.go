package directory_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/warden-mqtt/warden/audit"
	"github.com/warden-mqtt/warden/directory"
	"github.com/warden-mqtt/warden/internal/ldaptest"
	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

func newService(t *testing.T, c directory.Config) (*directory.Service, store.Store) {
	t.Helper()
	st := storetest.OpenBolt(t)
	return directory.NewService(newProvider(t, c), st, nil), st
}

func createRole(t *testing.T, st store.Store, name string, groups ...string) store.Role {
	t.Helper()
	r, err := st.CreateRole(context.Background(), store.Role{Name: name, IsShared: true, LdapGroups: groups})
	if err != nil {
		t.Fatalf("CreateRole %s: %v", name, err)
	}
	return r
}

func TestServiceLoginCreatesUserWithGroupRoles(t *testing.T) {
	d := ldaptest.Start(t)
	svc, st := newService(t, searchConfig(d))
	ctx := context.Background()
	staff := createRole(t, st, "staff", "CN=Staff, ou=groups,dc=example,dc=org") // nested: Alice via Operators
	admins := createRole(t, st, "admins", ldaptest.Admins)

	u, err := svc.Login(ctx, "alice", ldaptest.Alice.Password)
	if err != nil {
		t.Fatalf("Login alice: %v", err)
	}
	if u.IdentityProvider != "ldap" || u.PasswordHash != "" || !slices.Equal(u.LdapRoles, []string{staff.ID}) {
		t.Fatalf("alice = provider %q hash %q ldapRoles %v; want ldap, no hash, [%s]", u.IdentityProvider, u.PasswordHash, u.LdapRoles, staff.ID)
	}
	stored, err := st.UserByUsername(ctx, "alice")
	if err != nil || stored.ID != u.ID {
		t.Fatalf("stored alice: %+v, %v", stored, err)
	}

	// Group change, applied at the next login; hand-given roles stay.
	hand := createRole(t, st, "hand")
	if _, err := st.UpdateUser(ctx, u.ID, func(x *store.User) error { x.Roles = append(x.Roles, hand.ID); return nil }); err != nil {
		t.Fatal(err)
	}
	d.Modify(t, "dn: "+ldaptest.Admins+"\nchangetype: modify\nadd: member\nmember: "+ldaptest.Alice.DN+"\n")
	svc.Provider().Forget("alice")
	u, err = svc.Login(ctx, "alice", ldaptest.Alice.Password)
	if err != nil {
		t.Fatal(err)
	}
	want := sortedCopy(staff.ID, admins.ID)
	if !slices.Equal(u.LdapRoles, want) || !slices.Equal(u.Roles, []string{hand.ID}) {
		t.Fatalf("after group change: ldapRoles %v roles %v; want %v and [%s]", u.LdapRoles, u.Roles, want, hand.ID)
	}
	// Nothing changed: no write.
	before, _ := st.Version(ctx)
	if _, err := svc.Login(ctx, "alice", ldaptest.Alice.Password); err != nil {
		t.Fatal(err)
	}
	if after, _ := st.Version(ctx); after != before {
		t.Errorf("an unchanged login wrote the store (version %d -> %d)", before, after)
	}
}

func sortedCopy(ids ...string) []string { slices.Sort(ids); return ids }

func TestServiceLoginAttributeMode(t *testing.T) {
	d := ldaptest.Start(t)
	c := searchConfig(d)
	c.Mode, c.RoleAttribute = directory.ModeAttribute, ldaptest.RoleAttribute
	svc, st := newService(t, c)
	op := createRole(t, st, "operator") // "viewer" names no role: ignored
	u, err := svc.Login(context.Background(), "alice", ldaptest.Alice.Password)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(u.LdapRoles, []string{op.ID}) {
		t.Fatalf("ldapRoles %v; want [%s]", u.LdapRoles, op.ID)
	}
}

func TestServiceLoginRefusals(t *testing.T) {
	d := ldaptest.Start(t)
	svc, st := newService(t, searchConfig(d))
	ctx := context.Background()
	if _, err := st.CreateUser(ctx, store.User{Username: "bob", IdentityProvider: "local", Roles: []string{}}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, user, password string
		want                 error
	}{
		{"wrong password", "alice", "nope", directory.ErrInvalidCredentials},
		{"disabled user", "dave", ldaptest.Dave.Password, directory.ErrInvalidCredentials},
		{"unknown user", "nobody", "x", directory.ErrInvalidCredentials},
		{"local user of the name", "bob", ldaptest.Bob.Password, directory.ErrShadowed},
		{"other spelling", "ALICE", ldaptest.Alice.Password, directory.ErrInvalidCredentials},
	}
	for _, tc := range cases {
		if _, err := svc.Login(ctx, tc.user, tc.password); !errors.Is(err, tc.want) {
			t.Errorf("%s: Login = %v; want %v", tc.name, err, tc.want)
		}
	}
	if b, _ := st.UserByUsername(ctx, "bob"); b.IdentityProvider != "local" {
		t.Errorf("local bob taken over: %+v", b)
	}
	for _, name := range []string{"dave", "nobody", "ALICE"} {
		if _, err := st.UserByUsername(ctx, name); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s was created: %v", name, err)
		}
	}
}

func TestServiceLoginDirectoryDown(t *testing.T) {
	d := ldaptest.Start(t)
	c := searchConfig(d)
	c.CacheTTL = time.Minute
	svc, _ := newService(t, c)
	ctx := context.Background()
	if _, err := svc.Login(ctx, "alice", ldaptest.Alice.Password); err != nil {
		t.Fatal(err)
	}
	d.Stop()
	if _, err := svc.Login(ctx, "alice", ldaptest.Alice.Password); err != nil {
		t.Errorf("cached alice with the directory down: %v", err)
	}
	if _, err := svc.Login(ctx, "bob", ldaptest.Bob.Password); !errors.Is(err, directory.ErrUnavailable) {
		t.Errorf("uncached bob with the directory down: %v; want ErrUnavailable", err)
	}
}

func TestServiceRecheckRetiresRemovedUser(t *testing.T) {
	d := ldaptest.Start(t)
	c := searchConfig(d)
	c.CacheTTL = time.Minute
	svc, st := newService(t, c)
	var trail bytes.Buffer
	svc.SetAudit(audit.New(&trail))
	ctx := context.Background()
	createRole(t, st, "admins", ldaptest.Admins)
	bob, err := svc.Login(ctx, "bob", ldaptest.Bob.Password)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Login(ctx, "alice", ldaptest.Alice.Password); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateToken(ctx, store.Token{ID: "tok-bob", UserID: bob.ID, Kind: "login", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if gone, err := svc.Recheck(ctx); err != nil || gone != 0 {
		t.Fatalf("Recheck with everyone present = %d, %v", gone, err)
	}
	d.Modify(t, "dn: "+ldaptest.Bob.DN+"\nchangetype: delete\n")
	if gone, err := svc.Recheck(ctx); err != nil || gone != 1 {
		t.Fatalf("Recheck after deleting bob = %d, %v; want 1", gone, err)
	}
	if s := trail.String(); !strings.Contains(s, "ldap-recheck") || !strings.Contains(s, "bob") || strings.Contains(s, "alice") {
		t.Errorf("audit trail of the recheck: %s", s)
	}
	b, _ := st.User(ctx, bob.ID)
	if b.IdentityProvider != directory.IdentityProviderLDAPGone || len(b.LdapRoles) != 0 {
		t.Errorf("bob after recheck: provider %q ldapRoles %v", b.IdentityProvider, b.LdapRoles)
	}
	if _, err := st.Token(ctx, "tok-bob"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("bob's token survived: %v", err)
	}
	// His cached bind is forgotten: the deleted user cannot log in.
	if _, err := svc.Login(ctx, "bob", ldaptest.Bob.Password); !errors.Is(err, directory.ErrInvalidCredentials) {
		t.Errorf("bob's login after removal: %v", err)
	}
	if a, _ := st.UserByUsername(ctx, "alice"); a.IdentityProvider != "ldap" {
		t.Errorf("alice touched: %q", a.IdentityProvider)
	}
}

func TestServiceRecheckNeedsServiceAccount(t *testing.T) {
	d := ldaptest.Start(t)
	svc, _ := newService(t, templateConfig(d))
	if _, err := svc.Recheck(context.Background()); !errors.Is(err, directory.ErrNoServiceAccount) {
		t.Errorf("Recheck with a template bind: %v", err)
	}
}
