package directory_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warden-mqtt/warden/directory"
	"github.com/warden-mqtt/warden/internal/ldaptest"
)

// searchConfig is search-then-bind over StartTLS with the test CA, GROUP
// mode, the filter that excludes locked accounts.
func searchConfig(d *ldaptest.Directory) directory.Config {
	return directory.Config{
		URL:          d.URL,
		StartTLS:     true,
		CAFile:       d.CAFile,
		BaseDN:       d.BaseDN,
		Filter:       ldaptest.UserFilter,
		BindDN:       d.BindDN,
		BindPassword: d.BindPassword,
		Mode:         directory.ModeGroup,
		GroupBaseDN:  ldaptest.GroupsDN,
		GroupFilter:  ldaptest.GroupFilter,
		Timeout:      2 * time.Second,
	}
}

// templateConfig is a direct bind over LDAPS.
func templateConfig(d *ldaptest.Directory) directory.Config {
	return directory.Config{
		URL:            d.LDAPSURL,
		CAFile:         d.CAFile,
		BaseDN:         d.BaseDN,
		BindDNTemplate: ldaptest.UserDNTemplate,
		Mode:           directory.ModeGroup,
		Timeout:        2 * time.Second,
	}
}

func newProvider(t *testing.T, c directory.Config) *directory.Provider {
	t.Helper()
	p, err := directory.New(c)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
}

func wantIdentity(t *testing.T, got directory.Identity, u ldaptest.User, mode directory.Mode) {
	t.Helper()
	want := directory.Identity{DN: u.DN, Username: u.Username}
	if mode == directory.ModeGroup {
		want.Groups = slices.Sorted(slices.Values(u.AllGroups))
	} else {
		want.Roles = u.Roles
	}
	if got.DN != want.DN || got.Username != want.Username || !slices.Equal(got.Groups, want.Groups) || !slices.Equal(got.Roles, want.Roles) {
		t.Errorf("identity of %s:\n got %+v\nwant %+v", u.Username, got, want)
	}
}

func TestAuthenticateEachWayOfFindingTheUser(t *testing.T) {
	d := ldaptest.Start(t)
	cases := map[string]directory.Config{
		"search-then-bind over StartTLS": searchConfig(d),
		"search-then-bind over LDAPS": func() directory.Config {
			c := searchConfig(d)
			c.URL, c.StartTLS = d.LDAPSURL, false
			return c
		}(),
		"template bind over LDAPS": templateConfig(d),
		"template bind over StartTLS": func() directory.Config {
			c := templateConfig(d)
			c.URL, c.StartTLS = d.URL, true
			return c
		}(),
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			p := newProvider(t, c)
			for _, u := range []ldaptest.User{ldaptest.Alice, ldaptest.Bob, ldaptest.Carol} {
				id, err := p.Authenticate(t.Context(), u.Username, u.Password)
				if err != nil {
					t.Fatalf("Authenticate %s: %v", u.Username, err)
				}
				wantIdentity(t, id, u, directory.ModeGroup)
			}
			// The directory matches uid case-insensitively; the identity
			// carries its own spelling.
			id, err := p.Authenticate(t.Context(), "ALICE", ldaptest.Alice.Password)
			if err != nil || id.Username != "alice" {
				t.Errorf("Authenticate ALICE: %+v, %v; want username alice", id, err)
			}
		})
	}
}

func TestAttributeModeGivesRoleNames(t *testing.T) {
	d := ldaptest.Start(t)
	for name, c := range map[string]directory.Config{"search-then-bind": searchConfig(d), "template bind": templateConfig(d)} {
		t.Run(name, func(t *testing.T) {
			c.Mode, c.RoleAttribute = directory.ModeAttribute, ldaptest.RoleAttribute
			p := newProvider(t, c)
			for _, u := range []ldaptest.User{ldaptest.Alice, ldaptest.Bob, ldaptest.Carol} {
				id, err := p.Authenticate(t.Context(), u.Username, u.Password)
				if err != nil {
					t.Fatalf("Authenticate %s: %v", u.Username, err)
				}
				wantIdentity(t, id, u, directory.ModeAttribute)
			}
		})
	}
}

// A group change in the directory shows at the next Lookup: nesting is
// resolved afresh.
func TestGroupChangesShowInLookup(t *testing.T) {
	d := ldaptest.Start(t)
	p := newProvider(t, searchConfig(d))
	// Admins becomes a member of Staff: Bob is in Staff through nesting.
	d.Modify(t, "dn: "+ldaptest.Staff+"\nchangetype: modify\nadd: member\nmember: "+ldaptest.Admins+"\n")
	id, err := p.Lookup(t.Context(), "bob")
	if want := []string{ldaptest.Admins, ldaptest.Staff}; err != nil || !slices.Equal(id.Groups, want) {
		t.Errorf("Lookup bob after nesting admins in staff: %v, %v; want groups %q", id.Groups, err, want)
	}
	// Alice leaves Operators: she loses Staff too.
	d.Modify(t, "dn: "+ldaptest.Operators+"\nchangetype: modify\ndelete: member\nmember: "+ldaptest.Alice.DN+"\n")
	id, err = p.Lookup(t.Context(), "alice")
	if err != nil || len(id.Groups) != 0 {
		t.Errorf("Lookup alice after leaving operators: %v, %v; want no group", id.Groups, err)
	}
}

// A cycle of groups ends: every group once.
func TestGroupCycleTerminates(t *testing.T) {
	d := ldaptest.Start(t)
	d.Modify(t, "dn: "+ldaptest.Operators+"\nchangetype: modify\nadd: member\nmember: "+ldaptest.Staff+"\n")
	p := newProvider(t, searchConfig(d))
	id, err := p.Authenticate(t.Context(), ldaptest.Alice.Username, ldaptest.Alice.Password)
	if want := []string{ldaptest.Operators, ldaptest.Staff}; err != nil || !slices.Equal(id.Groups, want) {
		t.Errorf("alice with operators and staff members of each other: %v, %v; want %q", id.Groups, err, want)
	}
}

func TestRefusals(t *testing.T) {
	d := ldaptest.Start(t)
	noLockFilter := searchConfig(d)
	noLockFilter.Filter = "(uid={username})" // the bind itself must refuse Dave
	configs := map[string]directory.Config{
		"search-then-bind":                 searchConfig(d),
		"search without the locked filter": noLockFilter,
		"template bind":                    templateConfig(d),
	}
	attempts := map[string]struct{ username, password string }{
		"wrong password":          {"alice", "not-" + ldaptest.Alice.Password},
		"another user's password": {"bob", ldaptest.Alice.Password},
		"unknown user":            {"nobody", "whatever-1"},
		"disabled user":           {ldaptest.Dave.Username, ldaptest.Dave.Password},
		"empty password":          {"alice", ""},
		"empty username":          {"", ldaptest.Alice.Password},
		// Injections carry Alice's password: if the filter or DN widened
		// to Alice, the bind would succeed.
		"filter injection: star":         {"*", ldaptest.Alice.Password},
		"filter injection: close and or": {"*)(uid=*", ldaptest.Alice.Password},
		"filter injection: alice or all": {"alice)(|(uid=*", ldaptest.Alice.Password},
		"filter injection: prefix":       {"ali*", ldaptest.Alice.Password},
		"filter injection: NUL":          {"alice\x00", ldaptest.Alice.Password},
		"DN injection: extra RDN":        {"alice,ou=people", ldaptest.Alice.Password},
		"DN injection: multi-valued RDN": {"x+uid=alice", ldaptest.Alice.Password},
		"DN injection: another whole DN": {ldaptest.Alice.DN, ldaptest.Alice.Password},
		"username longer than 256 bytes": {strings.Repeat("a", 257), ldaptest.Alice.Password},
	}
	for cname, c := range configs {
		p := newProvider(t, c)
		for aname, a := range attempts {
			t.Run(cname+"/"+aname, func(t *testing.T) {
				id, err := p.Authenticate(t.Context(), a.username, a.password)
				if !errors.Is(err, directory.ErrInvalidCredentials) || errors.Is(err, directory.ErrUnavailable) {
					t.Errorf("Authenticate(%q): %+v, %v; want ErrInvalidCredentials", a.username, id, err)
				}
			})
		}
		if s := p.Stats(); s.Binds != 0 || s.CacheHits != 0 || s.BindFailures != uint64(len(attempts)) {
			t.Errorf("%s: stats %+v; want %d failures and nothing else", cname, s, len(attempts))
		}
	}
}

// Lookup with an injected name finds nothing: the search itself did not
// widen.
func TestInjectedNamesFindNobody(t *testing.T) {
	d := ldaptest.Start(t)
	p := newProvider(t, searchConfig(d))
	for _, name := range []string{"*", "*)(uid=*", "alice)(|(uid=*", "ali*", `alice\2a`, "(uid=alice)"} {
		if id, err := p.Lookup(t.Context(), name); !errors.Is(err, directory.ErrNotFound) {
			t.Errorf("Lookup(%q): %+v, %v; want ErrNotFound", name, id, err)
		}
	}
}

func TestLookup(t *testing.T) {
	d := ldaptest.Start(t)
	p := newProvider(t, searchConfig(d))
	id, err := p.Lookup(t.Context(), "alice")
	if err != nil {
		t.Fatalf("Lookup alice: %v", err)
	}
	wantIdentity(t, id, ldaptest.Alice, directory.ModeGroup)

	if _, err := p.Lookup(t.Context(), ldaptest.Dave.Username); !errors.Is(err, directory.ErrNotFound) {
		t.Errorf("Lookup disabled dave: %v; want ErrNotFound", err)
	}
	d.Modify(t, "dn: "+ldaptest.Alice.DN+"\nchangetype: delete\n")
	if _, err := p.Lookup(t.Context(), "alice"); !errors.Is(err, directory.ErrNotFound) {
		t.Errorf("Lookup alice after deletion: %v; want ErrNotFound", err)
	}

	tp := newProvider(t, templateConfig(d))
	if _, err := tp.Lookup(t.Context(), "bob"); !errors.Is(err, directory.ErrNoServiceAccount) {
		t.Errorf("Lookup without a service account: %v; want ErrNoServiceAccount", err)
	}
}

func TestTLSWithAnotherCAIsRefused(t *testing.T) {
	d := ldaptest.Start(t)
	other := ldaptest.OtherCAFile(t)
	for name, c := range map[string]directory.Config{"StartTLS": searchConfig(d), "LDAPS": templateConfig(d)} {
		t.Run(name, func(t *testing.T) {
			c.CAFile = other
			p := newProvider(t, c)
			_, err := p.Authenticate(t.Context(), ldaptest.Alice.Username, ldaptest.Alice.Password)
			if !errors.Is(err, directory.ErrUnavailable) || !strings.Contains(err.Error(), "certificate") {
				t.Errorf("Authenticate with an untrusted server certificate: %v; want ErrUnavailable naming the certificate", err)
			}
		})
	}
}

func TestPlainLDAPOnlyWhenInsecure(t *testing.T) {
	d := ldaptest.Start(t)
	c := searchConfig(d)
	c.StartTLS = false
	err := c.Validate()
	var ce *directory.ConfigError
	if !errors.As(err, &ce) || ce.Field != "URL" || !strings.Contains(err.Error(), "clear text") {
		t.Fatalf("Validate plain ldap://: %v; want a URL error about clear text", err)
	}
	if _, err := directory.New(c); err == nil {
		t.Fatal("New accepted plain ldap:// without Insecure")
	}
	c.Insecure = true
	p := newProvider(t, c)
	if _, err := p.Authenticate(t.Context(), ldaptest.Alice.Username, ldaptest.Alice.Password); err != nil {
		t.Errorf("Authenticate over plain ldap:// with Insecure: %v", err)
	}
}

func TestValidateNamesEachProblem(t *testing.T) {
	ok := directory.Config{URL: "ldaps://ldap.example.org:636", BaseDN: "dc=example,dc=org",
		BindDN: "cn=reader,dc=example,dc=org", BindPassword: "x"}
	if err := ok.Validate(); err != nil {
		t.Fatalf("Validate a good config: %v", err)
	}
	cases := map[string]struct {
		change func(*directory.Config)
		field  string
	}{
		"empty URL":                        {func(c *directory.Config) { c.URL = "" }, "URL"},
		"http URL":                         {func(c *directory.Config) { c.URL = "http://x" }, "URL"},
		"URL with a DN":                    {func(c *directory.Config) { c.URL = "ldaps://x/dc=example" }, "URL"},
		"StartTLS on ldaps":                {func(c *directory.Config) { c.StartTLS = true }, "StartTLS"},
		"missing CA file":                  {func(c *directory.Config) { c.CAFile = "/nonexistent/ca.pem" }, "CAFile"},
		"both search and template":         {func(c *directory.Config) { c.BindDNTemplate = "uid={username},dc=x" }, "BindDNTemplate"},
		"neither search nor template":      {func(c *directory.Config) { c.BindDN, c.BindPassword = "", "" }, "BindDN"},
		"service account without password": {func(c *directory.Config) { c.BindPassword = "" }, "BindPassword"},
		"template without placeholder": {func(c *directory.Config) {
			c.BindDN, c.BindPassword, c.BindDNTemplate = "", "", "uid=alice,dc=x"
		}, "BindDNTemplate"},
		"template not a DN": {func(c *directory.Config) {
			c.BindDN, c.BindPassword, c.BindDNTemplate = "", "", "{username}"
		}, "BindDNTemplate"},
		"search without base":              {func(c *directory.Config) { c.BaseDN = "" }, "BaseDN"},
		"filter without placeholder":       {func(c *directory.Config) { c.Filter = "(uid=alice)" }, "Filter"},
		"filter not a filter":              {func(c *directory.Config) { c.Filter = "uid={username}" }, "Filter"},
		"group filter without {dn}":        {func(c *directory.Config) { c.GroupFilter = "(member=x)" }, "GroupFilter"},
		"unknown mode":                     {func(c *directory.Config) { c.Mode = "ROLES" }, "Mode"},
		"attribute mode without attribute": {func(c *directory.Config) { c.Mode = directory.ModeAttribute }, "RoleAttribute"},
		"negative timeout":                 {func(c *directory.Config) { c.Timeout = -time.Second }, "Timeout"},
		"negative cache TTL":               {func(c *directory.Config) { c.CacheTTL = -time.Second }, "CacheTTL"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := ok
			tc.change(&c)
			err := c.Validate()
			var ce *directory.ConfigError
			if !errors.As(err, &ce) || ce.Field != tc.field {
				t.Errorf("Validate: %v; want a problem with %s", err, tc.field)
			}
		})
	}
	// Every problem at once.
	bad := directory.Config{URL: "ldap://x", Mode: "ROLES", Timeout: -1}
	if n := strings.Count(bad.Validate().Error(), "\n") + 1; n < 4 {
		t.Errorf("Validate reported %d problems of an empty config, want at least 4:\n%v", n, bad.Validate())
	}
}

func TestDirectoryDown(t *testing.T) {
	d := ldaptest.Start(t)
	c := searchConfig(d)
	c.CacheTTL = time.Minute
	p := newProvider(t, c)
	if _, err := p.Authenticate(t.Context(), "alice", ldaptest.Alice.Password); err != nil {
		t.Fatalf("Authenticate alice while up: %v", err)
	}
	d.Stop()

	id, err := p.Authenticate(t.Context(), "alice", ldaptest.Alice.Password)
	if err != nil {
		t.Fatalf("cached alice while down: %v", err)
	}
	wantIdentity(t, id, ldaptest.Alice, directory.ModeGroup)
	for name, a := range map[string]struct{ username, password string }{
		"uncached user":               {"bob", ldaptest.Bob.Password},
		"cached user, other password": {"alice", "not-" + ldaptest.Alice.Password},
	} {
		_, err := p.Authenticate(t.Context(), a.username, a.password)
		if !errors.Is(err, directory.ErrUnavailable) || errors.Is(err, directory.ErrInvalidCredentials) {
			t.Errorf("%s while down: %v; want ErrUnavailable only", name, err)
		}
	}
	if _, err := p.Lookup(t.Context(), "alice"); !errors.Is(err, directory.ErrUnavailable) {
		t.Errorf("Lookup while down: %v; want ErrUnavailable (Lookup never uses the cache)", err)
	}
	if s := p.Stats(); s.Binds != 1 || s.CacheHits != 1 || s.Unavailable != 3 || s.BindFailures != 0 {
		t.Errorf("stats %+v; want 1 bind, 1 cache hit, 3 unavailable", s)
	}

	p.Forget("alice")
	if _, err := p.Authenticate(t.Context(), "alice", ldaptest.Alice.Password); !errors.Is(err, directory.ErrUnavailable) {
		t.Errorf("alice after Forget while down: %v; want ErrUnavailable", err)
	}
}

// A hung directory (connects accepted, nothing answers) is unavailable
// within Timeout, or within the caller's earlier deadline.
func TestHungDirectoryTimesOut(t *testing.T) {
	d := ldaptest.Start(t)
	short := func(c directory.Config) directory.Config { c.Timeout = 300 * time.Millisecond; return c }
	cases := map[string]struct {
		c      directory.Config
		caller time.Duration // the caller's deadline; 0 for none
		call   func(context.Context, *directory.Provider) error
	}{
		"Authenticate over StartTLS": {short(searchConfig(d)), 0, func(ctx context.Context, p *directory.Provider) error {
			_, err := p.Authenticate(ctx, "alice", ldaptest.Alice.Password)
			return err
		}},
		"Authenticate over LDAPS": {short(templateConfig(d)), 0, func(ctx context.Context, p *directory.Provider) error {
			_, err := p.Authenticate(ctx, "alice", ldaptest.Alice.Password)
			return err
		}},
		"Lookup with the caller's deadline": {searchConfig(d), 300 * time.Millisecond, func(ctx context.Context, p *directory.Provider) error {
			_, err := p.Lookup(ctx, "alice")
			return err
		}},
	}
	d.Freeze(t)
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			p := newProvider(t, tc.c)
			ctx := t.Context()
			if tc.caller > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.caller)
				defer cancel()
			}
			begin := time.Now()
			if err := tc.call(ctx, p); !errors.Is(err, directory.ErrUnavailable) {
				t.Errorf("against a hung directory: %v; want ErrUnavailable", err)
			}
			if took := time.Since(begin); took > 1500*time.Millisecond {
				t.Errorf("took %v with a 300ms bound", took)
			}
		})
	}
}

// A failure is never cached: the same pair succeeds as soon as the
// directory says so.
func TestFailureIsNeverCached(t *testing.T) {
	d := ldaptest.Start(t)
	c := searchConfig(d)
	c.CacheTTL = time.Hour
	p := newProvider(t, c)
	const newPassword = "carol-New-2"
	for range 2 {
		if _, err := p.Authenticate(t.Context(), "carol", newPassword); !errors.Is(err, directory.ErrInvalidCredentials) {
			t.Fatalf("carol with a password she does not have yet: %v", err)
		}
	}
	d.Modify(t, "dn: "+ldaptest.Carol.DN+"\nchangetype: modify\nreplace: userPassword\nuserPassword: "+newPassword+"\n")
	if _, err := p.Authenticate(t.Context(), "carol", newPassword); err != nil {
		t.Errorf("carol with her new password: %v", err)
	}
	if s := p.Stats(); s.CacheHits != 0 || s.BindFailures != 2 || s.Binds != 1 {
		t.Errorf("stats %+v; want 2 failures, 1 bind, no cache hit", s)
	}
}

func TestCacheExpires(t *testing.T) {
	d := ldaptest.Start(t)
	c := searchConfig(d)
	c.CacheTTL = time.Minute
	p := newProvider(t, c)
	now := time.Now()
	directory.SetNow(p, func() time.Time { return now })
	if _, err := p.Authenticate(t.Context(), "alice", ldaptest.Alice.Password); err != nil {
		t.Fatal(err)
	}
	d.Stop()
	now = now.Add(59 * time.Second)
	if _, err := p.Authenticate(t.Context(), "alice", ldaptest.Alice.Password); err != nil {
		t.Errorf("59s into a 1m TTL while down: %v; want the cached success", err)
	}
	now = now.Add(time.Second)
	if _, err := p.Authenticate(t.Context(), "alice", ldaptest.Alice.Password); !errors.Is(err, directory.ErrUnavailable) {
		t.Errorf("1m into a 1m TTL while down: %v; want ErrUnavailable", err)
	}
}

// Without a cache every Authenticate asks the directory; with the
// directory down, an empty password is still refused as invalid (it never
// reaches the directory).
func TestNoCacheAndEmptyPasswordOffline(t *testing.T) {
	d := ldaptest.Start(t)
	p := newProvider(t, searchConfig(d))
	for range 2 {
		if _, err := p.Authenticate(t.Context(), "alice", ldaptest.Alice.Password); err != nil {
			t.Fatal(err)
		}
	}
	if s := p.Stats(); s.Binds != 2 || s.CacheHits != 0 {
		t.Errorf("stats %+v without a cache; want 2 binds", s)
	}
	d.Stop()
	if _, err := p.Authenticate(t.Context(), "alice", ""); !errors.Is(err, directory.ErrInvalidCredentials) {
		t.Errorf("empty password with the directory down: %v; want ErrInvalidCredentials", err)
	}
}

// A service account the directory refuses is the operator's fault:
// unavailable, never the user's invalid credentials.
func TestRefusedServiceAccountIsUnavailable(t *testing.T) {
	d := ldaptest.Start(t)
	c := searchConfig(d)
	c.BindPassword = "wrong"
	p := newProvider(t, c)
	_, err := p.Authenticate(t.Context(), "alice", ldaptest.Alice.Password)
	if !errors.Is(err, directory.ErrUnavailable) || errors.Is(err, directory.ErrInvalidCredentials) {
		t.Errorf("Authenticate with a refused service account: %v; want ErrUnavailable only", err)
	}
}

// A username with a comma cannot reach an entry deeper in the tree through
// the DN template: Eve below ou=contractors has her own password, and
// "eve,ou=contractors" must not bind as her. The filter here matches every
// person, so only the DN escaping stands in the way.
func TestDNTemplateKeepsTheUsernameOneValue(t *testing.T) {
	const evePassword = "eve-Secret-1"
	d := ldaptest.Start(t, ldaptest.WithLDIF(`dn: ou=contractors,`+ldaptest.PeopleDN+`
objectClass: organizationalUnit
ou: contractors

dn: uid=eve,ou=contractors,`+ldaptest.PeopleDN+`
objectClass: inetOrgPerson
uid: eve
cn: eve
sn: eve
userPassword: `+evePassword+`
`))
	c := templateConfig(d)
	c.Filter = "(|(uid={username})(objectClass=inetOrgPerson))"
	p := newProvider(t, c)
	for _, name := range []string{"eve,ou=contractors", "eve+ou=contractors", "eve\\,ou=contractors"} {
		id, err := p.Authenticate(t.Context(), name, evePassword)
		if !errors.Is(err, directory.ErrInvalidCredentials) {
			t.Errorf("Authenticate(%q) with eve's password: %+v, %v; want ErrInvalidCredentials", name, id, err)
		}
	}
}

// TestConcurrentCallsBounded: any client can make warden ask the
// directory (a CONNECT with an unknown name); a burst of such attempts
// against a hung directory holds at most MaxConcurrentCalls connections
// to it, and every attempt ends unavailable within its bound. A TCP relay
// in front of slapd counts the connections opened before the first calls
// time out (none can have ended by then).
func TestConcurrentCallsBounded(t *testing.T) {
	d := ldaptest.Start(t)
	target := strings.TrimPrefix(d.URL, "ldap://")
	relay, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relay.Close() })
	var mu sync.Mutex
	var accepted []time.Time
	go func() {
		for {
			c, err := relay.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			accepted = append(accepted, time.Now())
			mu.Unlock()
			go func() {
				defer c.Close()
				up, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer up.Close()
				go func() { _, _ = io.Copy(c, up) }()
				_, _ = io.Copy(up, c)
			}()
		}
	}()
	c := searchConfig(d)
	c.URL, c.Timeout = "ldap://"+relay.Addr().String(), 500*time.Millisecond
	p := newProvider(t, c)
	d.Freeze(t)
	const burst = 3 * directory.MaxConcurrentCalls
	var wg sync.WaitGroup
	errs := make(chan error, burst)
	begin := time.Now()
	for i := range burst {
		wg.Go(func() {
			_, err := p.Authenticate(context.Background(), fmt.Sprintf("guess%d", i), "Guess-password-1")
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, directory.ErrUnavailable) {
			t.Fatalf("against a hung directory: %v, want ErrUnavailable", err)
		}
	}
	mu.Lock()
	early := 0
	for _, at := range accepted {
		if at.Sub(begin) < 400*time.Millisecond { // the calls' bound is 500 ms
			early++
		}
	}
	total := len(accepted)
	mu.Unlock()
	if early > directory.MaxConcurrentCalls || early == 0 {
		t.Errorf("%d connections to the directory before any call could end (%d in all), want 1 to %d", early, total, directory.MaxConcurrentCalls)
	}
	if took := time.Since(begin); took > 3*time.Second {
		t.Errorf("the burst took %v with a 500 ms bound per call", took)
	}
}
