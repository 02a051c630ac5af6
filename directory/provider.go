package directory

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/go-ldap/ldap/v3"
)

// Errors of Authenticate and Lookup. Each returned error wraps exactly one
// of them (with the reason, for the log; show a client only a generic
// refusal).
var (
	// ErrInvalidCredentials: wrong password, empty password, unknown or
	// disabled user. The caller cannot tell which, by design.
	ErrInvalidCredentials = errors.New("ldap: invalid credentials")
	// ErrUnavailable: the directory could not be asked (down, timeout,
	// TLS failure, service account refused); nothing is known about the
	// user.
	ErrUnavailable = errors.New("ldap: directory unavailable")
	// ErrNotFound: Lookup found no enabled user of that name.
	ErrNotFound = errors.New("ldap: user not found")
	// ErrNoServiceAccount: Lookup needs search-then-bind; a direct-bind
	// configuration has no account to search with.
	ErrNoServiceAccount = errors.New("ldap: lookup needs a service account (BindDN)")
)

// maxUsername bounds a username; longer ones are refused without asking the
// directory.
const maxUsername = 256

// maxNesting bounds how many levels of nested groups are followed.
const maxNesting = 10

// Identity is a user as the directory knows it.
type Identity struct {
	// DN is the user's entry.
	DN string
	// Username is the value of UsernameAttribute (the directory's
	// spelling), or the name given when the entry has none.
	Username string
	// Groups are the DNs of the user's groups, nested ones resolved,
	// sorted (GROUP mode).
	Groups []string
	// Roles are the values of RoleAttribute (ATTRIBUTE mode).
	Roles []string
}

// Stats counts what a Provider did since New.
type Stats struct {
	// Binds counts Authenticate successes answered by the directory.
	Binds uint64
	// BindFailures counts ErrInvalidCredentials answers.
	BindFailures uint64
	// CacheHits counts Authenticate successes answered by the cache.
	CacheHits uint64
	// Unavailable counts ErrUnavailable answers (Authenticate and Lookup).
	Unavailable uint64
}

// Provider authenticates users against one LDAP directory. It is safe for
// concurrent use; each call opens its own connection.
type Provider struct {
	c     Config
	tls   *tls.Config
	cache *cache
	now   func() time.Time

	binds, failures, hits, unavailable atomic.Uint64
	// latency is set by Register, before the provider serves.
	latency prometheus.Histogram
	// slots bounds the directory calls under way (withConn).
	slots chan struct{}
}

// MaxConcurrentCalls is how many directory calls (each its own
// connection) a Provider makes at once.
const MaxConcurrentCalls = 16

// New validates c and returns a Provider. It does not contact the directory.
func New(c Config) (*Provider, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	c = c.withDefaults()
	u, _ := url.Parse(c.URL) // Validate parsed it
	tc := &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pool, err := loadCAs(c.CAFile)
		if err != nil {
			return nil, &ConfigError{Field: "CAFile", Problem: err.Error()}
		}
		tc.RootCAs = pool
	}
	return &Provider{c: c, tls: tc, cache: newCache(c.CacheTTL), now: time.Now, slots: make(chan struct{}, MaxConcurrentCalls)}, nil
}

// Stats returns the counters.
func (p *Provider) Stats() Stats {
	return Stats{Binds: p.binds.Load(), BindFailures: p.failures.Load(), CacheHits: p.hits.Load(), Unavailable: p.unavailable.Load()}
}

// Forget drops the cached successes of username, so its next Authenticate
// asks the directory (after a logout, a password change, a revocation).
func (p *Provider) Forget(username string) { p.cache.forget(username) }

// Authenticate checks username and password against the directory (or a
// cached success of the same pair) and returns the user's identity. An
// empty password is refused without contacting the directory: sent, it
// would be an unauthenticated bind, which directories accept.
func (p *Provider) Authenticate(ctx context.Context, username, password string) (Identity, error) {
	if password == "" || username == "" || len(username) > maxUsername {
		p.failures.Add(1)
		return Identity{}, fmt.Errorf("%w: empty password or username, or username too long", ErrInvalidCredentials)
	}
	k := p.cache.sum(username, password)
	id, ok, gen := p.cache.get(k, p.now())
	if ok {
		p.hits.Add(1)
		return id, nil
	}
	start := time.Now()
	id, err := p.authenticate(ctx, username, password)
	p.observe(start)
	if err != nil {
		p.count(err)
		return Identity{}, err
	}
	p.binds.Add(1)
	p.cache.put(k, gen, username, id, p.now())
	return id, nil
}

// Lookup finds an enabled user with the service account, for the periodic
// re-check of a session: ErrNotFound when the user is gone or excluded by
// Filter (disabled). It never uses the cache.
func (p *Provider) Lookup(ctx context.Context, username string) (Identity, error) {
	if !p.c.searchThenBind() {
		return Identity{}, ErrNoServiceAccount
	}
	if username == "" || len(username) > maxUsername {
		return Identity{}, fmt.Errorf("%w: empty or too long username", ErrNotFound)
	}
	id, err := p.lookup(ctx, username)
	if errors.Is(err, ErrUnavailable) {
		p.unavailable.Add(1)
	}
	return id, err
}

func (p *Provider) count(err error) {
	if errors.Is(err, ErrUnavailable) {
		p.unavailable.Add(1)
	} else {
		p.failures.Add(1)
	}
}

func (p *Provider) authenticate(ctx context.Context, username, password string) (Identity, error) {
	return p.withConn(ctx, username, func(ctx context.Context, conn *ldap.Conn) (*ldap.Entry, error) {
		if p.c.searchThenBind() {
			entry, err := p.serviceFind(ctx, conn, username)
			if errors.Is(err, ErrNotFound) {
				return nil, fmt.Errorf("%w: %w", ErrInvalidCredentials, err)
			}
			if err != nil {
				return nil, err
			}
			if err := conn.Bind(entry.DN, password); err != nil {
				return nil, p.userBindError(ctx, err)
			}
			// Groups are searched as the service account, whose read
			// access the operator granted for this, not as the user.
			if p.c.Mode == ModeGroup {
				if err := p.serviceBind(ctx, conn); err != nil {
					return nil, err
				}
			}
			return entry, nil
		}
		dn := p.userDN(username)
		if err := conn.Bind(dn, password); err != nil {
			return nil, p.userBindError(ctx, err)
		}
		// The bound user reads its own entry through Filter, which may
		// exclude disabled accounts whose bind the directory still allows.
		entry, err := p.search(ctx, conn, dn, ldap.ScopeBaseObject, p.userFilter(username), p.userAttributes())
		if errors.Is(err, ErrNotFound) || (err == nil && entry == nil) {
			return nil, fmt.Errorf("%w: %s is bound but not matched by Filter", ErrInvalidCredentials, dn)
		}
		return entry, err
	})
}

func (p *Provider) lookup(ctx context.Context, username string) (Identity, error) {
	return p.withConn(ctx, username, func(ctx context.Context, conn *ldap.Conn) (*ldap.Entry, error) {
		return p.serviceFind(ctx, conn, username)
	})
}

// withConn runs find on a fresh connection bounded by Timeout, then builds
// the identity of the entry it found on the same connection.
func (p *Provider) withConn(ctx context.Context, username string, find func(context.Context, *ldap.Conn) (*ldap.Entry, error)) (Identity, error) {
	ctx, cancel := context.WithTimeout(ctx, p.c.Timeout)
	defer cancel()
	// Any client can make warden ask the directory (a CONNECT with a name
	// the store does not know): at most MaxConcurrentCalls connections
	// are open at once, and a call that cannot get one in time is
	// unavailable, like a directory that does not answer.
	select {
	case p.slots <- struct{}{}:
		defer func() { <-p.slots }()
	case <-ctx.Done():
		return Identity{}, fmt.Errorf("%w: %d directory calls under way", ErrUnavailable, cap(p.slots))
	}
	conn, err := p.connect(ctx)
	if err != nil {
		return Identity{}, err
	}
	defer conn.Close()
	entry, err := find(ctx, conn)
	if err != nil {
		return Identity{}, err
	}
	return p.identity(ctx, conn, username, entry)
}

// serviceFind binds as the service account and finds the user's entry.
func (p *Provider) serviceFind(ctx context.Context, conn *ldap.Conn, username string) (*ldap.Entry, error) {
	if err := p.serviceBind(ctx, conn); err != nil {
		return nil, err
	}
	return p.findUser(ctx, conn, username)
}

// connect dials the directory, upgrades with StartTLS when configured, and
// closes the connection when ctx ends, which bounds every later operation.
func (p *Provider) connect(ctx context.Context) (*ldap.Conn, error) {
	deadline, _ := ctx.Deadline()
	conn, err := ldap.DialURL(p.c.URL,
		ldap.DialWithDialer(&net.Dialer{Deadline: deadline}),
		ldap.DialWithTLSConfig(p.tls))
	if err != nil {
		return nil, fmt.Errorf("%w: connect %s: %w", ErrUnavailable, p.c.URL, err)
	}
	conn.SetTimeout(time.Until(deadline))
	// Closing at ctx's end bounds StartTLS and every later request, which
	// go-ldap does not bound by a context itself.
	context.AfterFunc(ctx, func() { _ = conn.Close() })
	if p.c.StartTLS {
		if err := conn.StartTLS(p.tls); err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("%w: StartTLS with %s: %w", ErrUnavailable, p.c.URL, err)
		}
	}
	return conn, nil
}

func (p *Provider) serviceBind(ctx context.Context, conn *ldap.Conn) error {
	if err := conn.Bind(p.c.BindDN, p.c.BindPassword); err != nil {
		// A refused service account is a configuration fault, never the
		// user's: the user's password was not checked.
		return fmt.Errorf("%w: service account bind as %s: %w", ErrUnavailable, p.c.BindDN, p.ctxErr(ctx, err))
	}
	return nil
}

// userBindError sorts a failed user bind: the directory's refusal is
// ErrInvalidCredentials; a network fault, timeout or an overloaded server is
// ErrUnavailable. Neither is ever success.
func (p *Provider) userBindError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w: bind: %w", ErrUnavailable, p.ctxErr(ctx, err))
	}
	var le *ldap.Error
	if errors.As(err, &le) {
		switch le.ResultCode {
		case ldap.LDAPResultBusy, ldap.LDAPResultUnavailable, ldap.LDAPResultUnwillingToPerform,
			ldap.LDAPResultOther, ldap.LDAPResultTimeLimitExceeded, ldap.LDAPResultAdminLimitExceeded,
			ldap.LDAPResultOperationsError, ldap.LDAPResultProtocolError:
			return fmt.Errorf("%w: bind: %w", ErrUnavailable, err)
		case ldap.ErrorEmptyPassword:
			return fmt.Errorf("%w: bind: %w", ErrInvalidCredentials, err)
		}
		if le.ResultCode >= ldap.ErrorNetwork {
			return fmt.Errorf("%w: bind: %w", ErrUnavailable, err)
		}
		return fmt.Errorf("%w: bind: %w", ErrInvalidCredentials, err)
	}
	return fmt.Errorf("%w: bind: %w", ErrUnavailable, err)
}

// ctxErr prefers the context's error, which says why the connection was
// closed under the operation.
func (p *Provider) ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%w)", ctx.Err(), err)
	}
	return err
}

// userDN is the user's DN from BindDNTemplate, the username escaped per
// RFC 4514 so that it stays one attribute value of one RDN.
func (p *Provider) userDN(username string) string {
	return strings.ReplaceAll(p.c.BindDNTemplate, UsernamePlaceholder, ldap.EscapeDN(username))
}

// userFilter is Filter with the username escaped per RFC 4515, so that it
// matches only itself (no wildcard, no added clause).
func (p *Provider) userFilter(username string) string {
	return strings.ReplaceAll(p.c.Filter, UsernamePlaceholder, ldap.EscapeFilter(username))
}

func (p *Provider) userAttributes() []string {
	attrs := []string{p.c.UsernameAttribute}
	switch p.c.Mode {
	case ModeGroup:
		attrs = append(attrs, "memberOf")
	case ModeAttribute:
		attrs = append(attrs, p.c.RoleAttribute)
	}
	return attrs
}

// findUser searches BaseDN for exactly one entry matching Filter; none or
// several is ErrNotFound.
func (p *Provider) findUser(ctx context.Context, conn *ldap.Conn, username string) (*ldap.Entry, error) {
	e, err := p.search(ctx, conn, p.c.BaseDN, ldap.ScopeWholeSubtree, p.userFilter(username), p.userAttributes())
	if err != nil {
		return nil, err
	}
	if e == nil {
		return nil, fmt.Errorf("%w: no entry under %s matches the filter", ErrNotFound, p.c.BaseDN)
	}
	return e, nil
}

// search returns the one entry the search finds, nil for none, ErrNotFound
// for more than one (an ambiguous name authenticates nobody), and
// ErrUnavailable when the search fails.
func (p *Provider) search(ctx context.Context, conn *ldap.Conn, base string, scope int, filter string, attrs []string) (*ldap.Entry, error) {
	res, err := conn.Search(ldap.NewSearchRequest(base, scope, ldap.NeverDerefAliases,
		2, p.timeLimit(), false, filter, attrs, nil))
	switch {
	case ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) || (err == nil && len(res.Entries) > 1):
		return nil, fmt.Errorf("%w: several entries under %s match the filter", ErrNotFound, base)
	case ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) && scope == ldap.ScopeBaseObject:
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("%w: search %s: %w", ErrUnavailable, base, p.ctxErr(ctx, err))
	case len(res.Entries) == 0:
		return nil, nil
	}
	return res.Entries[0], nil
}

// timeLimit is the server-side limit of a search, in whole seconds.
func (p *Provider) timeLimit() int {
	return max(1, int((p.c.Timeout+time.Second-1)/time.Second))
}

// identity builds the user's Identity from its entry: the directory's
// spelling of the name, and its groups or role names.
func (p *Provider) identity(ctx context.Context, conn *ldap.Conn, username string, e *ldap.Entry) (Identity, error) {
	id := Identity{DN: e.DN, Username: username}
	names := e.GetAttributeValues(p.c.UsernameAttribute)
	if i := slices.IndexFunc(names, func(n string) bool { return strings.EqualFold(n, username) }); i >= 0 {
		id.Username = names[i]
	} else if len(names) > 0 {
		id.Username = names[0]
	}
	switch p.c.Mode {
	case ModeAttribute:
		id.Roles = e.GetAttributeValues(p.c.RoleAttribute)
	case ModeGroup:
		groups, err := p.groups(ctx, conn, e)
		if err != nil {
			return Identity{}, err
		}
		id.Groups = groups
	}
	return id, nil
}

// groups resolves the user's groups: its memberOf values, plus every group
// under GroupBaseDN that has the user, or (level by level, up to
// maxNesting) one of its groups, as member. memberOf alone misses nested
// groups (OpenLDAP's memberof overlay does not cascade), hence the search.
func (p *Provider) groups(ctx context.Context, conn *ldap.Conn, user *ldap.Entry) ([]string, error) {
	seen := map[string]bool{}
	var groups []string
	frontier := []string{user.DN}
	add := func(dn string) bool {
		key := strings.ToLower(dn)
		if seen[key] || strings.EqualFold(dn, user.DN) {
			return false
		}
		seen[key] = true
		groups = append(groups, dn)
		return true
	}
	for _, dn := range user.GetAttributeValues("memberOf") {
		if add(dn) {
			frontier = append(frontier, dn)
		}
	}
	for level := 0; level < maxNesting && len(frontier) > 0; level++ {
		var next []string
		for chunk := range slices.Chunk(frontier, 50) {
			var f strings.Builder
			f.WriteString("(|")
			for _, dn := range chunk {
				f.WriteString(strings.ReplaceAll(p.c.GroupFilter, DNPlaceholder, ldap.EscapeFilter(dn)))
			}
			f.WriteString(")")
			res, err := conn.Search(ldap.NewSearchRequest(p.c.GroupBaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
				0, p.timeLimit(), false, f.String(), []string{"1.1"}, nil))
			if err != nil {
				return nil, fmt.Errorf("%w: group search under %s: %w", ErrUnavailable, p.c.GroupBaseDN, p.ctxErr(ctx, err))
			}
			for _, e := range res.Entries {
				if add(e.DN) {
					next = append(next, e.DN)
				}
			}
		}
		frontier = next
	}
	slices.Sort(groups)
	return groups, nil
}
