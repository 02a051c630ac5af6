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
	var p problems
	c.validateConnection(&p)
	c.validateBind(&p)
	c.validateSearch(&p)
	c.validateMode(&p)
	if c.Timeout < 0 {
		p.add("Timeout", "negative (%v)", c.Timeout)
	}
	if c.CacheTTL < 0 {
		p.add("CacheTTL", "negative (%v)", c.CacheTTL)
	}
	return errors.Join(p...)
}

// problems collects the *ConfigErrors of a Validate.
type problems []error

func (p *problems) add(field, format string, args ...any) {
	*p = append(*p, &ConfigError{Field: field, Problem: fmt.Sprintf(format, args...)})
}

// dn checks that value, when set, is a DN.
func (p *problems) dn(field, value string) {
	if value == "" {
		return
	}
	if _, err := ldap.ParseDN(value); err != nil {
		p.add(field, "%q is not a DN: %v", value, err)
	}
}

// filter checks that filter holds placeholder and compiles.
func (p *problems) filter(field, filter, placeholder string) {
	if !strings.Contains(filter, placeholder) {
		p.add(field, "%q lacks %s", filter, placeholder)
		return
	}
	if _, err := ldap.CompileFilter(strings.ReplaceAll(filter, placeholder, "x")); err != nil {
		p.add(field, "%q is not an LDAP filter: %v", filter, err)
	}
}

// validateConnection checks the URL, TLS and the CA file: passwords never
// travel in clear text unless Insecure says so.
func (c Config) validateConnection(p *problems) {
	u, err := url.Parse(c.URL)
	switch {
	case c.URL == "":
		p.add("URL", "empty; want ldaps://host:port or ldap://host:port")
	case err != nil:
		p.add("URL", "%v", err)
	case u.Scheme != "ldap" && u.Scheme != "ldaps":
		p.add("URL", "scheme %q; want ldaps:// or ldap://", u.Scheme)
	case u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil:
		p.add("URL", "%q: want only a scheme and host:port", c.URL)
	case u.Scheme == "ldaps" && c.StartTLS:
		p.add("StartTLS", "applies to ldap:// only; ldaps:// is TLS already")
	case u.Scheme == "ldap" && !c.StartTLS && !c.Insecure:
		p.add("URL", "plain ldap:// would send passwords in clear text: set StartTLS, use ldaps://, or set Insecure for a test directory")
	}
	if c.CAFile != "" {
		if _, err := loadCAs(c.CAFile); err != nil {
			p.add("CAFile", "%v", err)
		}
	}
}

// validateBind checks the one way of binding: a service account
// (search-then-bind) or a DN template (direct bind).
func (c Config) validateBind(p *problems) {
	switch {
	case c.BindDN != "" && c.BindDNTemplate != "":
		p.add("BindDNTemplate", "set together with BindDN; choose search-then-bind (BindDN, BindPassword) or a direct bind (BindDNTemplate)")
	case c.BindDN == "" && c.BindDNTemplate == "":
		p.add("BindDN", "neither BindDN (search-then-bind) nor BindDNTemplate (direct bind) is set")
	case c.searchThenBind():
		if c.BindPassword == "" {
			p.add("BindPassword", "empty: a bind without a password is an unauthenticated bind")
		}
		p.dn("BindDN", c.BindDN)
		if c.BaseDN == "" {
			p.add("BaseDN", "empty; search-then-bind searches users under it")
		}
	default:
		if c.BindPassword != "" {
			p.add("BindPassword", "set without BindDN")
		}
		if !strings.Contains(c.BindDNTemplate, UsernamePlaceholder) {
			p.add("BindDNTemplate", "%q lacks %s", c.BindDNTemplate, UsernamePlaceholder)
		} else if _, err := ldap.ParseDN(strings.ReplaceAll(c.BindDNTemplate, UsernamePlaceholder, "x")); err != nil {
			p.add("BindDNTemplate", "%q is not a DN: %v", c.BindDNTemplate, err)
		}
	}
}

// validateSearch checks where and how users are found.
func (c Config) validateSearch(p *problems) {
	p.dn("BaseDN", c.BaseDN)
	if !attributeName.MatchString(c.UsernameAttribute) {
		p.add("UsernameAttribute", "%q is not an attribute name", c.UsernameAttribute)
	}
	p.filter("Filter", c.Filter, UsernamePlaceholder)
}

// validateMode checks what the mode needs: a group search (GROUP) or the
// attribute holding role names (ATTRIBUTE).
func (c Config) validateMode(p *problems) {
	switch c.Mode {
	case ModeGroup:
		if c.GroupBaseDN == "" {
			p.add("GroupBaseDN", "empty (and BaseDN too); GROUP mode searches groups under it")
		} else {
			p.dn("GroupBaseDN", c.GroupBaseDN)
		}
		p.filter("GroupFilter", c.GroupFilter, DNPlaceholder)
	case ModeAttribute:
		if !attributeName.MatchString(c.RoleAttribute) {
			p.add("RoleAttribute", "%q is not an attribute name; ATTRIBUTE mode reads role names from it", c.RoleAttribute)
		}
	default:
		p.add("Mode", "%q; want %s or %s", c.Mode, ModeGroup, ModeAttribute)
	}
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
