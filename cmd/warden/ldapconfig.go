package main

import (
	"net/url"
	"strings"
	"time"

	"github.com/warden-mqtt/warden/store"
)

// LDAP modes (--ldap-mode), as Connectware names them and GET
// /api/auth/ldap reports them.
const (
	ldapModeGroup     = "GROUP"
	ldapModeAttribute = "ATTRIBUTE"
)

// Placeholders of the LDAP filters and the bind DN template.
const (
	ldapUsernamePlaceholder = "{username}"
	ldapDNPlaceholder       = "{dn}"
)

// validateLDAP checks the directory settings without connecting. The URL
// is never quoted (it might hold credentials), nor is the bind password.
func (c Config) validateLDAP(add func(flagName, format string, args ...any)) {
	if c.LDAPURL == "" {
		// Settings of a directory that is off are a mistake worth telling
		// (a typo in WARDEN_LDAP_URL would otherwise go unnoticed).
		for _, o := range []struct {
			flag string
			set  bool
		}{
			{"ldap-start-tls", c.LDAPStartTLS}, {"ldap-ca-file", c.LDAPCAFile != ""}, {"ldap-insecure", c.LDAPInsecure},
			{"ldap-base-dn", c.LDAPBaseDN != ""}, {"ldap-bind-dn", c.LDAPBindDN != ""}, {"ldap-bind-password", c.LDAPBindPassword != ""},
			{"ldap-bind-dn-template", c.LDAPBindDNTemplate != ""}, {"ldap-group-base-dn", c.LDAPGroupBaseDN != ""},
			{"ldap-role-attribute", c.LDAPRoleAttribute != ""},
		} {
			if o.set {
				add(o.flag, "set, but --ldap-url is empty")
			}
		}
		return
	}
	c.validateLDAPConnection(add)
	c.validateLDAPSearch(add)
	c.validateLDAPRoles(add)
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"ldap-timeout", c.LDAPTimeout}, {"ldap-cache-ttl", c.LDAPCacheTTL}, {"ldap-recheck", c.LDAPRecheck}} {
		if d.v <= 0 {
			add(d.flag, "must be positive, got %s", d.v)
		}
	}
}

// validateLDAPConnection checks the URL and how the connection is
// protected: TLS (ldaps:// or StartTLS), or plain only when asked for.
func (c Config) validateLDAPConnection(add func(flagName, format string, args ...any)) {
	u, err := url.Parse(c.LDAPURL)
	switch {
	case err != nil:
		add("ldap-url", "not a valid URL (want ldaps://host:636 or ldap://host:389)")
		return
	case u.Scheme != "ldap" && u.Scheme != "ldaps":
		add("ldap-url", "scheme must be ldaps:// or ldap://, got %q", u.Scheme)
		return
	case u.User != nil:
		add("ldap-url", "holds credentials: give the service account with --ldap-bind-dn and --ldap-bind-password")
		return
	case u.Hostname() == "":
		add("ldap-url", "no host (want %s://host:port)", u.Scheme)
	case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		add("ldap-url", "holds a DN, query or fragment (an RFC 4516 URL): give only %s://host:port, and the DNs and filter with their flags", u.Scheme)
	}
	switch {
	case u.Scheme == "ldaps" && c.LDAPStartTLS:
		add("ldap-start-tls", "set with an ldaps:// URL, which is TLS already: use one of them")
	case u.Scheme == "ldaps" && c.LDAPInsecure:
		add("ldap-insecure", "set with an ldaps:// URL, which is protected: drop --ldap-insecure")
	case u.Scheme == "ldap" && !c.LDAPStartTLS && !c.LDAPInsecure:
		add("ldap-url", "plain ldap:// would send every directory password in the clear: add --ldap-start-tls, or use ldaps:// (--ldap-insecure allows it, for tests only)")
	case u.Scheme == "ldap" && c.LDAPStartTLS && c.LDAPInsecure:
		add("ldap-insecure", "set with --ldap-start-tls, which protects the connection: drop --ldap-insecure")
	case c.LDAPCAFile != "" && u.Scheme == "ldap" && !c.LDAPStartTLS:
		add("ldap-ca-file", "set, but the connection uses no TLS: use ldaps:// or --ldap-start-tls")
	}
}

// validateLDAPSearch checks how a user is found and authenticated: its
// entry's base, filter and username attribute, and exactly one way to
// bind (a service account that searches, or a DN template).
func (c Config) validateLDAPSearch(add func(flagName, format string, args ...any)) {
	if c.LDAPBaseDN == "" {
		add("ldap-base-dn", "required with --ldap-url: the DN under which user entries are searched")
	} else if _, err := store.NormalizeDN(c.LDAPBaseDN); err != nil {
		add("ldap-base-dn", "%v", err)
	}
	if err := checkLDAPFilter(c.LDAPFilter, ldapUsernamePlaceholder); err != "" {
		add("ldap-filter", "%s", err)
	}
	if !validLDAPAttribute(c.LDAPUsernameAttribute) {
		add("ldap-username-attribute", "%q is not an attribute name (letters, digits and hyphens, starting with a letter, or an OID)", c.LDAPUsernameAttribute)
	}
	switch {
	case c.LDAPBindDN != "" && c.LDAPBindDNTemplate != "":
		add("ldap-bind-dn", "set with --ldap-bind-dn-template: use one way to bind (a service account that searches, or a DN template)")
	case c.LDAPBindDN == "" && c.LDAPBindDNTemplate == "":
		add("ldap-bind-dn", "required with --ldap-url, with --ldap-bind-password (search, then bind as the user), unless --ldap-bind-dn-template gives the users' DNs")
	case c.LDAPBindDN != "":
		if _, err := store.NormalizeDN(c.LDAPBindDN); err != nil {
			add("ldap-bind-dn", "%v", err)
		}
		if c.LDAPBindPassword == "" {
			// An empty password would make an unauthenticated bind, which
			// directories accept without checking anything.
			add("ldap-bind-password", "required with --ldap-bind-dn (an empty password would be an unauthenticated bind)")
		}
	case c.LDAPBindDNTemplate != "":
		if c.LDAPBindPassword != "" {
			add("ldap-bind-password", "set, but --ldap-bind-dn is empty: with --ldap-bind-dn-template users bind as themselves")
		}
		t := c.LDAPBindDNTemplate
		if !strings.Contains(t, ldapUsernamePlaceholder) {
			add("ldap-bind-dn-template", "has no %s: every user would bind as one DN", ldapUsernamePlaceholder)
		} else if _, err := store.NormalizeDN(strings.ReplaceAll(t, ldapUsernamePlaceholder, "x")); err != nil {
			add("ldap-bind-dn-template", "with %s filled in, %v", ldapUsernamePlaceholder, err)
		}
	}
}

// validateLDAPRoles checks the mode and its settings.
func (c Config) validateLDAPRoles(add func(flagName, format string, args ...any)) {
	switch c.LDAPMode {
	case ldapModeGroup:
		if c.LDAPRoleAttribute != "" {
			add("ldap-role-attribute", "set, but --ldap-mode is GROUP, which reads roles from groups: set --ldap-mode ATTRIBUTE or drop it")
		}
		if c.LDAPGroupBaseDN != "" {
			if _, err := store.NormalizeDN(c.LDAPGroupBaseDN); err != nil {
				add("ldap-group-base-dn", "%v", err)
			}
		}
		if err := checkLDAPFilter(c.LDAPGroupFilter, ldapDNPlaceholder); err != "" {
			add("ldap-group-filter", "%s", err)
		}
	case ldapModeAttribute:
		switch {
		case c.LDAPRoleAttribute == "":
			add("ldap-role-attribute", "required with --ldap-mode ATTRIBUTE: the attribute of the user's entry that lists its role names")
		case !validLDAPAttribute(c.LDAPRoleAttribute):
			add("ldap-role-attribute", "%q is not an attribute name (letters, digits and hyphens, starting with a letter, or an OID)", c.LDAPRoleAttribute)
		}
		if c.LDAPGroupBaseDN != "" {
			add("ldap-group-base-dn", "set, but --ldap-mode is ATTRIBUTE, which searches no groups")
		}
	default:
		add("ldap-mode", "must be GROUP or ATTRIBUTE, got %q", c.LDAPMode)
	}
}

// checkLDAPFilter checks what a filter needs before the directory sees
// it: parentheses around it and balanced (escaped ones, \28 and \29, do
// not count), and the placeholder the value goes in. It returns the
// problem, or "".
func checkLDAPFilter(f, placeholder string) string {
	if !strings.HasPrefix(f, "(") || !strings.HasSuffix(f, ")") {
		return "must be enclosed in parentheses, e.g. (uid=" + ldapUsernamePlaceholder + ")"
	}
	depth := 0
	for i := 0; i < len(f); i++ {
		switch f[i] {
		case '(':
			depth++
		case ')':
			depth--
			if depth < 0 {
				return "has a ')' without its '('"
			}
			if depth == 0 && i != len(f)-1 {
				return "holds more than one filter: combine them, e.g. (&(objectClass=person)(uid=" + ldapUsernamePlaceholder + "))"
			}
		}
	}
	if depth != 0 {
		return "has a '(' without its ')'"
	}
	if !strings.Contains(f, placeholder) {
		return "has no " + placeholder + ": it would match the same entries for everyone"
	}
	return ""
}

// validLDAPAttribute accepts an attribute description's type (RFC 4512:
// a keystring or a numeric OID).
func validLDAPAttribute(a string) bool {
	if a == "" {
		return false
	}
	if a[0] >= '0' && a[0] <= '9' {
		for _, arc := range strings.Split(a, ".") {
			if arc == "" || strings.Trim(arc, "0123456789") != "" || (len(arc) > 1 && arc[0] == '0') {
				return false
			}
		}
		return strings.Contains(a, ".")
	}
	for i := 0; i < len(a); i++ {
		ch := a[i]
		letter := ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z'
		if !letter && (i == 0 || !(ch >= '0' && ch <= '9' || ch == '-')) {
			return false
		}
	}
	return true
}
