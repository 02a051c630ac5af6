package directory

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// Mode says where a user's authorization comes from.
type Mode string

const (
	// ModeGroup: the DNs of the groups the user belongs to, directly or
	// through nested groups.
	ModeGroup Mode = "GROUP"
	// ModeAttribute: the values of an attribute of the user's entry, taken
	// as role names.
	ModeAttribute Mode = "ATTRIBUTE"
)

// Placeholders in Filter, BindDNTemplate and GroupFilter.
const (
	// UsernamePlaceholder is replaced by the username, escaped per RFC 4515
	// in filters and per RFC 4514 in the DN template.
	UsernamePlaceholder = "{username}"
	// DNPlaceholder is replaced in GroupFilter by a member's DN (the user's
	// or, for nesting, a group's), escaped per RFC 4515.
	DNPlaceholder = "{dn}"
)

// Defaults filled in by New (and assumed by Validate) for empty fields.
const (
	DefaultUsernameAttribute = "uid"
	DefaultGroupFilter       = "(member={dn})"
	DefaultTimeout           = 5 * time.Second
)

// Config configures a Provider. Exactly one way of finding the user's DN is
// set: search-then-bind (BindDN and BindPassword: a service account searches
// BaseDN with Filter) or a direct bind (BindDNTemplate).
type Config struct {
	// URL is ldaps://host:port, or ldap://host:port with StartTLS (or
	// Insecure).
	URL string
	// StartTLS upgrades an ldap:// connection to TLS before any bind.
	StartTLS bool
	// CAFile is a PEM file of the CAs that may issue the directory's
	// certificate; empty means the system's roots.
	CAFile string
	// Insecure allows plain ldap:// without StartTLS, which sends passwords
	// in clear text. For tests and loopback only.
	Insecure bool
	// BaseDN is where users are searched (search-then-bind) and the default
	// GroupBaseDN.
	BaseDN string
	// Filter finds a user, e.g. "(uid={username})"; it may exclude disabled
	// accounts. Default: "(<UsernameAttribute>={username})". With a DN
	// template it is checked against the bound user's own entry.
	Filter string
	// UsernameAttribute holds the username as the directory spells it;
	// Identity.Username is its value. Default "uid".
	UsernameAttribute string
	// BindDN and BindPassword are the service account of search-then-bind.
	BindDN, BindPassword string
	// BindDNTemplate names the user's entry for a direct bind, e.g.
	// "uid={username},ou=people,dc=example,dc=org".
	BindDNTemplate string
	// Mode is ModeGroup (default) or ModeAttribute.
	Mode Mode
	// GroupBaseDN is where groups are searched (GROUP mode); default BaseDN.
	GroupBaseDN string
	// GroupFilter finds the groups that have a DN as member; default
	// "(member={dn})".
	GroupFilter string
	// RoleAttribute is the user attribute listing role names (ATTRIBUTE
	// mode), e.g. "employeeType".
	RoleAttribute string
	// Timeout bounds each Authenticate or Lookup as a whole (connect, TLS,
	// binds, searches). Default 5s.
	Timeout time.Duration
	// CacheTTL is how long a successful Authenticate is remembered; 0
	// disables the cache.
	CacheTTL time.Duration
}

// ConfigError is one problem Validate found.
type ConfigError struct {
	// Field is the Config field at fault.
	Field string
	// Problem says what is wrong, for an operator.
	Problem string
}

func (e *ConfigError) Error() string { return "ldap " + e.Field + ": " + e.Problem }

// attributeName matches an attribute description: a name or an OID.
var attributeName = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9-]*|[0-9]+(\.[0-9]+)+)$`)

// withDefaults fills the empty fields that have a default.
func (c Config) withDefaults() Config {
	if c.UsernameAttribute == "" {
		c.UsernameAttribute = DefaultUsernameAttribute
	}
	if c.Filter == "" {
		c.Filter = "(" + c.UsernameAttribute + "=" + UsernamePlaceholder + ")"
	}
	if c.Mode == "" {
		c.Mode = ModeGroup
	}
	if c.GroupBaseDN == "" {
		c.GroupBaseDN = c.BaseDN
	}
	if c.GroupFilter == "" {
		c.GroupFilter = DefaultGroupFilter
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	return c
}

// searchThenBind says the user's DN is found by the service account.
func (c Config) searchThenBind() bool { return c.BindDN != "" }

// Validate reports every problem of the configuration at once (each a
// *ConfigError, joined), after filling in defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &ConfigError{Field: field, Problem: fmt.Sprintf(format, args...)})
	}

	u, err := url.Parse(c.URL)
	switch {
	case c.URL == "":
		bad("URL", "empty; want ldaps://host:port or ldap://host:port")
	case err != nil:
		bad("URL", "%v", err)
	case u.Scheme != "ldap" && u.Scheme != "ldaps":
		bad("URL", "scheme %q; want ldaps:// or ldap://", u.Scheme)
	case u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil:
		bad("URL", "%q: want only a scheme and host:port", c.URL)
	case u.Scheme == "ldaps" && c.StartTLS:
		bad("StartTLS", "applies to ldap:// only; ldaps:// is TLS already")
	case u.Scheme == "ldap" && !c.StartTLS && !c.Insecure:
		bad("URL", "plain ldap:// would send passwords in clear text: set StartTLS, use ldaps://, or set Insecure for a test directory")
	}
	if c.CAFile != "" {
		if _, err := loadCAs(c.CAFile); err != nil {
			bad("CAFile", "%v", err)
		}
	}

	switch {
	case c.BindDN != "" && c.BindDNTemplate != "":
		bad("BindDNTemplate", "set together with BindDN; choose search-then-bind (BindDN, BindPassword) or a direct bind (BindDNTemplate)")
	case c.BindDN == "" && c.BindDNTemplate == "":
		bad("BindDN", "neither BindDN (search-then-bind) nor BindDNTemplate (direct bind) is set")
	case c.searchThenBind():
		if c.BindPassword == "" {
			bad("BindPassword", "empty: a bind without a password is an unauthenticated bind")
		}
		if _, err := ldap.ParseDN(c.BindDN); err != nil {
			bad("BindDN", "%q is not a DN: %v", c.BindDN, err)
		}
		if c.BaseDN == "" {
			bad("BaseDN", "empty; search-then-bind searches users under it")
		}
	default:
		if c.BindPassword != "" {
			bad("BindPassword", "set without BindDN")
		}
		if !strings.Contains(c.BindDNTemplate, UsernamePlaceholder) {
			bad("BindDNTemplate", "%q lacks %s", c.BindDNTemplate, UsernamePlaceholder)
		} else if _, err := ldap.ParseDN(strings.ReplaceAll(c.BindDNTemplate, UsernamePlaceholder, "x")); err != nil {
			bad("BindDNTemplate", "%q is not a DN: %v", c.BindDNTemplate, err)
		}
	}
	if c.BaseDN != "" {
		if _, err := ldap.ParseDN(c.BaseDN); err != nil {
			bad("BaseDN", "%q is not a DN: %v", c.BaseDN, err)
		}
	}
	if !attributeName.MatchString(c.UsernameAttribute) {
		bad("UsernameAttribute", "%q is not an attribute name", c.UsernameAttribute)
	}
	checkFilter := func(field, filter, placeholder string) {
		if !strings.Contains(filter, placeholder) {
			bad(field, "%q lacks %s", filter, placeholder)
			return
		}
		if _, err := ldap.CompileFilter(strings.ReplaceAll(filter, placeholder, "x")); err != nil {
			bad(field, "%q is not an LDAP filter: %v", filter, err)
		}
	}
	checkFilter("Filter", c.Filter, UsernamePlaceholder)

	switch c.Mode {
	case ModeGroup:
		if c.GroupBaseDN == "" {
			bad("GroupBaseDN", "empty (and BaseDN too); GROUP mode searches groups under it")
		} else if _, err := ldap.ParseDN(c.GroupBaseDN); err != nil {
			bad("GroupBaseDN", "%q is not a DN: %v", c.GroupBaseDN, err)
		}
		checkFilter("GroupFilter", c.GroupFilter, DNPlaceholder)
	case ModeAttribute:
		if !attributeName.MatchString(c.RoleAttribute) {
			bad("RoleAttribute", "%q is not an attribute name; ATTRIBUTE mode reads role names from it", c.RoleAttribute)
		}
	default:
		bad("Mode", "%q; want %s or %s", c.Mode, ModeGroup, ModeAttribute)
	}
	if c.Timeout < 0 {
		bad("Timeout", "negative (%v)", c.Timeout)
	}
	if c.CacheTTL < 0 {
		bad("CacheTTL", "negative (%v)", c.CacheTTL)
	}
	return errors.Join(errs...)
}

// loadCAs reads a PEM file of CA certificates.
func loadCAs(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}
