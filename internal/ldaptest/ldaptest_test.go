package ldaptest_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/warden-mqtt/warden/internal/ldaptest"
)

func dial(t *testing.T, d *ldaptest.Directory, url string) *ldap.Conn {
	t.Helper()
	c, err := ldap.DialURL(url, ldap.DialWithTLSConfig(d.TLSConfig()))
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	c.SetTimeout(5 * time.Second)
	return c
}

func TestStartIsQuick(t *testing.T) {
	begin := time.Now()
	ldaptest.Start(t)
	if d := time.Since(begin); d > 2*time.Second {
		t.Errorf("Start took %v, want well under 2s", d)
	}
}

func TestSeededUserBindsOverStartTLSAndLDAPS(t *testing.T) {
	d := ldaptest.Start(t)
	u := ldaptest.Alice

	c := dial(t, d, d.URL)
	if err := c.StartTLS(d.TLSConfig()); err != nil {
		t.Fatalf("StartTLS: %v", err)
	}
	if err := c.Bind(u.DN, u.Password); err != nil {
		t.Errorf("bind as %s over StartTLS: %v", u.Username, err)
	}

	c = dial(t, d, d.LDAPSURL)
	if _, ok := c.TLSConnectionState(); !ok {
		t.Fatalf("ldaps connection is not TLS")
	}
	if err := c.Bind(u.DN, u.Password); err != nil {
		t.Errorf("bind as %s over LDAPS: %v", u.Username, err)
	}
}

func TestWrongPasswordAndDisabledUserFailToBind(t *testing.T) {
	d := ldaptest.Start(t)
	for name, c := range map[string]struct{ dn, password string }{
		"wrong password": {ldaptest.Alice.DN, "not-" + ldaptest.Alice.Password},
		"disabled user":  {ldaptest.Dave.DN, ldaptest.Dave.Password},
		"unknown user":   {"uid=nobody," + ldaptest.PeopleDN, "whatever"},
	} {
		t.Run(name, func(t *testing.T) {
			conn := dial(t, d, d.LDAPSURL)
			err := conn.Bind(c.dn, c.password)
			if !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
				t.Errorf("bind: got %v, want invalidCredentials (49)", err)
			}
		})
	}
}

// The service account finds users with UserFilter (which leaves out the
// disabled one), sees memberOf of direct groups, the role attribute, and
// only hashed passwords.
func TestSeededTreeAsTheServiceAccountSeesIt(t *testing.T) {
	d := ldaptest.Start(t)
	c := dial(t, d, d.LDAPSURL)
	if err := c.Bind(d.BindDN, d.BindPassword); err != nil {
		t.Fatalf("bind as the service account: %v", err)
	}
	for _, u := range ldaptest.Users {
		filter := strings.ReplaceAll(ldaptest.UserFilter, "{username}", ldap.EscapeFilter(u.Username))
		res, err := c.Search(ldap.NewSearchRequest(d.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
			filter, []string{"memberOf", ldaptest.RoleAttribute, "mail"}, nil))
		if err != nil {
			t.Fatalf("search %s: %v", u.Username, err)
		}
		if u.Disabled {
			if len(res.Entries) != 0 {
				t.Errorf("UserFilter found disabled %s", u.Username)
			}
			continue
		}
		if len(res.Entries) != 1 {
			t.Fatalf("search %s: %d entries, want 1", u.Username, len(res.Entries))
		}
		e := res.Entries[0]
		if e.DN != u.DN || e.GetAttributeValue("mail") != u.Mail {
			t.Errorf("%s: dn %q mail %q, want %q %q", u.Username, e.DN, e.GetAttributeValue("mail"), u.DN, u.Mail)
		}
		if got := e.GetAttributeValues("memberOf"); !slices.Equal(got, u.Groups) {
			t.Errorf("%s: memberOf %q, want %q", u.Username, got, u.Groups)
		}
		if got := e.GetAttributeValues(ldaptest.RoleAttribute); !slices.Equal(got, u.Roles) {
			t.Errorf("%s: %s %q, want %q", u.Username, ldaptest.RoleAttribute, got, u.Roles)
		}
	}

	// The rootdn sees userPassword: hashed by slapd on add.
	if err := c.Bind(d.RootDN, d.RootPassword); err != nil {
		t.Fatalf("bind as rootdn: %v", err)
	}
	res, err := c.Search(ldap.NewSearchRequest(ldaptest.Alice.DN, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"userPassword"}, nil))
	if err != nil || len(res.Entries) != 1 {
		t.Fatalf("read alice as rootdn: %v", err)
	}
	if pw := res.Entries[0].GetAttributeValue("userPassword"); !strings.HasPrefix(pw, "{SSHA}") {
		t.Errorf("alice's userPassword is %q, want an {SSHA} hash", pw)
	}
}

func TestModifyChangesTheTree(t *testing.T) {
	d := ldaptest.Start(t)
	d.Modify(t, "dn: "+ldaptest.Carol.DN+"\nchangetype: delete\n")
	c := dial(t, d, d.LDAPSURL)
	if err := c.Bind(ldaptest.Carol.DN, ldaptest.Carol.Password); !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
		t.Errorf("bind as deleted carol: got %v, want invalidCredentials", err)
	}
}

func TestStopTakesTheDirectoryDown(t *testing.T) {
	d := ldaptest.Start(t)
	d.Stop()
	for _, url := range []string{d.URL, d.LDAPSURL} {
		c, err := ldap.DialURL(url, ldap.DialWithTLSConfig(d.TLSConfig()))
		if err == nil {
			_ = c.Close()
			t.Errorf("dial %s after Stop: connected, want an error", url)
		}
	}
}
