package webhook_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/audit"
	"github.com/warden-mqtt/warden/authhook"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/internal/logbuf"
	"github.com/warden-mqtt/warden/pki"
	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
	"github.com/warden-mqtt/warden/webhook"
)

// vmqFastParams keep test logins quick.
var vmqFastParams = credential.Params{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// vmqEnv is a warden hook over a fresh bbolt store, the webhook handler
// mounted on a real HTTP server as admin mounts it.
type vmqEnv struct {
	st    store.Store
	hook  *authhook.Hook
	srv   *httptest.Server
	logs  *logbuf.Buffer // the handler's and the hook's log
	trail *logbuf.Buffer // the hook's audit trail
}

// vmqAPIKey is the API key the stand-in VerneMQ API accepts.
const vmqAPIKey = "JxctXkZ1OTVnlwvguSCE9KtujacMkOLF"

// vmqAPI answers GET /api/v1/session/disconnect as VerneMQ's HTTP API
// documentation says (vmq-docs administration/http-administration.md):
// the API key as the basic-auth user, an empty password; 200 with the
// documented body; 401 otherwise. It records each disconnect's query.
type vmqAPI struct {
	srv   *httptest.Server
	mu    sync.Mutex
	kicks []string // raw queries of accepted disconnects
	bad   int      // requests refused
}

func newVMQAPI(t *testing.T) *vmqAPI {
	a := &vmqAPI{}
	body := vmqFile(t, "disconnect_answer.json")
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		a.mu.Lock()
		defer a.mu.Unlock()
		if r.Method != http.MethodGet || r.URL.Path != "/api/v1/session/disconnect" || !ok || user != vmqAPIKey || pass != "" ||
			r.URL.Query().Get("client-id") == "" {
			a.bad++
			http.Error(w, "invalid_request_error", http.StatusUnauthorized)
			return
		}
		a.kicks = append(a.kicks, r.URL.RawQuery)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(a.srv.Close)
	return a
}

// kicked returns the disconnects so far.
func (a *vmqAPI) kicked() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.kicks...)
}

// newVMQEnv starts the handler with the options tweak sets.
func newVMQEnv(t testing.TB, tweak func(*webhook.Options)) *vmqEnv {
	t.Helper()
	ctx := context.Background()
	st := storetest.OpenBolt(t)
	tokens, err := credential.NewTokens(ctx, st, "warden-test")
	if err != nil {
		t.Fatal(err)
	}
	e := &vmqEnv{st: st, logs: &logbuf.Buffer{}, trail: &logbuf.Buffer{}}
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.hook, err = authhook.New(ctx, authhook.Options{Store: st, Tokens: tokens, Logger: log, Audit: audit.New(e.trail)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.hook.Stop() })
	o := webhook.Options{Decider: e.hook, Logger: log}
	if tweak != nil {
		tweak(&o)
	}
	h, err := webhook.New(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	mux := http.NewServeMux()
	for pattern, fn := range h.Routes() {
		mux.HandleFunc(pattern, fn)
	}
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}

func vmqPerm(resource string, op acl.Operation) acl.Permission {
	return acl.Permission{Resource: resource, Operation: op, Context: acl.ContextMQTT}
}

// addUser creates a user with a password (none: a certificate user) and
// a role holding perms; edit adjusts the user before it is stored.
func (e *vmqEnv) addUser(t testing.TB, name, password string, perms []acl.Permission, edit ...func(*store.User)) store.User {
	t.Helper()
	ctx := context.Background()
	r, err := e.st.CreateRole(ctx, store.Role{Name: name + "-role", Permissions: perms})
	if err != nil {
		t.Fatal(err)
	}
	u := store.User{Username: name, Roles: []string{r.ID}, GrantTypes: []store.GrantType{{Method: store.GrantCertificate}}}
	if password != "" {
		hash, err := credential.Hash(password, vmqFastParams)
		if err != nil {
			t.Fatal(err)
		}
		u.PasswordHash, u.GrantTypes = hash, []store.GrantType{{Method: store.GrantPassword}}
	}
	for _, f := range edit {
		f(&u)
	}
	u, err = e.st.CreateUser(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// vmqFile is a file of testdata/vernemq.
func vmqFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "vernemq", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// vmqRequest is the documented request in file with the fields set
// replaced (nil: JSON null).
func vmqRequest(t testing.TB, file string, set map[string]any) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(vmqFile(t, file), &m); err != nil {
		t.Fatal(err)
	}
	for k, v := range set {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// vmqAnswer is a hook's answer as VerneMQ reads it.
type vmqAnswer struct {
	status int
	header http.Header
	body   any // the decoded JSON
	raw    string
}

// call POSTs body to path with the vernemq-hook header, as vmq_webhooks
// does.
func (e *vmqEnv) call(t testing.TB, path, hook string, body []byte) vmqAnswer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if hook != "" {
		req.Header.Set("vernemq-hook", hook)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	a := vmqAnswer{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if err := json.Unmarshal(raw, &a.body); err != nil {
		t.Fatalf("%s %s: answer %q is not JSON: %v", path, hook, raw, err)
	}
	return a
}

// vmqDoc is a documented answer, decoded.
func vmqDoc(t testing.TB, file string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(vmqFile(t, file), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// wantAnswer fails unless a is a 200 equal to want.
func wantAnswer(t *testing.T, what string, a vmqAnswer, want any) {
	t.Helper()
	if a.status != http.StatusOK || !reflect.DeepEqual(a.body, want) {
		t.Errorf("%s: %d %s, want 200 %s", what, a.status, a.raw, mustJSON(t, want))
	}
}

// wantShape fails unless got has the form of the documented answer doc:
// every object key of got is one doc has there, with a value of the same
// JSON kind; every array element of got fits some element of doc's.
func wantShape(t *testing.T, what string, got, doc any) {
	t.Helper()
	if !fits(got, doc) {
		t.Errorf("%s: answer %s does not have the documented form %s", what, mustJSON(t, got), mustJSON(t, doc))
	}
}

func fits(got, doc any) bool {
	switch g := got.(type) {
	case map[string]any:
		d, ok := doc.(map[string]any)
		if !ok {
			return false
		}
		for k, v := range g {
			dv, ok := d[k]
			if !ok || !fits(v, dv) {
				return false
			}
		}
		return true
	case []any:
		d, ok := doc.([]any)
		if !ok {
			return false
		}
		for _, v := range g {
			if !slicesAny(d, func(dv any) bool { return fits(v, dv) }) {
				return false
			}
		}
		return true
	default:
		return reflect.TypeOf(got) == reflect.TypeOf(doc)
	}
}

func slicesAny(s []any, f func(any) bool) bool {
	for _, v := range s {
		if f(v) {
			return true
		}
	}
	return false
}

func mustJSON(t testing.TB, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestVerneMQRegister: auth_on_register and auth_on_register_m5, built
// from the documented requests, admit a user's right password with the
// documented {"result":"ok"} and refuse a wrong password, an unknown and
// a suspended user and a client without credentials with the documented
// not_allowed error; never "next" (another plugin would decide), and an
// admission is never cacheable (it is where the client ID is claimed and
// the session tracked).
func TestVerneMQRegister(t *testing.T) {
	t.Parallel()
	e := newVMQEnv(t, func(o *webhook.Options) { o.CacheMaxAge = time.Minute })
	e.addUser(t, "alice", "Alice-password-1", []acl.Permission{vmqPerm("a/#", acl.OpReadWrite)})
	e.addUser(t, "off", "Off-password-1", nil, func(u *store.User) { u.Suspended = true })
	ok, notAllowed := vmqDoc(t, "answer_ok.json"), vmqDoc(t, "answer_not_allowed.json")
	for _, hook := range []string{"auth_on_register", "auth_on_register_m5"} {
		file := hook + ".json"
		cases := []struct {
			name string
			set  map[string]any
			want any
		}{
			{"right password", map[string]any{"username": "alice", "password": "Alice-password-1", "client_id": "c-" + hook}, ok},
			{"wrong password", map[string]any{"username": "alice", "password": "wrong-password"}, notAllowed},
			{"unknown user", map[string]any{"username": "nobody", "password": "Alice-password-1"}, notAllowed},
			{"suspended user", map[string]any{"username": "off", "password": "Off-password-1"}, notAllowed},
			{"no credentials", map[string]any{"username": nil, "password": nil}, notAllowed},
		}
		for _, c := range cases {
			a := e.call(t, "/api/broker/auth/register", hook, vmqRequest(t, file, c.set))
			wantAnswer(t, hook+" "+c.name, a, c.want)
			if cc := a.header.Get("Cache-Control"); cc != "" {
				t.Errorf("%s %s: Cache-Control %q on a register answer", hook, c.name, cc)
			}
		}
	}
	if !strings.Contains(e.trail.String(), "nobody") {
		t.Errorf("refused CONNECTs not audited: %q", e.trail.String())
	}
	if strings.Contains(e.logs.String(), "wrong-password") || strings.Contains(e.trail.String(), "wrong-password") {
		t.Error("a password reached the log or the audit trail")
	}
	// The suite's null credentials, as VerneMQ sends them.
	wantAnswer(t, "undefined_creds", e.call(t, "/api/broker/auth/register", "auth_on_register", vmqFile(t, "auth_on_register_undefined_creds.json")), notAllowed)
}

// TestVerneMQPublish: auth_on_publish(_m5) allow a topic the user may
// write with {"result":"ok"} (cacheable for CacheMaxAge), refuse one it
// may not with not_allowed (not cacheable), apply a publish prefix by the
// documented modifiers.topic, refuse a suspended or unknown user, and
// never log the payload.
func TestVerneMQPublish(t *testing.T) {
	t.Parallel()
	e := newVMQEnv(t, func(o *webhook.Options) { o.CacheMaxAge = 30 * time.Second })
	e.addUser(t, "alice", "Alice-password-1", []acl.Permission{vmqPerm("a/#", acl.OpReadWrite), vmqPerm("r/#", acl.OpRead)})
	e.addUser(t, "pre", "Pre-password-1", []acl.Permission{vmqPerm("tenant/{username}/#", acl.OpWrite)},
		func(u *store.User) { u.MQTTPublishPrefix = "tenant/pre/" })
	e.addUser(t, "off", "Off-password-1", []acl.Permission{vmqPerm("#", acl.OpReadWrite)}, func(u *store.User) { u.Suspended = true })
	ok, notAllowed, rewritten := vmqDoc(t, "answer_ok.json"), vmqDoc(t, "answer_not_allowed.json"), vmqDoc(t, "answer_publish_modifiers.json")
	const payload = "c2VjcmV0LXBheWxvYWQtZG8tbm90LWxvZw==" // base64, as vmq_webhooks sends it
	for _, hook := range []string{"auth_on_publish", "auth_on_publish_m5"} {
		pub := func(user any, topic string) vmqAnswer {
			return e.call(t, "/api/broker/auth/publish", hook, vmqRequest(t, hook+".json", map[string]any{"username": user, "topic": topic, "payload": payload}))
		}
		a := pub("alice", "a/b")
		wantAnswer(t, hook+" allowed", a, ok)
		if cc := a.header.Get("Cache-Control"); cc != "max-age=30" {
			t.Errorf("%s allowed: Cache-Control %q, want max-age=30", hook, cc)
		}
		a = pub("alice", "r/x")
		wantAnswer(t, hook+" read-only topic", a, notAllowed)
		if cc := a.header.Get("Cache-Control"); cc != "" {
			t.Errorf("%s refused: Cache-Control %q", hook, cc)
		}
		a = pub("pre", "x/y")
		wantAnswer(t, hook+" prefixed", a, map[string]any{"result": "ok", "modifiers": map[string]any{"topic": "tenant/pre/x/y"}})
		wantShape(t, hook+" prefixed", a.body, rewritten)
		wantAnswer(t, hook+" suspended", pub("off", "a/b"), notAllowed)
		wantAnswer(t, hook+" unknown", pub("nobody", "a/b"), notAllowed)
		wantAnswer(t, hook+" no username", pub(nil, "a/b"), notAllowed)
	}
	// Without a payload (vmq_webhooks.<name>.no_payload = on).
	body := vmqRequest(t, "auth_on_publish.json", map[string]any{"username": "alice", "topic": "a/c"})
	var m map[string]any
	_ = json.Unmarshal(body, &m)
	delete(m, "payload")
	wantAnswer(t, "no_payload", e.call(t, "/api/broker/auth/publish", "auth_on_publish", []byte(mustJSON(t, m))), ok)
	if strings.Contains(e.logs.String(), payload) {
		t.Error("a payload reached the log")
	}
}

// TestVerneMQSubscribe: auth_on_subscribe answers {"result":"ok"} when
// every filter is covered; otherwise the documented top-level topics with
// QoS 128 for a refused filter, the allowed ones keeping their QoS.
// auth_on_subscribe_m5 answers modifiers.topics with 135 for a refused
// filter, the allowed ones keeping their QoS and MQTT 5 options (which
// VerneMQ would reset if the answer left them out).
func TestVerneMQSubscribe(t *testing.T) {
	t.Parallel()
	e := newVMQEnv(t, func(o *webhook.Options) { o.CacheMaxAge = 10 * time.Second })
	e.addUser(t, "alice", "Alice-password-1", []acl.Permission{vmqPerm("a/#", acl.OpRead), vmqPerm("users/{clientId}/#", acl.OpRead)})
	ok, notAllowed := vmqDoc(t, "answer_ok.json"), vmqDoc(t, "answer_not_allowed.json")

	sub := func(hook string, user any, topics any) vmqAnswer {
		return e.call(t, "/api/broker/auth/subscribe", hook, vmqRequest(t, hook+".json", map[string]any{"username": user, "client_id": "dev1", "topics": topics}))
	}
	a := sub("auth_on_subscribe", "alice", []any{map[string]any{"topic": "a/b", "qos": 1}, map[string]any{"topic": "users/dev1/+", "qos": 2}})
	wantAnswer(t, "v3 all allowed", a, ok)
	if a.header.Get("Cache-Control") != "max-age=10" {
		t.Errorf("v3 all allowed: Cache-Control %q", a.header.Get("Cache-Control"))
	}
	// The documented request: a/b allowed, c/d refused.
	a = e.call(t, "/api/broker/auth/subscribe", "auth_on_subscribe", vmqRequest(t, "auth_on_subscribe.json", map[string]any{"username": "alice"}))
	wantAnswer(t, "v3 documented", a, map[string]any{"result": "ok", "topics": []any{
		map[string]any{"topic": "a/b", "qos": 1.0}, map[string]any{"topic": "c/d", "qos": 128.0}}})
	wantShape(t, "v3 documented", a.body, vmqDoc(t, "answer_subscribe_topics.json"))
	// # is wider than a/#: not covered.
	wantAnswer(t, "v3 wider filter", sub("auth_on_subscribe", "alice", []any{map[string]any{"topic": "#", "qos": 0}}),
		map[string]any{"result": "ok", "topics": []any{map[string]any{"topic": "#", "qos": 128.0}}})
	wantAnswer(t, "v3 unknown user", sub("auth_on_subscribe", "nobody", []any{map[string]any{"topic": "a/b", "qos": 0}}), notAllowed)

	wantAnswer(t, "v5 documented", e.call(t, "/api/broker/auth/subscribe", "auth_on_subscribe_m5",
		vmqRequest(t, "auth_on_subscribe_m5.json", map[string]any{"username": "alice"})),
		map[string]any{"result": "ok", "modifiers": map[string]any{"topics": []any{map[string]any{"topic": "test/topic", "qos": 135.0}}}})
	a = sub("auth_on_subscribe_m5", "alice", []any{
		map[string]any{"topic": "a/x", "qos": 2, "no_local": true, "rap": true, "retain_handling": "send_if_new_sub"},
		map[string]any{"topic": "users/other/#", "qos": 1, "no_local": false, "rap": false, "retain_handling": "send_retain"},
	})
	wantAnswer(t, "v5 mixed", a, map[string]any{"result": "ok", "modifiers": map[string]any{"topics": []any{
		map[string]any{"topic": "a/x", "qos": 2.0, "no_local": true, "rap": true, "retain_handling": "send_if_new_sub"},
		map[string]any{"topic": "users/other/#", "qos": 135.0}}}})
	wantShape(t, "v5 mixed", a.body, vmqDoc(t, "answer_subscribe_m5_modifiers.json"))
	wantAnswer(t, "v5 all allowed", sub("auth_on_subscribe_m5", "alice", []any{map[string]any{"topic": "users/dev1/x", "qos": 0, "no_local": false, "rap": false, "retain_handling": "send_retain"}}), ok)
}

// TestVerneMQOffline: on_client_offline and on_client_gone, as
// documented, are answered with {}.
func TestVerneMQOffline(t *testing.T) {
	t.Parallel()
	e := newVMQEnv(t, nil)
	for _, hook := range []string{"on_client_offline", "on_client_gone"} {
		wantAnswer(t, hook, e.call(t, "/api/broker/auth/offline", hook, vmqFile(t, hook+".json")), vmqDoc(t, "answer_empty.json"))
	}
}

// TestVerneMQBadInput: a body that is not one JSON object, a body over
// MaxBodyBytes, and a vernemq-hook header missing or naming another
// endpoint's hook are 400s with the reason (VerneMQ refuses on any
// non-200).
func TestVerneMQBadInput(t *testing.T) {
	t.Parallel()
	e := newVMQEnv(t, nil)
	e.addUser(t, "alice", "Alice-password-1", []acl.Permission{vmqPerm("#", acl.OpReadWrite)})
	good := vmqRequest(t, "auth_on_publish.json", map[string]any{"username": "alice"})
	huge := vmqRequest(t, "auth_on_publish.json", map[string]any{"username": "alice", "payload": strings.Repeat("A", webhook.MaxBodyBytes)})
	cases := []struct {
		name, path, hook string
		body             []byte
		reason           string
	}{
		{"malformed", "/api/broker/auth/publish", "auth_on_publish", []byte(`{"username": "alice",`), "malformed JSON"},
		{"two values", "/api/broker/auth/publish", "auth_on_publish", append(append([]byte{}, good...), good...), "more than one value"},
		{"wrong type", "/api/broker/auth/register", "auth_on_register", []byte(`{"client_id": 7}`), "malformed JSON"},
		{"oversized", "/api/broker/auth/publish", "auth_on_publish", huge, "larger than"},
		{"hook of another path", "/api/broker/auth/register", "auth_on_publish", good, "vernemq-hook"},
		{"offline hook on publish", "/api/broker/auth/publish", "on_client_gone", good, "vernemq-hook"},
		{"no hook", "/api/broker/auth/publish", "", good, "vernemq-hook"},
		{"unknown hook", "/api/broker/auth/offline", "on_deliver", good, "vernemq-hook"},
	}
	for _, c := range cases {
		a := e.call(t, c.path, c.hook, c.body)
		if a.status != http.StatusBadRequest || !strings.Contains(a.raw, c.reason) {
			t.Errorf("%s: %d %s, want 400 naming %q", c.name, a.status, a.raw, c.reason)
		}
	}
	wantAnswer(t, "good", e.call(t, "/api/broker/auth/publish", "auth_on_publish", good), vmqDoc(t, "answer_ok.json"))
}

// TestVerneMQClientCertificate: a client certificate VerneMQ forwards
// (forward_connection_opts: client_cert, base64 of the DER; PEM too)
// admits its certificate user when a CA warden trusts issued it, with
// the documented username modifier so that the publish and subscribe
// hooks name that user; the same common name from another CA counts as
// no certificate and is refused.
func TestVerneMQClientCertificate(t *testing.T) {
	t.Parallel()
	trusted, err := pki.NewCA("warden test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, err := pki.NewCA("some other CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	e := newVMQEnv(t, func(o *webhook.Options) { o.ClientCAs = trusted.Pool })
	e.addUser(t, "devcert", "", []acl.Permission{vmqPerm("dev/{username}/#", acl.OpReadWrite)})
	issue := func(ca *pki.CA, cn string) *x509.Certificate {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		cert, _, err := ca.IssueClient(&key.PublicKey, cn, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return cert
	}
	good, forged := issue(trusted, "devcert"), issue(other, "devcert")
	b64 := func(c *x509.Certificate) string { return base64.StdEncoding.EncodeToString(c.Raw) }
	pemOf := func(c *x509.Certificate) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
	}
	notAllowed := vmqDoc(t, "answer_not_allowed.json")
	named := map[string]any{"result": "ok", "modifiers": map[string]any{"username": "devcert"}}
	for _, hook := range []string{"auth_on_register", "auth_on_register_m5"} {
		file := hook + "_conn_opts.json"
		reg := func(cert string, user any) vmqAnswer {
			return e.call(t, "/api/broker/auth/register", hook, vmqRequest(t, file, map[string]any{
				"client_cert": cert, "username": user, "password": nil, "client_id": "cert-" + hook}))
		}
		a := reg(b64(good), nil)
		wantAnswer(t, hook+" trusted, no username", a, named)
		wantShape(t, hook+" trusted, no username", a.body, vmqDoc(t, "answer_register_modifiers.json"))
		wantAnswer(t, hook+" trusted, its username", reg(b64(good), "devcert"), vmqDoc(t, "answer_ok.json"))
		wantAnswer(t, hook+" trusted, PEM", reg(pemOf(good), nil), named)
		wantAnswer(t, hook+" other CA", reg(b64(forged), nil), notAllowed)
		wantAnswer(t, hook+" other CA, username", reg(b64(forged), "devcert"), notAllowed)
		wantAnswer(t, hook+" suite placeholder", reg("client cert", "devcert"), notAllowed)
	}
	// The later hooks carry the modified username.
	a := e.call(t, "/api/broker/auth/publish", "auth_on_publish", vmqRequest(t, "auth_on_publish.json", map[string]any{"username": "devcert", "topic": "dev/devcert/t"}))
	wantAnswer(t, "certificate user publishes", a, vmqDoc(t, "answer_ok.json"))
}

// TestVerneMQClientIDOwnership: on one node, a client ID connected for
// one user is refused to another (VerneMQ would hand over the session);
// the same user may take it over; once its client is offline with a
// persistent session another user gets it only starting clean (VerneMQ
// then discards the session), and anyone once it is gone. Mountpoints
// keep client IDs apart.
func TestVerneMQClientIDOwnership(t *testing.T) {
	t.Parallel()
	e := newVMQEnv(t, nil)
	e.addUser(t, "alice", "Alice-password-1", nil)
	e.addUser(t, "bob", "Bob-password-1", nil)
	ok, notAllowed := vmqDoc(t, "answer_ok.json"), vmqDoc(t, "answer_not_allowed.json")
	reg := func(user, mountpoint string, clean bool) vmqAnswer {
		pw := map[string]string{"alice": "Alice-password-1", "bob": "Bob-password-1"}[user]
		return e.call(t, "/api/broker/auth/register", "auth_on_register", vmqRequest(t, "auth_on_register.json", map[string]any{
			"username": user, "password": pw, "client_id": "shared", "mountpoint": mountpoint, "clean_session": clean}))
	}
	event := func(hook string) {
		e.call(t, "/api/broker/auth/offline", hook, vmqRequest(t, "on_client_offline.json", map[string]any{"client_id": "shared"}))
	}
	wantAnswer(t, "alice connects", reg("alice", "", false), ok)
	wantAnswer(t, "bob takes alice's connected client ID", reg("bob", "", true), notAllowed)
	wantAnswer(t, "bob on another mountpoint", reg("bob", "mp2", true), ok)
	wantAnswer(t, "alice takes over her own", reg("alice", "", false), ok)
	event("on_client_offline") // the replaced session: alice's client stays connected
	wantAnswer(t, "bob after the takeover", reg("bob", "", true), notAllowed)
	if !strings.Contains(e.trail.String(), "client ID in use by another user") {
		t.Errorf("client-ID refusal not audited with its reason: %q", e.trail.String())
	}
	event("on_client_offline") // alice's client goes; her persistent session stays
	wantAnswer(t, "bob resumes alice's offline session", reg("bob", "", false), notAllowed)
	wantAnswer(t, "bob starts clean", reg("bob", "", true), ok)
	wantAnswer(t, "alice while bob is connected", reg("alice", "", true), notAllowed)
	event("on_client_gone")
	wantAnswer(t, "alice once bob is gone", reg("alice", "", false), ok)
}

// TestVerneMQLiveRevocation: with VerneMQ's API configured, suspending a
// user disconnects its client through the documented GET
// /api/v1/session/disconnect (API key as basic-auth user, --cleanup,
// --mountpoint when there is one) within a second; another user's client
// stays; a client already gone is not disconnected; a session taken over
// by its own user stays tracked after the replaced session's gone event.
func TestVerneMQLiveRevocation(t *testing.T) {
	t.Parallel()
	api := newVMQAPI(t)
	e := newVMQEnv(t, func(o *webhook.Options) { o.VerneMQ = webhook.VerneMQAPI{URL: api.srv.URL, Key: vmqAPIKey} })
	alice := e.addUser(t, "alice", "Alice-password-1", []acl.Permission{vmqPerm("a/#", acl.OpReadWrite)})
	bob := e.addUser(t, "bob", "Bob-password-1", []acl.Permission{vmqPerm("b/#", acl.OpReadWrite)})
	carol := e.addUser(t, "carol", "Carol-password-1", nil)
	ok := vmqDoc(t, "answer_ok.json")
	reg := func(user, pw, clientID, mountpoint string) {
		t.Helper()
		wantAnswer(t, user+" connects", e.call(t, "/api/broker/auth/register", "auth_on_register_m5", vmqRequest(t, "auth_on_register_m5.json", map[string]any{
			"username": user, "password": pw, "client_id": clientID, "mountpoint": mountpoint})), ok)
	}
	gone := func(clientID string) {
		e.call(t, "/api/broker/auth/offline", "on_client_gone", vmqRequest(t, "on_client_gone.json", map[string]any{"client_id": clientID}))
	}
	reg("alice", "Alice-password-1", "alice-1", "tenant a")
	reg("alice", "Alice-password-1", "alice-2", "")
	gone("alice-2")
	reg("bob", "Bob-password-1", "bob-1", "")
	reg("bob", "Bob-password-1", "bob-1", "") // a takeover by bob himself
	gone("bob-1")                             // ... ends the replaced session only
	reg("carol", "Carol-password-1", "carol-1", "")

	suspend := func(u store.User) {
		if _, err := e.st.UpdateUser(context.Background(), u.ID, func(x *store.User) error { x.Suspended = true; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	waitKicks := func(want ...string) {
		t.Helper()
		deadline := time.Now().Add(time.Second)
		for {
			got := api.kicked()
			if len(got) >= len(want) {
				for _, w := range want {
					if !slicesContains(got, w) {
						t.Fatalf("disconnects %q, want %q", got, want)
					}
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("after 1s disconnects %q, want %q", got, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	suspend(alice)
	waitKicks("client-id=alice-1&--mountpoint=tenant+a&--cleanup")
	suspend(bob)
	waitKicks("client-id=alice-1&--mountpoint=tenant+a&--cleanup", "client-id=bob-1&--cleanup")
	time.Sleep(300 * time.Millisecond)
	if got := api.kicked(); len(got) != 2 || api.bad != 0 {
		t.Errorf("disconnects %q (refused %d): alice-2 was gone, carol unchanged", got, api.bad)
	}
	_ = carol
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// FuzzVerneMQ: whatever body VerneMQ (or anything reaching the admin
// listener) sends to a hook, the answer is a 400 or a 200 carrying one of
// the documented results, never "next", and nothing panics.
func FuzzVerneMQ(f *testing.F) {
	e := newVMQEnv(f, nil)
	e.addUser(f, "alice", "Alice-password-1", []acl.Permission{vmqPerm("a/#", acl.OpReadWrite)})
	type target struct{ path, hook, seed string }
	targets := []target{
		{"/api/broker/auth/register", "auth_on_register", "auth_on_register.json"},
		{"/api/broker/auth/register", "auth_on_register_m5", "auth_on_register_m5_conn_opts.json"},
		{"/api/broker/auth/publish", "auth_on_publish", "auth_on_publish.json"},
		{"/api/broker/auth/publish", "auth_on_publish_m5", "auth_on_publish_m5.json"},
		{"/api/broker/auth/subscribe", "auth_on_subscribe", "auth_on_subscribe.json"},
		{"/api/broker/auth/subscribe", "auth_on_subscribe_m5", "auth_on_subscribe_m5.json"},
		{"/api/broker/auth/offline", "on_client_gone", "on_client_gone.json"},
	}
	for i, tg := range targets {
		f.Add(uint8(i), vmqRequest(f, tg.seed, map[string]any{"username": "alice", "password": "Alice-password-1"}))
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		tg := targets[int(which)%len(targets)]
		a := e.call(t, tg.path, tg.hook, body)
		switch a.status {
		case http.StatusBadRequest:
			return
		case http.StatusOK:
		default:
			t.Fatalf("%s: status %d %s", tg.hook, a.status, a.raw)
		}
		m, _ := a.body.(map[string]any)
		if m == nil {
			t.Fatalf("%s: answer %s is not an object", tg.hook, a.raw)
		}
		switch r := m["result"].(type) {
		case nil:
			if tg.hook != "on_client_gone" || len(m) != 0 {
				t.Fatalf("%s: answer %s", tg.hook, a.raw)
			}
		case string:
			if r != "ok" {
				t.Fatalf("%s: result %q", tg.hook, r)
			}
		case map[string]any:
			if _, ok := r["error"].(string); !ok || len(r) != 1 {
				t.Fatalf("%s: result %s", tg.hook, a.raw)
			}
		default:
			t.Fatalf("%s: answer %s", tg.hook, a.raw)
		}
	})
}
