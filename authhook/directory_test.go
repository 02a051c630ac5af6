package authhook_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/audit"
	"github.com/warden-mqtt/warden/authhook"
	"github.com/warden-mqtt/warden/directory"
	"github.com/warden-mqtt/warden/internal/ldaptest"
	"github.com/warden-mqtt/warden/internal/logbuf"
	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

// ldapTrails are the audit trails of the ldapNodes, by node.
var ldapTrails sync.Map // *node -> *logbuf.Buffer

// ldapNode is a broker whose hook asks a real slapd for directory users;
// its audit trail is in ldapTrails.
func ldapNode(t *testing.T, d *ldaptest.Directory, edit func(*directory.Config)) (*node, *directory.Service) {
	t.Helper()
	c := directory.Config{
		URL: d.URL, StartTLS: true, CAFile: d.CAFile, BaseDN: d.BaseDN, Filter: ldaptest.UserFilter,
		BindDN: d.BindDN, BindPassword: d.BindPassword, GroupBaseDN: ldaptest.GroupsDN,
		GroupFilter: ldaptest.GroupFilter, Timeout: 2 * time.Second, CacheTTL: time.Minute,
	}
	if edit != nil {
		edit(&c)
	}
	p, err := directory.New(c)
	if err != nil {
		t.Fatal(err)
	}
	st := storetest.OpenBolt(t)
	svc := directory.NewService(p, st, nil)
	trail := &logbuf.Buffer{}
	n := startNode(t, nodeOpts{store: st, tweak: func(o *authhook.Options) { o.Directory = svc; o.Audit = audit.New(trail) }})
	ldapTrails.Store(n, trail)
	return n, svc
}

// TestDirectoryUserConnects: Alice's first CONNECT creates her as a
// directory user whose roles come from her groups (Staff, through
// Operators), and that role's topic works; a group change applies at her
// next CONNECT.
func TestDirectoryUserConnects(t *testing.T) {
	d := ldaptest.Start(t)
	n, svc := ldapNode(t, d, nil)
	ctx := context.Background()
	staff, err := n.st.CreateRole(ctx, store.Role{Name: "staff", IsShared: true, LdapGroups: []string{ldaptest.Staff},
		Permissions: []acl.Permission{perm("staff/#", acl.OpReadWrite)}})
	if err != nil {
		t.Fatal(err)
	}
	admins, err := n.st.CreateRole(ctx, store.Role{Name: "admins", IsShared: true, LdapGroups: []string{ldaptest.Admins},
		Permissions: []acl.Permission{perm("admin/#", acl.OpReadWrite)}})
	if err != nil {
		t.Fatal(err)
	}

	a := n.mustConnect(t, connectOpts{username: "alice", password: ldaptest.Alice.Password, clientID: "alice-1", clean: true})
	u, err := n.st.UserByUsername(ctx, "alice")
	if err != nil {
		t.Fatalf("alice not created: %v", err)
	}
	if u.IdentityProvider != "ldap" || !slices.Equal(u.LdapRoles, []string{staff.ID}) {
		t.Fatalf("alice: provider %q ldapRoles %v; want ldap [%s]", u.IdentityProvider, u.LdapRoles, staff.ID)
	}
	if code := a.subscribe("staff/#")[0]; code > 2 {
		t.Fatalf("subscribe staff/#: SUBACK 0x%02x", code)
	}
	if code := a.subscribe("admin/#")[0]; code <= 2 {
		t.Fatalf("subscribe admin/# without the group: SUBACK 0x%02x, want refused", code)
	}
	a.publish("staff/x", 0, "hi", 0)
	a.expect(packets.Publish, 3*time.Second)

	d.Modify(t, "dn: "+ldaptest.Admins+"\nchangetype: modify\nadd: member\nmember: "+ldaptest.Alice.DN+"\n")
	svc.Provider().Forget("alice")
	a2 := n.mustConnect(t, connectOpts{username: "alice", password: ldaptest.Alice.Password, clientID: "alice-2", clean: true})
	if code := a2.subscribe("admin/#")[0]; code > 2 {
		t.Fatalf("subscribe admin/# after joining Admins: SUBACK 0x%02x", code)
	}
	if u, _ := n.st.UserByUsername(ctx, "alice"); !slices.Contains(u.LdapRoles, admins.ID) {
		t.Errorf("ldapRoles after the group change: %v", u.LdapRoles)
	}
}

func TestDirectoryAttributeMode(t *testing.T) {
	d := ldaptest.Start(t)
	n, _ := ldapNode(t, d, func(c *directory.Config) { c.Mode, c.RoleAttribute = directory.ModeAttribute, ldaptest.RoleAttribute })
	if _, err := n.st.CreateRole(context.Background(), store.Role{Name: "operator", IsShared: true,
		Permissions: []acl.Permission{perm("ops/#", acl.OpReadWrite)}}); err != nil {
		t.Fatal(err)
	}
	a := n.mustConnect(t, connectOpts{username: "alice", password: ldaptest.Alice.Password, clientID: "alice", clean: true})
	if code := a.subscribe("ops/#")[0]; code > 2 {
		t.Fatalf("subscribe ops/# through role attribute operator: SUBACK 0x%02x", code)
	}
}

// TestDirectoryRefusals: wrong password, a disabled user, a local user of a
// directory user's name (its directory password is refused, its own
// accepted), all as bad credentials (v5 0x86).
func TestDirectoryRefusals(t *testing.T) {
	d := ldaptest.Start(t)
	n, _ := ldapNode(t, d, nil)
	addUser(t, n.st, "bob", "local-bob-secret1", nil, nil)
	for _, c := range []connectOpts{
		{username: "alice", password: "wrong-password-1"},
		{username: "dave", password: ldaptest.Dave.Password},
		{username: "bob", password: ldaptest.Bob.Password},
	} {
		c.clientID, c.clean = c.username, true
		if _, code := n.connect(t, c); code != 0x86 {
			t.Errorf("%s: CONNACK 0x%02x, want 0x86", c.username, code)
		}
	}
	trail, _ := ldapTrails.Load(n)
	// alice and dave were refused by the directory; local bob never reaches
	// it: his own password decides.
	if got := trail.(*logbuf.Buffer).String(); strings.Count(got, `"channel":"ldap"`) != 2 || !strings.Contains(got, `"channel":"mqtt","user":"bob"`) {
		t.Errorf("directory refusals not audited on channel ldap, or local bob's not on mqtt:\n%s", got)
	}
	n.mustConnect(t, connectOpts{username: "bob", password: "local-bob-secret1", clientID: "bob", clean: true})
	if b, _ := n.st.UserByUsername(context.Background(), "bob"); b.IdentityProvider == "ldap" {
		t.Error("local bob taken over by the directory")
	}
	for _, name := range []string{"dave", "alice"} {
		if _, err := n.st.UserByUsername(context.Background(), name); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s created by a refused CONNECT: %v", name, err)
		}
	}
}

// TestDirectoryDown: with slapd gone, a user whose bind is cached still
// connects; another gets "server unavailable" (v5 0x88, v3 3), not bad
// credentials.
func TestDirectoryDown(t *testing.T) {
	d := ldaptest.Start(t)
	n, _ := ldapNode(t, d, nil)
	n.mustConnect(t, connectOpts{username: "alice", password: ldaptest.Alice.Password, clientID: "a1", clean: true})
	d.Stop()
	n.mustConnect(t, connectOpts{username: "alice", password: ldaptest.Alice.Password, clientID: "a2", clean: true})
	if _, code := n.connect(t, connectOpts{username: "bob", password: ldaptest.Bob.Password, clientID: "b", clean: true}); code != 0x88 {
		t.Errorf("uncached bob, directory down: CONNACK 0x%02x, want 0x88", code)
	}
	if _, code := n.connect(t, connectOpts{version: 4, username: "carol", password: ldaptest.Carol.Password, clientID: "c", clean: true}); code != 3 {
		t.Errorf("uncached carol (3.1.1), directory down: CONNACK %d, want 3", code)
	}
}

// TestDirectoryRecheckDisconnects: Bob removed from the directory; Recheck
// revokes his login token and disconnects his password session.
func TestDirectoryRecheckDisconnects(t *testing.T) {
	d := ldaptest.Start(t)
	n, svc := ldapNode(t, d, nil)
	ctx := context.Background()
	b := n.mustConnect(t, connectOpts{username: "bob", password: ldaptest.Bob.Password, clientID: "bob", clean: true})
	bob, err := n.st.UserByUsername(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := n.tokens.Issue(ctx, bob, "login", "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	bt := n.mustConnect(t, connectOpts{username: "bob", password: tok, clientID: "bob-token", clean: true})
	d.Modify(t, "dn: "+ldaptest.Bob.DN+"\nchangetype: delete\n")
	if gone, err := svc.Recheck(ctx); err != nil || gone != 1 {
		t.Fatalf("Recheck = %d, %v; want 1", gone, err)
	}
	if !b.closed(3 * time.Second) {
		t.Error("bob's password session stayed connected")
	}
	if !bt.closed(3 * time.Second) {
		t.Error("bob's token session stayed connected")
	}
	if _, code := n.connect(t, connectOpts{username: "bob", password: tok, clientID: "bob-3", clean: true}); code == 0 {
		t.Error("bob's revoked token still connects")
	}
	if _, code := n.connect(t, connectOpts{username: "bob", password: ldaptest.Bob.Password, clientID: "bob-4", clean: true}); code != 0x86 {
		t.Errorf("removed bob's password: CONNACK 0x%02x, want 0x86", code)
	}
}
