package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/admin"
	"github.com/warden-mqtt/warden/authhook"
	"github.com/warden-mqtt/warden/broker"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

// acMaxLevels is the embedded broker's topic level limit in these tests,
// low enough that a publish prefix can push a topic over it.
const acMaxLevels = 5

// acEnv is the admin API and the embedded broker's auth hook on one store.
type acEnv struct {
	*api
	hook *authhook.Hook
}

// acNew starts the API on a bolt store with the hook of an embedded
// broker (topic levels limited to acMaxLevels) as its Broker.
func acNew(t *testing.T) *acEnv {
	t.Helper()
	return acNewOn(t, storetest.OpenBolt(t))
}

// acNewOn is acNew on st.
func acNewOn(t *testing.T, st store.Store) *acEnv {
	t.Helper()
	hook, err := authhook.New(context.Background(), authhook.Options{Store: st, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hook.Stop() })
	br, err := broker.New(broker.Config{TCPAddr: "127.0.0.1:0", MaxTopicLevels: acMaxLevels, Logger: slog.New(slog.DiscardHandler)}, hook)
	if err != nil {
		t.Fatal(err)
	}
	hook.Attach(br.Server())
	t.Cleanup(func() { _ = br.Close() })
	return &acEnv{api: newAPI(t, st, func(o *admin.Options) { o.Broker = hook }), hook: hook}
}

// acRole stores a role holding perms.
func acRole(t *testing.T, st store.Store, name string, perms ...acl.Permission) store.Role {
	t.Helper()
	r, err := st.CreateRole(context.Background(), store.Role{Name: name, Permissions: perms})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// acUser stores a user with password adminPassword holding roles; edit
// adjusts it first.
func acUser(t *testing.T, st store.Store, name string, roles []string, edit ...func(*store.User)) store.User {
	t.Helper()
	h, err := credential.Hash(adminPassword, fastParams)
	if err != nil {
		t.Fatal(err)
	}
	u := store.User{Username: name, PasswordHash: h, Roles: roles, GrantTypes: []store.GrantType{{Method: store.GrantPassword}}}
	for _, f := range edit {
		f(&u)
	}
	u, err = st.CreateUser(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func acPerm(resource string, op acl.Operation) acl.Permission {
	return acl.Permission{Resource: resource, Operation: op, Context: acl.ContextMQTT}
}

// acAnswer is the body of GET /api/access/check as the UI reads it.
type acAnswer struct {
	Subject struct {
		Kind string `json:"kind"`
		Name string `json:"name"`
	} `json:"subject"`
	Topic          string     `json:"topic"`
	Context        string     `json:"context"`
	Filter         bool       `json:"filter"`
	ClientID       string     `json:"clientId"`
	EffectiveTopic string     `json:"effectiveTopic"`
	Read           acDecision `json:"read"`
	Write          acDecision `json:"write"`
}

type acDecision struct {
	Allowed    bool `json:"allowed"`
	Permission *struct {
		ID        string `json:"id"`
		Resource  string `json:"resource"`
		Operation string `json:"operation"`
		Context   string `json:"context"`
		Role      string `json:"role"`
		RoleID    string `json:"roleId"`
	} `json:"permission"`
	Resolved      string `json:"resolved"`
	AlsoAllowedBy []struct {
		Resource string `json:"resource"`
	} `json:"alsoAllowedBy"`
	Reason string `json:"reason"`
}

// check asks GET /api/access/check with query q (key, value pairs) as
// token; it returns the status and the raw body.
func (e *acEnv) check(token string, q ...string) (int, []byte) {
	e.t.Helper()
	v := url.Values{}
	for i := 0; i+1 < len(q); i += 2 {
		v.Set(q[i], q[i+1])
	}
	return e.do("GET", "/api/access/check?"+v.Encode(), token, nil)
}

// mustCheck is check as the admin, failing unless it answers 200.
func (e *acEnv) mustCheck(q ...string) acAnswer {
	e.t.Helper()
	code, body := e.check(e.admin, q...)
	if code != http.StatusOK {
		e.t.Fatalf("check %v: %d %s", q, code, body)
	}
	var a acAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		e.t.Fatalf("check %v: %v in %s", q, err, body)
	}
	return a
}

// acWant is one expected decision: allowed and by which resource (""
// with a reason fragment when not).
type acWant struct {
	allowed  bool
	by       string // the deciding permission's resource
	resolved string
	also     string // first of alsoAllowedBy
	reason   string // a fragment of the reason
}

func (w acWant) check(t *testing.T, op string, d acDecision) {
	t.Helper()
	switch {
	case d.Allowed != w.allowed:
		t.Errorf("%s allowed = %v, want %v (%+v)", op, d.Allowed, w.allowed, d)
	case w.allowed && (d.Permission == nil || d.Permission.Resource != w.by || d.Resolved != w.resolved || d.Reason != ""):
		t.Errorf("%s decided by %+v resolved %q, want %q resolved %q", op, d.Permission, d.Resolved, w.by, w.resolved)
	case w.allowed && w.also != "" && (len(d.AlsoAllowedBy) == 0 || d.AlsoAllowedBy[0].Resource != w.also):
		t.Errorf("%s also allowed by %+v, want %q first", op, d.AlsoAllowedBy, w.also)
	case !w.allowed && (d.Permission != nil || !strings.Contains(d.Reason, w.reason)):
		t.Errorf("%s: permission %+v, reason %q, want none and a reason with %q", op, d.Permission, d.Reason, w.reason)
	}
}

// TestAccessCheckExplainsDecisions: the "try a topic" table over users
// with placeholders, a publish prefix, read-only and write-only
// permissions, filters, a suspended user, a directory role and a role, on
// both stores.
func TestAccessCheckExplainsDecisions(t *testing.T) {
	t.Parallel()
	t.Run("bolt", func(t *testing.T) { testAccessCheckExplainsDecisions(t, acNewOn(t, storetest.OpenBolt(t))) })
	t.Run("redis", func(t *testing.T) { testAccessCheckExplainsDecisions(t, acNewOn(t, storetest.OpenRedis(t))) })
}

func testAccessCheckExplainsDecisions(t *testing.T, e *acEnv) {
	sensors := acRole(t, e.st, "sensors",
		acPerm("plant/{username}/#", acl.OpReadWrite),
		acPerm("plant/+/status", acl.OpRead),
		acPerm("cmd/{clientId}", acl.OpWrite),
		acPerm("alerts", acl.OpRead),
		acPerm("logs/#", acl.OpWrite),
		acl.Permission{Resource: "/api/roles/#", Operation: acl.OpRead, Context: acl.ContextHTTP},
	)
	ldap := acRole(t, e.st, "ldap-readers", acPerm("ldap/#", acl.OpRead))
	acUser(t, e.st, "alice", []string{sensors.ID})
	acUser(t, e.st, "bob", []string{sensors.ID}, func(u *store.User) { u.MQTTPublishPrefix = "plant/bob/" })
	acUser(t, e.st, "carl", []string{sensors.ID}, func(u *store.User) { u.Suspended = true })
	acUser(t, e.st, "dave", nil, func(u *store.User) { u.LdapRoles = []string{ldap.ID} })

	no := func(reason string) acWant { return acWant{reason: reason} }
	cases := []struct {
		name        string
		q           []string
		filter      bool
		effective   string
		read, write acWant
	}{
		{"a placeholder resolves to the user's name", []string{"username", "alice", "topic", "plant/alice/temp"}, false, "plant/alice/temp",
			acWant{allowed: true, by: "plant/{username}/#", resolved: "plant/alice/#"}, acWant{allowed: true, by: "plant/{username}/#", resolved: "plant/alice/#"}},
		{"the most specific permission decides, the others are listed", []string{"username", "alice", "topic", "plant/alice/status"}, false, "plant/alice/status",
			acWant{allowed: true, by: "plant/{username}/#", resolved: "plant/alice/#", also: "plant/+/status"}, acWant{allowed: true, by: "plant/{username}/#", resolved: "plant/alice/#"}},
		{"read-only", []string{"username", "alice", "topic", "alerts"}, false, "alerts",
			acWant{allowed: true, by: "alerts", resolved: "alerts"}, no("no permission allows write")},
		{"write-only", []string{"username", "alice", "topic", "logs/x"}, false, "logs/x",
			no("no permission allows read"), acWant{allowed: true, by: "logs/#", resolved: "logs/#"}},
		{"another user's topic", []string{"username", "alice", "topic", "plant/bob/temp"}, false, "plant/bob/temp",
			no("no permission allows read"), no("no permission allows write")},
		{"a filter is judged as a subscription and cannot be published to", []string{"username", "alice", "topic", "plant/alice/#"}, true, "plant/alice/#",
			acWant{allowed: true, by: "plant/{username}/#", resolved: "plant/alice/#"}, no("a filter cannot be published to")},
		{"a filter covered by a '+' permission", []string{"username", "alice", "topic", "plant/+/status"}, true, "plant/+/status",
			acWant{allowed: true, by: "plant/+/status", resolved: "plant/+/status"}, no("a filter cannot be published to")},
		{"a filter wider than every permission", []string{"username", "alice", "topic", "plant/#"}, true, "plant/#",
			no("no permission allows read"), no("a filter cannot be published to")},
		{"{clientId} without a client ID matches nothing", []string{"username", "alice", "topic", "cmd/c1"}, false, "cmd/c1",
			no("no permission allows read"), no("{clientId} (no clientId given)")},
		{"{clientId} with one", []string{"username", "alice", "topic", "cmd/c1", "clientId", "c1"}, false, "cmd/c1",
			no("no permission allows read"), acWant{allowed: true, by: "cmd/{clientId}", resolved: "cmd/c1"}},
		{"the publish prefix is applied to write, not to read", []string{"username", "bob", "topic", "temp"}, false, "plant/bob/temp",
			no("no permission allows read"), acWant{allowed: true, by: "plant/{username}/#", resolved: "plant/bob/#"}},
		{"a prefixed topic over the broker's topic limits", []string{"username", "bob", "topic", "a/b/c/d"}, false, "plant/bob/a/b/c/d",
			no("no permission allows read"), no("topic limits")},
		{"a filter is not prefixed", []string{"username", "bob", "topic", "plant/bob/+"}, true, "plant/bob/+",
			acWant{allowed: true, by: "plant/{username}/#", resolved: "plant/bob/#"}, no("a filter cannot be published to")},
		{"a suspended user may do nothing", []string{"username", "carl", "topic", "plant/carl/temp"}, false, "plant/carl/temp",
			no("user is suspended"), no("user is suspended")},
		{"a directory role counts", []string{"username", "dave", "topic", "ldap/x"}, false, "ldap/x",
			acWant{allowed: true, by: "ldap/#", resolved: "ldap/#"}, no("no permission allows write")},
		{"a role's placeholders stay unresolved and match nothing", []string{"role", "sensors", "topic", "plant/alice/temp"}, false, "plant/alice/temp",
			no("{username} (a role has no username)"), no("{username} (a role has no username)")},
		{"a role's plain permissions", []string{"role", "sensors", "topic", "plant/x/status"}, false, "plant/x/status",
			acWant{allowed: true, by: "plant/+/status", resolved: "plant/+/status"}, no("no permission allows write")},
		{"an http path", []string{"username", "alice", "topic", "/api/roles/r1", "context", "http"}, false, "/api/roles/r1",
			acWant{allowed: true, by: "/api/roles/#", resolved: "/api/roles/#"}, no("no permission allows write")},
		{"a publish prefix is not applied to http paths", []string{"username", "bob", "topic", "/api/roles", "context", "http"}, false, "/api/roles",
			acWant{allowed: true, by: "/api/roles/#", resolved: "/api/roles/#"}, no("no permission allows write")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := e.mustCheck(c.q...)
			if a.Filter != c.filter || a.EffectiveTopic != c.effective {
				t.Errorf("filter %v effectiveTopic %q, want %v %q", a.Filter, a.EffectiveTopic, c.filter, c.effective)
			}
			c.read.check(t, "read", a.Read)
			c.write.check(t, "write", a.Write)
		})
	}

	a := e.mustCheck("username", "alice", "topic", "alerts")
	if a.Subject.Kind != "user" || a.Subject.Name != "alice" || a.Context != "mqtt" || a.Topic != "alerts" ||
		a.Read.Permission.Role != "sensors" || a.Read.Permission.RoleID != sensors.ID || a.Read.Permission.ID == "" ||
		a.Read.Permission.Operation != "read" || a.Read.Permission.Context != "mqtt" {
		t.Errorf("answer %+v, read permission %+v", a, a.Read.Permission)
	}
	if r := e.mustCheck("role", "sensors", "topic", "alerts"); r.Subject.Kind != "role" || r.Subject.Name != "sensors" {
		t.Errorf("subject %+v", r.Subject)
	}
}

// TestAccessCheckAgreesWithTheBroker: for generated users, topics and
// filters, the endpoint's read and write answers are the embedded
// broker's hook's decisions (authhook.Rights: PUBLISH with the prefix and
// topic limits, SUBSCRIBE coverage, delivery).
func TestAccessCheckAgreesWithTheBroker(t *testing.T) {
	t.Parallel()
	e := acNew(t)
	ctx := context.Background()
	sets := [][]acl.Permission{
		{acPerm("a/#", acl.OpReadWrite)},
		{acPerm("a/b", acl.OpRead), acPerm("a/+/x", acl.OpWrite)},
		{acPerm("{username}/#", acl.OpReadWrite), acPerm("b/{clientId}", acl.OpWrite)},
		{acPerm("+/b/#", acl.OpRead), acPerm("x/#", acl.OpWrite), acPerm("#", acl.OpRead)},
		{acPerm("a/{clientId}/+", acl.OpReadWrite), acPerm("b", acl.OpRead)},
	}
	levels := []string{"a", "b", "x", "c1"}
	var topics []string
	for _, l1 := range levels {
		topics = append(topics, l1)
		for _, l2 := range levels {
			topics = append(topics, l1+"/"+l2, l1+"/"+l2+"/x", l1+"/"+l2+"/a/b/c")
		}
	}
	filters := []string{"#", "+/#", "a/#", "a/+", "a/+/x", "+/b/#", "b/+", "b/c1", "a/c1/+", "$share/g/a/#"}
	compared, allowed := 0, 0
	for i, perms := range sets {
		for _, prefix := range []string{"", "a/"} {
			name := fmt.Sprintf("user%d-%d", i, len(prefix))
			r := acRole(t, e.st, "role-"+name, perms...)
			acUser(t, e.st, name, []string{r.ID}, func(u *store.User) { u.MQTTPublishPrefix = prefix })
			rights, err := e.hook.Rights(ctx, name, "c1")
			if err != nil {
				t.Fatal(err)
			}
			// The user's own name as a level, for the {username} permissions.
			own := []string{name, name + "/x", name + "/c1/d", name + "/#", name + "/+"}
			for _, topic := range slices.Concat(topics, filters, own) {
				a := e.mustCheck("username", name, "topic", topic, "clientId", "c1")
				var read, write bool
				if acl.IsFilter(topic) {
					read = rights.Subscribe(topic)
				} else {
					read = rights.Read(topic)
					_, write = rights.Publish(topic)
				}
				if a.Read.Allowed != read || a.Write.Allowed != write {
					t.Errorf("user %s (%v, prefix %q) %q: endpoint read %v write %v, broker %v %v",
						name, perms, prefix, topic, a.Read.Allowed, a.Write.Allowed, read, write)
				}
				for _, ok := range []bool{read, write} {
					compared++
					if ok {
						allowed++
					}
				}
			}
		}
	}
	t.Logf("%d decisions compared, %d allowed", compared, allowed)
	if allowed == 0 || allowed == compared {
		t.Fatalf("the table is degenerate: %d of %d decisions allowed", allowed, compared)
	}
}

// TestAccessCheckRefusesBadQueries: 400 for what the query gets wrong,
// with the API's topic validation message.
func TestAccessCheckRefusesBadQueries(t *testing.T) {
	t.Parallel()
	e := acNew(t)
	for _, c := range []struct {
		name string
		q    []string
		want string
	}{
		{"no topic", []string{"username", "admin"}, "topic is required"},
		{"an invalid filter", []string{"username", "admin", "topic", "a/b#"}, "'#' must occupy a whole level"},
		{"a topic with U+0000", []string{"username", "admin", "topic", "a\x00b"}, "topic: invalid topic name"},
		{"an http path without '/'", []string{"username", "admin", "topic", "api/users", "context", "http"}, "does not start with '/'"},
		{"both username and role", []string{"username", "admin", "role", "sensors", "topic", "a"}, "exactly one of username and role"},
		{"neither", []string{"topic", "a"}, "exactly one of username and role"},
		{"an unknown context", []string{"username", "admin", "topic", "a", "context", "ftp"}, "context must be mqtt or http"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, body := e.check(e.admin, c.q...)
			if code != http.StatusBadRequest || !strings.Contains(errorText(t, string(body)), c.want) {
				t.Errorf("%d %s, want 400 with %q", code, body, c.want)
			}
		})
	}
}

// TestAccessCheckTellsOnlyWhatTheCallerMayRead: the endpoint needs read
// on its path and on the user or role asked about; a 404 only for a
// caller who may read the users (or roles), so the endpoint is no
// existence oracle for the others.
func TestAccessCheckTellsOnlyWhatTheCallerMayRead(t *testing.T) {
	t.Parallel()
	e := acNew(t)
	acRole(t, e.st, "sensors", acPerm("a/#", acl.OpRead))
	alice := acUser(t, e.st, "alice", nil)
	caller := func(name string, paths ...string) string {
		var perms []acl.Permission
		for _, p := range paths {
			perms = append(perms, acl.Permission{Resource: p, Operation: acl.OpRead, Context: acl.ContextHTTP})
		}
		r := acRole(t, e.st, "role-"+name, perms...)
		acUser(t, e.st, name, []string{r.ID})
		return e.login(name, adminPassword)
	}
	checkOnly := caller("checker", "/api/access/check")
	usersReader := caller("usersreader", "/api/access/check", "/api/users/#")
	listOnly := caller("listonly", "/api/access/check", "/api/users", "/api/roles")
	oneUser := caller("oneuser", "/api/access/check", "/api/users/"+alice.ID)
	noCheck := caller("nocheck", "/api/users/#", "/api/roles/#")

	for _, c := range []struct {
		name, token, key, value string
		want                    int
	}{
		{"no read on the endpoint", noCheck, "username", "alice", http.StatusForbidden},
		{"a user, without read on users", checkOnly, "username", "alice", http.StatusForbidden},
		{"no such user, without read on users: the same 403", checkOnly, "username", "nobody", http.StatusForbidden},
		{"a role, without read on roles", checkOnly, "role", "sensors", http.StatusForbidden},
		{"no such role, without read on roles: the same 403", checkOnly, "role", "nope", http.StatusForbidden},
		{"a user, with read on users", usersReader, "username", "alice", http.StatusOK},
		{"no such user, with read on users", usersReader, "username", "nobody", http.StatusNotFound},
		{"a role, with read on users only", usersReader, "role", "sensors", http.StatusForbidden},
		{"a user, with read on the list but not on the user", listOnly, "username", "alice", http.StatusForbidden},
		{"no such user, with read on the list", listOnly, "username", "nobody", http.StatusNotFound},
		{"no such role, with read on the list", listOnly, "role", "nope", http.StatusNotFound},
		{"the one user the caller may read", oneUser, "username", "alice", http.StatusOK},
		{"another user", oneUser, "username", "admin", http.StatusForbidden},
		{"no such user, for the one-user caller", oneUser, "username", "nobody", http.StatusForbidden},
		{"the admin, a role", e.admin, "role", "sensors", http.StatusOK},
		{"the admin, no such role", e.admin, "role", "nope", http.StatusNotFound},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, body := e.check(c.token, c.key, c.value, "topic", "a/b")
			if code != c.want {
				t.Errorf("%d %s, want %d", code, body, c.want)
			}
		})
	}
	// The two 403s of checkOnly read alike: nothing tells an existing user
	// from a missing one.
	_, exists := e.check(checkOnly, "username", "alice", "topic", "a")
	_, missing := e.check(checkOnly, "username", "nobody", "topic", "a")
	if string(exists) != string(missing) {
		t.Errorf("403 bodies differ: %s / %s", exists, missing)
	}
}

// TestAccessCheckNeedsTheBroker: without the broker's decisions (a broker
// running without authentication) the endpoint says so instead of
// guessing.
func TestAccessCheckNeedsTheBroker(t *testing.T) {
	t.Parallel()
	a := newAPI(t, storetest.OpenBolt(t))
	code, body := a.do("GET", "/api/access/check?username=admin&topic=a", a.admin, nil)
	if code != http.StatusServiceUnavailable {
		t.Errorf("%d %s, want 503", code, body)
	}
}
