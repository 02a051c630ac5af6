package webhook

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/internal/poll"
	"github.com/warden-mqtt/warden/pki"
	"github.com/warden-mqtt/warden/store"
)

// jsonKind names a decoded JSON value's type.
func jsonKind(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case bool:
		return "bool"
	case float64:
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return "null"
}

// checkDocumentedShape fails unless every field of got is a field of the
// documented example, of the same JSON type (rules of the acl list too).
func checkDocumentedShape(t *testing.T, got, doc map[string]any) {
	t.Helper()
	for k, v := range got {
		dv, ok := doc[k]
		if !ok {
			t.Errorf("answer field %q is not in EMQX's documented answer", k)
			continue
		}
		if jsonKind(v) != jsonKind(dv) {
			t.Errorf("answer field %q is a %s, EMQX documents a %s", k, jsonKind(v), jsonKind(dv))
		}
	}
	rules, _ := got["acl"].([]any)
	docRule := doc["acl"].([]any)[1].(map[string]any)
	for _, r := range rules {
		checkDocumentedShape(t, r.(map[string]any), docRule)
	}
}

// TestEMQXAuthnContract: the documented authenticator request (the
// README's template, rendered) of a user with the right password gets 200
// {"result":"allow","is_superuser":false}, JSON, cacheable, with only
// documented fields of documented types; no acl without EMQX's API (warden
// could not disconnect a client whose rules went stale) and no expire_at
// for a password.
func TestEMQXAuthnContract(t *testing.T) {
	t.Parallel()
	e := newEMQXEnv(t, false, func(o *Options) { o.CacheMaxAge = 30 * time.Second })
	e.addUser(t, "emqx_u", "public", emqxPerm("t/#", acl.OpReadWrite))
	var doc map[string]any
	if err := json.Unmarshal([]byte(readFixture(t, "authn_response_documented.json")), &doc); err != nil {
		t.Fatal(err)
	}
	a := e.post(t, "/api/broker/emqx/authn", readFixture(t, "authn_request.json"))
	if a.status != 200 || a.body["result"] != "allow" || a.body["is_superuser"] != false {
		t.Fatalf("answer %d %s, want 200 allow, not superuser", a.status, a.raw)
	}
	if ct := a.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("content-type %q: EMQX parses only application/json", ct)
	}
	if cc := a.header.Get("Cache-Control"); cc != "max-age=30" {
		t.Errorf("cache-control %q, want max-age=30", cc)
	}
	for _, k := range []string{"acl", "expire_at"} {
		if _, ok := a.body[k]; ok {
			t.Errorf("password login without EMQX's API answered %q: %s", k, a.raw)
		}
	}
	checkDocumentedShape(t, a.body, doc)
	if strings.Contains(e.trail.String(), `"public"`) || strings.Contains(e.logs.String(), "public") {
		t.Error("the password reached the audit trail or the log")
	}
}

// TestEMQXAuthnDeny: a wrong password, an unknown user, a suspended user
// and a login without a password are denied with 200 {"result":"deny"}
// (EMQX stops its chain there; a non-200 would be a backend failure), not
// cacheable, and audited.
func TestEMQXAuthnDeny(t *testing.T) {
	t.Parallel()
	e := newEMQXEnv(t, false, func(o *Options) { o.CacheMaxAge = 30 * time.Second })
	e.addUser(t, "dev", "Dev-password-1", emqxPerm("t/#", acl.OpReadWrite))
	susp := e.addUser(t, "susp", "Susp-password-1", emqxPerm("t/#", acl.OpReadWrite))
	e.updateUser(t, susp.ID, func(u *store.User) { u.Suspended = true })
	for _, c := range []struct{ name, user, password string }{
		{"wrong password", "dev", "Wrong-password-1"},
		{"unknown user", "nobody", "Whatever-password-1"},
		{"suspended", "susp", "Susp-password-1"},
		{"no password", "dev", ""},
	} {
		a := e.authn(t, c.user, c.password, "c-"+c.user)
		if a.status != 200 || !reflect.DeepEqual(a.body, map[string]any{"result": "deny"}) {
			t.Errorf("%s: answer %d %s, want 200 {\"result\":\"deny\"}", c.name, a.status, a.raw)
		}
		if cc := a.header.Get("Cache-Control"); cc != "" {
			t.Errorf("%s: a denial is cacheable (%q)", c.name, cc)
		}
	}
	poll.Until(t, 5*time.Second, "the refusals audited", func() bool {
		tr := e.trail.String()
		return strings.Count(tr, "c-dev") >= 2 && strings.Contains(tr, "c-nobody") && strings.Contains(tr, "c-susp")
	})
	if strings.Contains(e.trail.String(), "Wrong-password-1") || strings.Contains(e.logs.String(), "Wrong-password-1") {
		t.Error("a password reached the audit trail or the log")
	}
}

// TestEMQXAuthnPrefixRefused: a user with a publish prefix, which EMQX
// cannot apply, is denied at authentication with the reason in the audit
// trail, never admitted to publish unprefixed.
func TestEMQXAuthnPrefixRefused(t *testing.T) {
	t.Parallel()
	e := newEMQXEnv(t, true)
	u := e.addUser(t, "pre", "Pre-password-1", emqxPerm("plant1/#", acl.OpReadWrite))
	e.updateUser(t, u.ID, func(u *store.User) { u.MQTTPublishPrefix = "plant1/" })
	a := e.authn(t, "pre", "Pre-password-1", "c-pre")
	if a.status != 200 || a.body["result"] != "deny" {
		t.Fatalf("prefix user: answer %d %s, want 200 deny", a.status, a.raw)
	}
	poll.Until(t, 5*time.Second, "the refusal audited with its reason", func() bool {
		return strings.Contains(e.trail.String(), reasonEMQXPrefix)
	})
	// Its publishes are denied too, should it be connected (a prefix set
	// after it was admitted).
	if a := e.authz(t, "pre", "c-pre", "publish", "plant1/x"); a.body["result"] != "deny" {
		t.Errorf("publish of a prefix user: %s, want deny", a.raw)
	}
}

// TestEMQXAuthnLoginToken: a login token as the password gives expire_at,
// the token's expiry in Unix seconds (EMQX then disconnects the client and
// ends its acl); with EMQX's API the answer carries the acl list.
func TestEMQXAuthnLoginToken(t *testing.T) {
	t.Parallel()
	e := newEMQXEnv(t, true)
	u := e.addUser(t, "dev", "Dev-password-1", emqxPerm("t/#", acl.OpReadWrite))
	tok, st, err := e.tokens.Issue(context.Background(), u, credential.KindLogin, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	a := e.authn(t, "dev", tok, "c-dev")
	if a.status != 200 || a.body["result"] != "allow" {
		t.Fatalf("login token: answer %d %s, want allow", a.status, a.raw)
	}
	if got, want := a.body["expire_at"], float64(st.ExpiresAt.Unix()); got != want {
		t.Errorf("expire_at %v, want the token's expiry %v", got, want)
	}
	want := []any{map[string]any{"permission": "allow", "action": "all", "topic": "t/#"}}
	if !reflect.DeepEqual(a.body["acl"], want) {
		t.Errorf("acl %v, want %v", a.body["acl"], want)
	}
	if strings.Contains(e.logs.String(), tok) || strings.Contains(e.trail.String(), tok) {
		t.Error("the token reached the log or the audit trail")
	}
}

// TestEMQXAuthnACL: the acl list of a user with placeholders and read-only,
// write-only and readWrite permissions: placeholders resolved for the
// client, write → publish, read → subscribe, readWrite → all; filters EMQX
// would match more widely for a subscription (a last '+', "+/#") are left
// to the authorizer, and so is a placeholder acl does not bind.
func TestEMQXAuthnACL(t *testing.T) {
	t.Parallel()
	e := newEMQXEnv(t, true)
	e.addUser(t, "dev", "Dev-password-1",
		emqxPerm("{username}/{clientId}/#", acl.OpReadWrite),
		emqxPerm("cmd/{clientId}", acl.OpRead),
		emqxPerm("cmd/+", acl.OpWrite),
		emqxPerm("cmd/dev-7", acl.OpWrite), // with the read above: one rule, all
		emqxPerm("telemetry/{username}", acl.OpWrite),
		emqxPerm("status/+", acl.OpReadWrite),
		emqxPerm("fleet/+/#", acl.OpRead),
		emqxPerm("{clientId}/inbox", acl.OpRead),
		emqxPerm("eq x", acl.OpWrite),
		emqxPerm("lit/${clientid}", acl.OpWrite),
		emqxPerm("broadcast/#", acl.OpRead),
	)
	rule := func(action, topic string) any {
		return map[string]any{"permission": "allow", "action": action, "topic": topic}
	}
	a := e.authn(t, "dev", "Dev-password-1", "dev-7")
	want := []any{
		rule("subscribe", "broadcast/#"),
		rule("publish", "cmd/+"),
		rule("all", "cmd/dev-7"),
		rule("subscribe", "dev-7/inbox"),
		rule("all", "dev/dev-7/#"),
		rule("publish", "status/+"),
		rule("publish", "telemetry/dev"),
	}
	if !reflect.DeepEqual(a.body["acl"], want) {
		got, _ := json.MarshalIndent(a.body["acl"], "", " ")
		t.Errorf("acl:\n%s\nwant %v", got, want)
	}
	// A client ID starting with '$' binds no leading placeholder (acl's
	// rule): "{clientId}/inbox" gives no rule, the others still resolve.
	a = e.authn(t, "dev", "Dev-password-1", "$dev")
	topics := map[string]string{}
	for _, r := range a.body["acl"].([]any) {
		topics[r.(map[string]any)["topic"].(string)] = r.(map[string]any)["action"].(string)
	}
	if _, ok := topics["$dev/inbox"]; ok || topics["dev/$dev/#"] != "all" || topics["cmd/$dev"] != "subscribe" {
		t.Errorf("acl of client $dev: %v, want dev/$dev/# and cmd/$dev but no $dev/inbox", topics)
	}
	// What the list leaves out, the authorizer decides as warden does.
	for _, c := range []struct {
		action, topic, want string
	}{
		{"subscribe", "status/+", "allow"},
		{"subscribe", "status/#", "deny"},
		{"subscribe", "fleet/a/b", "allow"},
		{"subscribe", "fleet/#", "deny"},
		{"publish", "eq x", "allow"},
		{"publish", "lit/${clientid}", "allow"},
		{"publish", "lit/dev-7", "deny"},
	} {
		if a := e.authz(t, "dev", "dev-7", c.action, c.topic); a.body["result"] != c.want {
			t.Errorf("%s %q: %s, want %s", c.action, c.topic, a.raw, c.want)
		}
	}
}

// TestEMQXAuthz: the authorizer's answers: publish needs write, subscribe
// needs a read permission covering the whole filter (warden's coverage
// rule), shared subscriptions are decided on their filter; unknown and
// suspended users are denied; allow is cacheable, deny is not.
func TestEMQXAuthz(t *testing.T) {
	t.Parallel()
	e := newEMQXEnv(t, false, func(o *Options) { o.CacheMaxAge = 10 * time.Second })
	e.addUser(t, "dev", "Dev-password-1",
		emqxPerm("telemetry/{clientId}/#", acl.OpWrite),
		emqxPerm("cmd/+", acl.OpRead),
		emqxPerm("all/#", acl.OpReadWrite))
	susp := e.addUser(t, "susp", "Susp-password-1", emqxPerm("#", acl.OpReadWrite))
	e.updateUser(t, susp.ID, func(u *store.User) { u.Suspended = true })
	for _, c := range []struct {
		user, client, action, topic, want string
	}{
		{"dev", "c1", "publish", "telemetry/c1/temp", "allow"},
		{"dev", "c1", "publish", "telemetry/c2/temp", "deny"},
		{"dev", "c1", "subscribe", "telemetry/c1/#", "deny"},
		{"dev", "c1", "subscribe", "cmd/+", "allow"},
		{"dev", "c1", "subscribe", "cmd/reboot", "allow"},
		{"dev", "c1", "subscribe", "cmd/#", "deny"},
		{"dev", "c1", "publish", "cmd/reboot", "deny"},
		{"dev", "c1", "subscribe", "all/#", "allow"},
		{"dev", "c1", "subscribe", "$share/g/all/x", "allow"},
		{"dev", "c1", "subscribe", "#", "deny"},
		{"dev", "c1", "publish", "all/x", "allow"},
		{"nobody", "c9", "publish", "all/x", "deny"},
		{"susp", "c8", "subscribe", "x", "deny"},
	} {
		a := e.authz(t, c.user, c.client, c.action, c.topic)
		if a.status != 200 || !reflect.DeepEqual(a.body, map[string]any{"result": c.want}) {
			t.Errorf("%s/%s %s %q: %d %s, want 200 %s", c.user, c.client, c.action, c.topic, a.status, a.raw, c.want)
			continue
		}
		cc := a.header.Get("Cache-Control")
		if (c.want == "allow") != (cc == "max-age=10") {
			t.Errorf("%s %q: %s answered with cache-control %q", c.action, c.topic, c.want, cc)
		}
	}
	// The documented request, and the documented answers' shape.
	e.addUser(t, "iamuser", "Iam-password-1", emqxPerm("foo/bar", acl.OpWrite))
	a := e.post(t, "/api/broker/emqx/authz", readFixture(t, "authz_request.json"))
	var want map[string]any
	if err := json.Unmarshal([]byte(readFixture(t, "authz_response_allow.json")), &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a.body, want) {
		t.Errorf("documented request: %s, want %v", a.raw, want)
	}
}

// TestEMQXBadInput: what EMQX would never send with the README's
// templates is a 400 with the reason: malformed or oversized JSON,
// missing fields, an unknown action, a certificate that is not one.
func TestEMQXBadInput(t *testing.T) {
	t.Parallel()
	e := newEMQXEnv(t, true)
	big := `{"username":"` + strings.Repeat("a", MaxBodyBytes) + `"}`
	for _, c := range []struct{ name, path, body, reason string }{
		{"authn malformed", "/api/broker/emqx/authn", `{"username":`, "malformed JSON"},
		{"authn two values", "/api/broker/emqx/authn", `{"clientid":"a"}{}`, "more than one value"},
		{"authn oversized", "/api/broker/emqx/authn", big, "larger than"},
		{"authn no clientid", "/api/broker/emqx/authn", `{"username":"u","password":"p"}`, `"clientid" missing`},
		{"authn bad cert", "/api/broker/emqx/authn", `{"clientid":"c","cert_pem":"%%%"}`, "neither base64 nor PEM"},
		{"authn cert not x509", "/api/broker/emqx/authn", `{"clientid":"c","cert_pem":"aGVsbG8="}`, `"cert_pem"`},
		{"authz malformed", "/api/broker/emqx/authz", `[1,2`, "malformed JSON"},
		{"authz oversized", "/api/broker/emqx/authz", big, "larger than"},
		{"authz no topic", "/api/broker/emqx/authz", `{"username":"u","clientid":"c","action":"publish"}`, `"topic" missing`},
		{"authz no username", "/api/broker/emqx/authz", `{"clientid":"c","action":"publish","topic":"t"}`, `"username" missing`},
		{"authz bad action", "/api/broker/emqx/authz", `{"username":"u","clientid":"c","action":"all","topic":"t"}`, `"action" "all"`},
		{"authz empty topic", "/api/broker/emqx/authz", `{"username":"u","clientid":"c","action":"publish","topic":""}`, `"topic" is empty`},
	} {
		a := e.post(t, c.path, c.body)
		if a.status != 400 || !strings.Contains(fmt.Sprint(a.body["error"]), c.reason) {
			t.Errorf("%s: %d %.200s, want 400 naming %q", c.name, a.status, a.raw, c.reason)
		}
	}
}

// TestEMQXClientCertificate: a certificate EMQX forwards (${cert_pem},
// base64 DER) admits a certificate user when it chains to warden's trusted
// CAs; one from another CA, or any when warden trusts none, is ignored and
// the attempt, without a password, denied.
func TestEMQXClientCertificate(t *testing.T) {
	t.Parallel()
	trusted, err := pki.NewCA("warden test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, err := pki.NewCA("another CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(ca *pki.CA, cn string) string {
		key, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		cert, _, err := ca.IssueClient(&key.PublicKey, cn, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return base64.StdEncoding.EncodeToString(cert.Raw)
	}
	withCAs := newEMQXEnv(t, false, func(o *Options) { o.ClientCAs = trusted.Pool })
	noCAs := newEMQXEnv(t, false)
	for _, e := range []*emqxEnv{withCAs, noCAs} {
		e.createUser(t, store.User{Username: "devcert", GrantTypes: []store.GrantType{{Method: store.GrantCertificate}}},
			emqxPerm("devcert/#", acl.OpReadWrite))
	}
	good := issue(trusted, "devcert")
	pemGood := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: mustB64(t, good)}))
	for _, c := range []struct {
		name string
		e    *emqxEnv
		cert string
		want string
	}{
		{"trusted, base64 DER", withCAs, good, "allow"},
		{"trusted, PEM", withCAs, pemGood, "allow"},
		{"another CA", withCAs, issue(other, "devcert"), "deny"},
		{"warden trusts no CA", noCAs, good, "deny"},
	} {
		a := c.e.post(t, "/api/broker/emqx/authn", map[string]string{"username": "", "clientid": "cert-1", "cert_pem": c.cert})
		if a.status != 200 || a.body["result"] != c.want {
			t.Errorf("%s: %d %s, want %s", c.name, a.status, a.raw, c.want)
		}
	}
}

func mustB64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// emqxTopicMatch is EMQX's emqx_topic:match(Name, Filter), Name being a
// topic or, for a SUBSCRIBE, the subscribed filter taken word by word
// (emqx/emqx apps/emqx/src/emqx_topic.erl, match_words/match_tokens): a
// filter's '+' matches any one word, its '#' the rest (also none), and a
// leading wildcard no '$' word.
func emqxTopicMatch(name, filter string) bool {
	n, f := strings.Split(name, "/"), strings.Split(filter, "/")
	if strings.HasPrefix(n[0], "$") && (f[0] == "+" || f[0] == "#") {
		return false
	}
	for i, w := range f {
		if w == "#" {
			return true
		}
		if i >= len(n) || (w != "+" && w != n[i]) {
			return false
		}
	}
	return len(n) == len(f)
}

// TestEMQXDecisionTable: for generated users, permissions, client IDs,
// topics and filters, what an EMQX client may do, decided as EMQX decides
// it (the acl rules of the authn answer first, matched as emqx_authz_rule
// does; then the HTTP authorizer), equals what authhook.Rights (the
// embedded broker's decision) allows.
func TestEMQXDecisionTable(t *testing.T) {
	t.Parallel()
	e := newEMQXEnv(t, true)
	resources := []string{"a/#", "a/+", "a/b", "+/x", "#", "+/#", "a/+/#", "a/+/c", "{username}/#",
		"dev/{clientId}", "{clientId}/+", "{clientId}/#", "$SYS/#", "/+", "/#", "a//b", "+"}
	ops := []acl.Operation{acl.OpRead, acl.OpWrite, acl.OpReadWrite}
	topics := []string{"a", "a/b", "a/c", "a/b/c", "x/x", "q/x", "$SYS/x", "u1/t", "u2/t", "dev/c1", "dev/$c",
		"c1/z", "$c/z", "/", "/a", "/a/b", "a//b", "z"}
	filters := append(slices.Clone(topics), "a/#", "a/+", "#", "+/#", "+", "+/x", "$SYS/#", "u1/#", "c1/+",
		"c1/#", "$c/#", "/#", "/+", "a/+/#", "a/+/c", "+/+", "$share/g/a/#", "$share/g/a/b")
	rng := rand.New(rand.NewPCG(18, 5))
	for i := range 32 {
		name := fmt.Sprintf("u%d", i)
		var perms []acl.Permission
		if i < len(resources) { // each resource once for sure, readWrite
			perms = append(perms, emqxPerm(resources[i], acl.OpReadWrite))
		}
		for range rng.IntN(3) {
			perms = append(perms, emqxPerm(resources[rng.IntN(len(resources))], ops[rng.IntN(len(ops))]))
		}
		e.addUser(t, name, "Table-password-1", perms...)
		for _, client := range []string{"c1", "$c"} {
			a := e.authn(t, name, "Table-password-1", client)
			if a.body["result"] != "allow" {
				t.Fatalf("%s/%s not admitted: %s", name, client, a.raw)
			}
			var rules []emqxRule
			raw, _ := json.Marshal(a.body["acl"])
			_ = json.Unmarshal(raw, &rules)
			rights, err := e.hook.Rights(context.Background(), name, client)
			if err != nil {
				t.Fatal(err)
			}
			decide := func(action, topic string) bool {
				real := topic
				if rest, ok := strings.CutPrefix(topic, "$share/"); ok && action == "subscribe" {
					_, real, _ = strings.Cut(rest, "/") // EMQX authorizes the real filter
				}
				for _, r := range rules {
					if (r.Action == action || r.Action == "all") && emqxTopicMatch(real, r.Topic) {
						return true
					}
				}
				return e.authz(t, name, client, action, real).body["result"] == "allow"
			}
			for _, topic := range topics {
				_, want := rights.Publish(topic)
				if got := decide("publish", topic); got != want {
					t.Errorf("%s/%s %v: publish %q: EMQX %v, warden %v (acl %v)", name, client, perms, topic, got, want, rules)
				}
			}
			for _, f := range filters {
				want := rights.Subscribe(f)
				if got := decide("subscribe", f); got != want {
					t.Errorf("%s/%s %v: subscribe %q: EMQX %v, warden %v (acl %v)", name, client, perms, f, got, want, rules)
				}
			}
		}
	}
}

// TestEMQXLiveRevocation: with EMQX's API configured, suspending a user
// makes warden call DELETE /api/v5/clients/{clientid} (basic auth, the
// documented 204) for each client it admitted for that user, within a
// second; a permission change does too; a client EMQX no longer knows
// (404) is forgotten, not called again.
func TestEMQXLiveRevocation(t *testing.T) {
	t.Parallel()
	e := newEMQXEnv(t, true)
	dev := e.addUser(t, "dev", "Dev-password-1", emqxPerm("t/#", acl.OpReadWrite))
	ops := e.addUser(t, "ops", "Ops-password-1", emqxPerm("o/#", acl.OpReadWrite))
	for _, c := range []struct{ user, pw, client string }{
		{"dev", "Dev-password-1", "dev/1 ü"}, {"ops", "Ops-password-1", "ops-1"}, {"ops", "Ops-password-1", "ops-gone"},
	} {
		if a := e.authn(t, c.user, c.pw, c.client); a.body["result"] != "allow" {
			t.Fatalf("%s not admitted: %s", c.client, a.raw)
		}
	}
	e.api.connect("dev/1 ü")
	e.api.connect("ops-1") // ops-gone disconnected meanwhile: EMQX answers 404

	e.updateUser(t, dev.ID, func(u *store.User) { u.Suspended = true })
	e.api.expectKick(t, "dev/1 ü", time.Second)

	role := ops.Roles[0]
	if _, err := e.st.UpdateRole(context.Background(), role, func(r *store.Role) error {
		r.Permissions = []acl.Permission{emqxPerm("o/read-only/#", acl.OpRead)}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := e.api.kicks(2, time.Second); !got["ops-1"] || !got["ops-gone"] {
		t.Fatalf("within a second of the role change, DELETEs for %v, want ops-1 and ops-gone", got)
	}
	// Both are forgotten: another change calls nobody.
	e.updateUser(t, ops.ID, func(u *store.User) { u.Suspended = true })
	e.api.expectNoKick(t, 500*time.Millisecond)
}

// TestEMQXPrefixSetLaterKicks: a publish prefix given to a connected
// user disconnects its clients: the acl rules EMQX holds for them would
// go on allowing unprefixed publishes.
func TestEMQXPrefixSetLaterKicks(t *testing.T) {
	t.Parallel()
	e := newEMQXEnv(t, true)
	dev := e.addUser(t, "dev", "Dev-password-1", emqxPerm("t/#", acl.OpReadWrite))
	if a := e.authn(t, "dev", "Dev-password-1", "dev-1"); a.body["result"] != "allow" {
		t.Fatalf("not admitted: %s", a.raw)
	}
	e.api.connect("dev-1")
	e.updateUser(t, dev.ID, func(u *store.User) { u.MQTTPublishPrefix = "t/" })
	e.api.expectKick(t, "dev-1", time.Second)
}

// TestEMQXTrackerBounded: EMQX never says a client left; beyond
// MaxTracked sessions the oldest is forgotten, with a warning, so the
// tracker stays bounded.
func TestEMQXTrackerBounded(t *testing.T) {
	t.Parallel()
	e := newEMQXEnv(t, true, func(o *Options) { o.EMQX.MaxTracked = 2 })
	u := e.addUser(t, "dev", "Dev-password-1", emqxPerm("t/#", acl.OpReadWrite))
	for _, c := range []string{"c1", "c2", "c3", "c2"} {
		e.api.connect(c)
		if a := e.authn(t, "dev", "Dev-password-1", c); a.body["result"] != "allow" {
			t.Fatalf("%s not admitted: %s", c, a.raw)
		}
	}
	if !strings.Contains(e.logs.String(), "emqx session tracker full") || !strings.Contains(e.logs.String(), "client=c1") {
		t.Errorf("no warning naming the forgotten session c1:\n%s", e.logs.String())
	}
	e.updateUser(t, u.ID, func(u *store.User) { u.Suspended = true })
	if got := e.api.kicks(2, time.Second); !got["c2"] || !got["c3"] {
		t.Errorf("DELETEs %v, want c2 and c3", got)
	}
	e.api.expectNoKick(t, 300*time.Millisecond)
}

// TestEMQXKickRefusedKeepsSession: an API that refuses the key (401) does
// not disconnect the client; warden logs it and keeps the session, to try
// again at the next change.
func TestEMQXKickRefusedKeepsSession(t *testing.T) {
	t.Parallel()
	e := newEMQXEnv(t, true, func(o *Options) { o.EMQX.Secret = "wrong" })
	u := e.addUser(t, "dev", "Dev-password-1", emqxPerm("t/#", acl.OpReadWrite))
	e.api.connect("c1")
	e.authn(t, "dev", "Dev-password-1", "c1")
	e.updateUser(t, u.ID, func(u *store.User) { u.Suspended = true })
	poll.Until(t, 2*time.Second, "the failed kick logged", func() bool {
		return strings.Contains(e.logs.String(), "emqx session not disconnected") && strings.Contains(e.logs.String(), "401")
	})
	if strings.Contains(e.logs.String(), "wrong") {
		t.Error("the API secret reached the log")
	}
}

// emqxFuzz feeds arbitrary bodies to one EMQX route: whatever the bytes,
// the answer is 200 with a result EMQX knows, or 400 with the reason
// (never a panic, never another status).
func emqxFuzz(f *testing.F, path string, seeds ...string) {
	e := newEMQXEnv(f, false)
	e.addUser(f, "emqx_u", "public", emqxPerm("t/#", acl.OpReadWrite), emqxPerm("{clientId}/+", acl.OpRead))
	for _, s := range seeds {
		f.Add(s)
	}
	h := e.srv.Config.Handler
	f.Fuzz(func(t *testing.T, body string) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, path, strings.NewReader(body)))
		var ans map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &ans); err != nil {
			t.Fatalf("answer %d is not JSON: %q", w.Code, w.Body)
		}
		switch w.Code {
		case http.StatusOK:
			if r := ans["result"]; r != "allow" && r != "deny" {
				t.Fatalf("200 with result %v", r)
			}
		case http.StatusBadRequest:
			if ans["error"] == "" || ans["error"] == nil {
				t.Fatal("400 without a reason")
			}
		default:
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
	})
}

// FuzzEMQXAuthn fuzzes the authenticator's request parsing.
func FuzzEMQXAuthn(f *testing.F) {
	emqxFuzz(f, "/api/broker/emqx/authn", readFixture(f, "authn_request.json"),
		`{"username":"emqx_u","password":"public","clientid":"$x","cert_pem":"aGVsbG8="}`, `{"clientid":null}`, `[]`)
}

// FuzzEMQXAuthz fuzzes the authorizer's request parsing.
func FuzzEMQXAuthz(f *testing.F) {
	emqxFuzz(f, "/api/broker/emqx/authz", readFixture(f, "authz_request.json"),
		`{"username":"emqx_u","clientid":"c","action":"subscribe","topic":"$share/g/c/+"}`,
		`{"username":"emqx_u","clientid":"c","action":"publish","topic":"t/\u0000"}`, `{"topic":1}`)
}
