package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// ldapSearchThenBind is a valid directory configuration: ldaps://, a
// service account that searches, GROUP mode.
func ldapSearchThenBind(c *Config) {
	c.LDAPURL, c.LDAPBaseDN = "ldaps://dir.example.org:636", "ou=people,dc=example,dc=org"
	c.LDAPBindDN, c.LDAPBindPassword = "cn=warden,ou=services,dc=example,dc=org", ldapSecret
}

const ldapSecret = "s3cret-LDAP-bind"

// TestValidateLDAP: each wrong or contradictory directory setting is
// refused with the flag, its variable and what to do; none echoes the
// bind password or the URL.
func TestValidateLDAP(t *testing.T) {
	t.Parallel()
	with := func(edit func(*Config)) func(*Config) {
		return func(c *Config) { ldapSearchThenBind(c); edit(c) }
	}
	// template binds with a DN template instead of the service account.
	template := func(tpl string) func(*Config) {
		return with(func(c *Config) { c.LDAPBindDN, c.LDAPBindPassword, c.LDAPBindDNTemplate = "", "", tpl })
	}
	for _, c := range []struct {
		name string
		set  func(c *Config)
		want string // "" : valid
	}{
		{"off by default", func(c *Config) {}, ""},
		{"ldaps with a service account", ldapSearchThenBind, ""},
		{"ldap with StartTLS and a CA file", with(func(c *Config) { c.LDAPURL, c.LDAPStartTLS, c.LDAPCAFile = "ldap://dir:389", true, "ca.pem" }), ""},
		{"plain ldap for tests", with(func(c *Config) { c.LDAPURL, c.LDAPInsecure = "ldap://127.0.0.1:3890", true }), ""},
		{"a DN template in ATTRIBUTE mode", with(func(c *Config) {
			c.LDAPBindDN, c.LDAPBindPassword, c.LDAPBindDNTemplate = "", "", "uid={username},ou=people,dc=example,dc=org"
			c.LDAPMode, c.LDAPRoleAttribute = "ATTRIBUTE", "employeeType"
		}), ""},

		{"plain ldap without StartTLS", with(func(c *Config) { c.LDAPURL = "ldap://dir:389" }),
			"--ldap-url (WARDEN_LDAP_URL): plain ldap:// would send every directory password in the clear: add --ldap-start-tls"},
		{"StartTLS over ldaps", with(func(c *Config) { c.LDAPStartTLS = true }), "--ldap-start-tls (WARDEN_LDAP_START_TLS): set with an ldaps:// URL"},
		{"insecure with ldaps", with(func(c *Config) { c.LDAPInsecure = true }), "--ldap-insecure (WARDEN_LDAP_INSECURE): set with an ldaps:// URL"},
		{"a CA file without TLS", with(func(c *Config) { c.LDAPURL, c.LDAPInsecure, c.LDAPCAFile = "ldap://dir:389", true, "ca.pem" }),
			"--ldap-ca-file (WARDEN_LDAP_CA_FILE): set, but the connection uses no TLS"},
		{"an http URL", with(func(c *Config) { c.LDAPURL = "http://dir:389" }), `--ldap-url (WARDEN_LDAP_URL): scheme must be ldaps:// or ldap://, got "http"`},
		{"credentials in the URL", with(func(c *Config) { c.LDAPURL = "ldaps://warden:" + ldapSecret + "@dir:636" }),
			"--ldap-url (WARDEN_LDAP_URL): holds credentials: give the service account with --ldap-bind-dn and --ldap-bind-password"},
		{"a URL without host", with(func(c *Config) { c.LDAPURL = "ldaps://" }), "--ldap-url (WARDEN_LDAP_URL): no host"},
		{"an RFC 4516 URL", with(func(c *Config) { c.LDAPURL = "ldaps://dir:636/dc=example,dc=org??sub?(uid=x)" }), "holds a DN, query or fragment"},
		{"no base DN", with(func(c *Config) { c.LDAPBaseDN = "" }), "--ldap-base-dn (WARDEN_LDAP_BASE_DN): required with --ldap-url"},
		{"a base DN that is no DN", with(func(c *Config) { c.LDAPBaseDN = "example.org" }), `--ldap-base-dn (WARDEN_LDAP_BASE_DN): "example.org" is not a distinguished name`},
		{"a filter without {username}", with(func(c *Config) { c.LDAPFilter = "(uid=admin)" }), "--ldap-filter (WARDEN_LDAP_FILTER): has no {username}"},
		{"a filter without parentheses", with(func(c *Config) { c.LDAPFilter = "uid={username}" }), "--ldap-filter (WARDEN_LDAP_FILTER): must be enclosed in parentheses"},
		{"an unbalanced filter", with(func(c *Config) { c.LDAPFilter = "(&(uid={username})" }), "--ldap-filter (WARDEN_LDAP_FILTER): has a '(' without its ')'"},
		{"two filters side by side", with(func(c *Config) { c.LDAPFilter = "(uid={username})(objectClass=*)" }), "holds more than one filter"},
		{"a bad username attribute", with(func(c *Config) { c.LDAPUsernameAttribute = "user name" }), `--ldap-username-attribute (WARDEN_LDAP_USERNAME_ATTRIBUTE): "user name" is not an attribute name`},
		{"no way to bind", with(func(c *Config) { c.LDAPBindDN, c.LDAPBindPassword = "", "" }), "--ldap-bind-dn (WARDEN_LDAP_BIND_DN): required with --ldap-url"},
		{"both ways to bind", with(func(c *Config) { c.LDAPBindDNTemplate = "uid={username},dc=example,dc=org" }),
			"--ldap-bind-dn (WARDEN_LDAP_BIND_DN): set with --ldap-bind-dn-template: use one way to bind"},
		{"a service account without password", with(func(c *Config) { c.LDAPBindPassword = "" }),
			"--ldap-bind-password (WARDEN_LDAP_BIND_PASSWORD): required with --ldap-bind-dn (an empty password would be an unauthenticated bind)"},
		{"a service account DN that is no DN", with(func(c *Config) { c.LDAPBindDN = "warden" }), `--ldap-bind-dn (WARDEN_LDAP_BIND_DN): "warden" is not a distinguished name`},
		{"a bind password with a template", with(func(c *Config) { c.LDAPBindDN, c.LDAPBindDNTemplate = "", "uid={username},dc=example,dc=org" }),
			"--ldap-bind-password (WARDEN_LDAP_BIND_PASSWORD): set, but --ldap-bind-dn is empty"},
		{"a template without {username}", template("uid=admin,dc=example,dc=org"),
			"--ldap-bind-dn-template (WARDEN_LDAP_BIND_DN_TEMPLATE): has no {username}"},
		{"a template that is no DN", template("{username}@example.org"),
			"--ldap-bind-dn-template (WARDEN_LDAP_BIND_DN_TEMPLATE): with {username} filled in"},
		{"an unknown mode", with(func(c *Config) { c.LDAPMode = "ROLES" }), `--ldap-mode (WARDEN_LDAP_MODE): must be GROUP or ATTRIBUTE, got "ROLES"`},
		{"ATTRIBUTE without role attribute", with(func(c *Config) { c.LDAPMode = "ATTRIBUTE" }),
			"--ldap-role-attribute (WARDEN_LDAP_ROLE_ATTRIBUTE): required with --ldap-mode ATTRIBUTE"},
		{"a role attribute in GROUP mode", with(func(c *Config) { c.LDAPRoleAttribute = "employeeType" }),
			"--ldap-role-attribute (WARDEN_LDAP_ROLE_ATTRIBUTE): set, but --ldap-mode is GROUP"},
		{"a group filter without {dn}", with(func(c *Config) { c.LDAPGroupFilter = "(member=*)" }), "--ldap-group-filter (WARDEN_LDAP_GROUP_FILTER): has no {dn}"},
		{"a group base that is no DN", with(func(c *Config) { c.LDAPGroupBaseDN = "groups" }), "--ldap-group-base-dn (WARDEN_LDAP_GROUP_BASE_DN)"},
		{"a zero timeout", with(func(c *Config) { c.LDAPTimeout = 0 }), "--ldap-timeout (WARDEN_LDAP_TIMEOUT): must be positive, got 0s"},
		{"a negative cache TTL", with(func(c *Config) { c.LDAPCacheTTL = -time.Minute }), "--ldap-cache-ttl (WARDEN_LDAP_CACHE_TTL): must be positive"},
		{"a zero recheck", with(func(c *Config) { c.LDAPRecheck = 0 }), "--ldap-recheck (WARDEN_LDAP_RECHECK): must be positive"},
		{"a bind password without a directory", func(c *Config) { c.LDAPBindPassword = ldapSecret },
			"--ldap-bind-password (WARDEN_LDAP_BIND_PASSWORD): set, but --ldap-url is empty"},
		{"a base DN without a directory", func(c *Config) { c.LDAPBaseDN = "dc=example,dc=org" }, "--ldap-base-dn (WARDEN_LDAP_BASE_DN): set, but --ldap-url is empty"},
	} {
		t.Run(c.name, func(t *testing.T) { t.Parallel(); checkValidate(t, c.set, c.want, ldapSecret) })
	}
}

// TestLDAPBindPasswordNeverEchoed: a bad value for the bind password's
// variable, and the help, never show it; a wrong LDAP setup is reported
// together with every other problem.
func TestLDAPBindPasswordNeverEchoed(t *testing.T) {
	t.Parallel()
	_, err := loadConfig([]string{"--ldap-url", "ldap://dir:389", "--ldap-bind-dn", "cn=warden,dc=example,dc=org", "--log-level", "loud"},
		env(map[string]string{"WARDEN_LDAP_BIND_PASSWORD": ldapSecret}))
	if err == nil {
		t.Fatal("loadConfig accepted plain ldap://, no base DN and a bad log level")
	}
	for _, want := range []string{"--ldap-url (WARDEN_LDAP_URL): plain ldap://", "--ldap-base-dn (WARDEN_LDAP_BASE_DN): required", "--log-level"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("errors %q lack %q", err, want)
		}
	}
	if strings.Contains(err.Error(), ldapSecret) {
		t.Errorf("the errors quote the bind password: %v", err)
	}
	var out bytes.Buffer
	if code := run(t.Context(), []string{"--help"}, env(map[string]string{"WARDEN_LDAP_BIND_PASSWORD": ldapSecret}), &out); code != exitOK || strings.Contains(out.String(), ldapSecret) {
		t.Errorf("--help: exit %d, shows the bind password: %v", code, strings.Contains(out.String(), ldapSecret))
	}
}

// TestLDAPConfigReported: a running warden configured with a directory
// answers GET /api/auth/ldap with enabled and its mode. No directory is
// dialed yet (the provider is wired later), so none needs to run.
func TestLDAPConfigReported(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pw := validPassword(t)
	out := &logBuffer{}
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"--mqtt-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--data-dir", t.TempDir(),
			"--ldap-url", "ldap://127.0.0.1:1", "--ldap-insecure", "--ldap-base-dn", "dc=example,dc=org",
			"--ldap-bind-dn-template", "uid={username},ou=people,dc=example,dc=org", "--ldap-mode", "ATTRIBUTE", "--ldap-role-attribute", "employeeType",
		}, env(map[string]string{"WARDEN_ADMIN_PASSWORD": pw}), out)
	}()
	waitRunReady(t, out, code)
	httpAddr := listenAddr(t, out.String(), "http")
	var login struct{ Token string }
	apiCall(t, httpAddr, "POST", "/api/login", "", map[string]string{"username": "admin", "password": pw}, &login, 200)
	var got map[string]any
	apiCall(t, httpAddr, "GET", "/api/auth/ldap", login.Token, nil, &got, 200)
	if got["enabled"] != true || got["mode"] != "ATTRIBUTE" {
		t.Errorf("GET /api/auth/ldap = %v, want enabled and ATTRIBUTE", got)
	}
	cancel()
	if c := <-code; c != exitOK {
		t.Fatalf("exit code %d, want 0:\n%s", c, out)
	}
}
