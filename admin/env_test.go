package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/admin"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

// fastParams keep test logins quick.
var fastParams = credential.Params{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

const adminPassword = "admin-password-1"

// api is a running admin server on a free port with an admin logged in.
type api struct {
	t      testing.TB
	url    string
	st     store.Store
	srv    *admin.Server
	tokens *credential.Tokens
	admin  string // admin bearer token
}

// backends runs fn once per store implementation.
func backends(t *testing.T, fn func(t *testing.T, a *api)) {
	t.Run("bolt", func(t *testing.T) { fn(t, newAPI(t, storetest.OpenBolt(t))) })
	t.Run("redis", func(t *testing.T) { fn(t, newAPI(t, storetest.OpenRedis(t))) })
}

// newAPI seeds the built-in roles and the admin, starts the server and
// logs the admin in. opts adjust the server's options.
func newAPI(t testing.TB, st store.Store, opts ...func(*admin.Options)) *api {
	t.Helper()
	ctx := context.Background()
	tokens, err := credential.NewTokens(ctx, st, "warden-test")
	if err != nil {
		t.Fatal(err)
	}
	adminRole, err := st.CreateRole(ctx, store.Role{Name: admin.RoleAdmin, IsShared: true, Permissions: []acl.Permission{
		{Resource: "/#", Operation: acl.OpReadWrite, Context: acl.ContextHTTP},
		{Resource: "#", Operation: acl.OpReadWrite, Context: acl.ContextMQTT},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateRole(ctx, store.Role{Name: admin.RoleMinimum, IsShared: true, Permissions: []acl.Permission{
		{Resource: "/api/session", Operation: acl.OpRead, Context: acl.ContextHTTP},
	}}); err != nil {
		t.Fatal(err)
	}
	h, err := credential.Hash(adminPassword, fastParams)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateUser(ctx, store.User{Username: "admin", PasswordHash: h, Roles: []string{adminRole.ID},
		GrantTypes: []store.GrantType{{Method: store.GrantPassword}}}); err != nil {
		t.Fatal(err)
	}
	o := admin.Options{Store: st, Tokens: tokens, Params: fastParams, Logger: slog.New(slog.DiscardHandler)}
	for _, f := range opts {
		f(&o)
	}
	srv, err := admin.New(admin.WithRegistryAndTrust(t, o))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	a := &api{t: t, url: hs.URL, st: st, srv: srv, tokens: tokens}
	a.admin = a.login("admin", adminPassword)
	return a
}

// do sends a request; body is JSON-encoded unless it is a string or
// []byte (sent as is). It returns the status and the raw response body.
func (a *api) do(method, path, token string, body any) (int, []byte) {
	a.t.Helper()
	code, _, out := a.doWithHeaders(method, path, token, body)
	return code, out
}

// doWithHeaders is do that also returns the answer's headers.
func (a *api) doWithHeaders(method, path, token string, body any) (int, http.Header, []byte) {
	a.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			a.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, a.url+path, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, out
}

// must sends a request as the admin and fails unless the status matches;
// it decodes the body into out when out is not nil.
func (a *api) must(method, path string, body any, want int, out any) {
	a.t.Helper()
	a.mustAs(a.admin, method, path, body, want, out)
}

func (a *api) mustAs(token, method, path string, body any, want int, out any) {
	a.t.Helper()
	code, b := a.do(method, path, token, body)
	if code != want {
		a.t.Fatalf("%s %s: status %d, want %d; body %s", method, path, code, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			a.t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
}

// login returns a token for username/password, failing the test otherwise.
func (a *api) login(username, password string) string {
	a.t.Helper()
	var resp struct {
		Token string `json:"token"`
	}
	a.mustAs("", "POST", "/api/login", map[string]any{"username": username, "password": password}, http.StatusOK, &resp)
	if resp.Token == "" {
		a.t.Fatal("login returned no token")
	}
	return resp.Token
}

// errorCode decodes an error body and returns its code field.
func errorCode(t testing.TB, body []byte) int {
	t.Helper()
	var e struct {
		Error string `json:"error"`
		Code  int    `json:"code"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
		t.Fatalf("not a JSON error body: %s", body)
	}
	return e.Code
}
