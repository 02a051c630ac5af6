package admin_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/admin"
	"github.com/warden-mqtt/warden/directory"
	"github.com/warden-mqtt/warden/internal/ldaptest"
	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

// ldapAPI is an admin server whose password logins ask a real slapd for
// directory users, with MFA on and the test clock.
func ldapAPI(t *testing.T, d *ldaptest.Directory) *mEnv {
	t.Helper()
	p, err := directory.New(directory.Config{
		URL: d.URL, StartTLS: true, CAFile: d.CAFile, BaseDN: d.BaseDN, Filter: ldaptest.UserFilter,
		BindDN: d.BindDN, BindPassword: d.BindPassword, GroupBaseDN: ldaptest.GroupsDN,
		GroupFilter: ldaptest.GroupFilter, Timeout: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	a := newAPI(t, storetest.OpenBolt(t))
	svc := directory.NewService(p, a.st, nil)
	return t2Node(t, a, &mClock{t: mEpoch}, func(o *admin.Options) { o.MFAEnabled, o.Directory = true, svc })
}

// TestDirectoryHTTPLogin: Alice logs in with her directory password and
// gets a token carrying her directory role's permissions; a wrong password
// and disabled Dave get the one refusal (403); the local admin still logs
// in with its own hash, and a local user named like a directory user is
// not taken over; with the directory down, 503, never 403.
func TestDirectoryHTTPLogin(t *testing.T) {
	d := ldaptest.Start(t)
	m := ldapAPI(t, d)
	if _, err := m.st.CreateRole(context.Background(), store.Role{Name: "staff", IsShared: true, LdapGroups: []string{ldaptest.Staff},
		Permissions: []acl.Permission{{Resource: "/api/session", Operation: acl.OpRead, Context: acl.ContextHTTP}}}); err != nil {
		t.Fatal(err)
	}
	tok := m.login("alice", ldaptest.Alice.Password)
	var sess struct {
		Username         string `json:"username"`
		IdentityProvider string `json:"identityProvider"`
	}
	m.mustAs(tok, "GET", "/api/session", nil, http.StatusOK, &sess)
	if sess.Username != "alice" || sess.IdentityProvider != "ldap" {
		t.Errorf("session of alice's token: %+v", sess)
	}
	if u, err := m.st.UserByUsername(context.Background(), "alice"); err != nil || u.IdentityProvider != "ldap" {
		t.Fatalf("alice after login: %+v %v", u, err)
	}
	for _, c := range [][2]string{{"alice", "wrong-password-1"}, {"dave", ldaptest.Dave.Password}, {"nobody", "x-password-1"}} {
		if code, b := m.do("POST", "/api/login", "", map[string]string{"username": c[0], "password": c[1]}); code != http.StatusForbidden {
			t.Errorf("login %s: %d %s, want 403", c[0], code, b)
		}
	}
	m.login("admin", adminPassword)

	// A local bob shadows the directory's: its password, not bob's
	// directory password, logs in, and it stays local.
	sCreateUser(t, m.api, "bob", "local-bob-secret1")
	if code, b := m.do("POST", "/api/login", "", map[string]string{"username": "bob", "password": ldaptest.Bob.Password}); code != http.StatusForbidden {
		t.Errorf("local bob with the directory's password: %d %s, want 403", code, b)
	}
	m.login("bob", "local-bob-secret1")
	if u, _ := m.st.UserByUsername(context.Background(), "bob"); u.IdentityProvider == "ldap" {
		t.Error("local bob taken over by the directory")
	}

	d.Stop()
	if code, b := m.do("POST", "/api/login", "", map[string]string{"username": "alice", "password": ldaptest.Alice.Password}); code != http.StatusServiceUnavailable {
		t.Errorf("login with the directory down: %d %s, want 503", code, b)
	}
}

// TestDirectoryHTTPLoginMFA: a directory user who enrolled MFA gets the
// second step at its next password login, as a local user does.
func TestDirectoryHTTPLoginMFA(t *testing.T) {
	d := ldaptest.Start(t)
	m := ldapAPI(t, d)
	tok := m.login("carol", ldaptest.Carol.Password)
	secret, _ := m.mEnroll(tok, "carol")
	challenge := m.mChallenge("carol", ldaptest.Carol.Password)
	if m.mToken("carol", challenge, mOTP(m.mCode(secret))) == "" {
		t.Fatal("no token after the MFA step")
	}
}
