package webhook

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/audit"
	"github.com/warden-mqtt/warden/authhook"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/internal/logbuf"
	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

// emqxFastParams keep test logins quick.
var emqxFastParams = credential.Params{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// emqxEnv is a warden hook over a fresh bbolt store whose EMQX routes an
// HTTP server answers, as EMQX would call them; api, when set, stands in
// for EMQX's REST API.
type emqxEnv struct {
	st     store.Store
	hook   *authhook.Hook
	tokens *credential.Tokens
	trail  *logbuf.Buffer // the hook's audit trail
	logs   *logbuf.Buffer // the handler's log
	srv    *httptest.Server
	api    *emqxFakeAPI
}

// newEMQXEnv starts the hook and the webhook server; withAPI adds a fake
// EMQX REST API (Options.EMQX); tweak adjusts the Options.
func newEMQXEnv(t testing.TB, withAPI bool, tweak ...func(*Options)) *emqxEnv {
	t.Helper()
	ctx := context.Background()
	st := storetest.OpenBolt(t)
	tokens, err := credential.NewTokens(ctx, st, "warden-test")
	if err != nil {
		t.Fatal(err)
	}
	e := &emqxEnv{st: st, tokens: tokens, trail: &logbuf.Buffer{}, logs: &logbuf.Buffer{}}
	e.hook, err = authhook.New(ctx, authhook.Options{Store: st, Tokens: tokens, Logger: slog.New(slog.DiscardHandler), Audit: audit.New(e.trail)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.hook.Stop() })
	opts := Options{Decider: e.hook, Logger: slog.New(slog.NewTextHandler(e.logs, nil))}
	if withAPI {
		e.api = newEMQXFakeAPI(t)
		opts.EMQX = EMQXAPI{URL: e.api.srv.URL, Key: emqxAPIKey, Secret: emqxAPISecret}
	}
	for _, f := range tweak {
		f(&opts)
	}
	h, err := New(t.Context(), opts)
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

// addUser creates a password user with a role holding perms.
func (e *emqxEnv) addUser(t testing.TB, name, password string, perms ...acl.Permission) store.User {
	t.Helper()
	hash, err := credential.Hash(password, emqxFastParams)
	if err != nil {
		t.Fatal(err)
	}
	return e.createUser(t, store.User{Username: name, PasswordHash: hash,
		GrantTypes: []store.GrantType{{Method: store.GrantPassword}}}, perms...)
}

// createUser stores u with one more role, named after it, holding perms.
func (e *emqxEnv) createUser(t testing.TB, u store.User, perms ...acl.Permission) store.User {
	t.Helper()
	ctx := context.Background()
	r, err := e.st.CreateRole(ctx, store.Role{Name: u.Username + "-role", Permissions: perms})
	if err == nil {
		u.Roles = append(u.Roles, r.ID)
		u, err = e.st.CreateUser(ctx, u)
	}
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// updateUser changes a user as an administrator would.
func (e *emqxEnv) updateUser(t *testing.T, id string, f func(*store.User)) {
	t.Helper()
	if _, err := e.st.UpdateUser(context.Background(), id, func(u *store.User) error { f(u); return nil }); err != nil {
		t.Fatal(err)
	}
}

// emqxAnswer is a webhook answer as EMQX receives it.
type emqxAnswer struct {
	status int
	header http.Header
	raw    string
	body   map[string]any
}

// post sends body (a string, or a value marshalled as JSON) to path as
// EMQX does (content-type application/json).
func (e *emqxEnv) post(t *testing.T, path string, body any) emqxAnswer {
	t.Helper()
	s, ok := body.(string)
	if !ok {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		s = string(b)
	}
	resp, err := http.Post(e.srv.URL+path, "application/json", strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	a := emqxAnswer{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if err := json.Unmarshal(raw, &a.body); err != nil {
		t.Fatalf("POST %s: answer %d is not a JSON object: %q", path, resp.StatusCode, raw)
	}
	return a
}

// authn asks the authenticator for a password attempt.
func (e *emqxEnv) authn(t *testing.T, user, password, clientID string) emqxAnswer {
	t.Helper()
	return e.post(t, "/api/broker/emqx/authn", map[string]string{
		"username": user, "password": password, "clientid": clientID, "peerhost": "192.0.2.7", "cert_pem": ""})
}

// authz asks the authorizer about one publish or subscribe.
func (e *emqxEnv) authz(t *testing.T, user, clientID, action, topic string) emqxAnswer {
	t.Helper()
	return e.post(t, "/api/broker/emqx/authz", map[string]string{
		"username": user, "clientid": clientID, "action": action, "topic": topic})
}

// readFixture is a file of testdata/emqx.
func readFixture(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/emqx/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// emqxPerm is an mqtt permission.
func emqxPerm(resource string, op acl.Operation) acl.Permission {
	return acl.Permission{Resource: resource, Operation: op, Context: acl.ContextMQTT}
}

// The fake API's key and secret.
const (
	emqxAPIKey    = "warden-kicker"
	emqxAPISecret = "api-secret-for-tests"
)

// emqxFakeAPI answers DELETE /api/v5/clients/{clientid} as EMQX 5's REST
// API documents it (testdata/emqx/README.md): 401 without the API key as
// basic auth, 204 for a connected client, which it then disconnects, 404
// with the documented body for any other.
type emqxFakeAPI struct {
	srv     *httptest.Server
	kicked  chan string // client IDs, as EMQX decoded them from the path
	mu      sync.Mutex
	clients map[string]bool // connected client IDs
}

func newEMQXFakeAPI(t testing.TB) *emqxFakeAPI {
	t.Helper()
	a := &emqxFakeAPI{kicked: make(chan string, 64), clients: map[string]bool{}}
	notFound := readFixture(t, "api_kick_not_found.json")
	mux := http.NewServeMux()
	mux.HandleFunc("DELETE /api/v5/clients/{clientid}", func(w http.ResponseWriter, r *http.Request) {
		if k, s, ok := r.BasicAuth(); !ok || k != emqxAPIKey || s != emqxAPISecret {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		id := r.PathValue("clientid")
		a.mu.Lock()
		connected := a.clients[id]
		delete(a.clients, id)
		a.mu.Unlock()
		a.kicked <- id
		if !connected {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, notFound)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	a.srv = httptest.NewServer(mux)
	t.Cleanup(a.srv.Close)
	return a
}

// connect marks clientID connected.
func (a *emqxFakeAPI) connect(clientID string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.clients[clientID] = true
}

// expectKick waits up to d for the API to receive a DELETE for clientID.
func (a *emqxFakeAPI) expectKick(t *testing.T, clientID string, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case id := <-a.kicked:
			if id == clientID {
				return
			}
		case <-deadline:
			t.Fatalf("EMQX's API received no DELETE /api/v5/clients/%s within %v", clientID, d)
		}
	}
}

// kicks collects the client IDs of DELETEs until n distinct ones came
// or d passed.
func (a *emqxFakeAPI) kicks(n int, d time.Duration) map[string]bool {
	got := map[string]bool{}
	deadline := time.After(d)
	for len(got) < n {
		select {
		case id := <-a.kicked:
			got[id] = true
		case <-deadline:
			return got
		}
	}
	return got
}

// expectNoKick checks that the API receives no DELETE within d.
func (a *emqxFakeAPI) expectNoKick(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case id := <-a.kicked:
		t.Fatalf("EMQX's API received DELETE /api/v5/clients/%s", id)
	case <-time.After(d):
	}
}
