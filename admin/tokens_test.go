package admin_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/admin"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

// kCreateUser stores a user with the minimum-access role plus, when perms
// are given, a role of its own holding them.
func kCreateUser(t *testing.T, a *api, name, password string, perms ...acl.Permission) store.User {
	t.Helper()
	ctx := context.Background()
	h, err := credential.Hash(password, fastParams)
	if err != nil {
		t.Fatal(err)
	}
	minimum, err := a.st.RoleByName(ctx, admin.RoleMinimum)
	if err != nil {
		t.Fatal(err)
	}
	roles := []string{minimum.ID}
	if len(perms) > 0 {
		r, err := a.st.CreateRole(ctx, store.Role{Name: name + "-role", Permissions: perms})
		if err != nil {
			t.Fatal(err)
		}
		roles = append(roles, r.ID)
	}
	u, err := a.st.CreateUser(ctx, store.User{Username: name, PasswordHash: h, Roles: roles})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// kServer starts another admin server on a's store (another node) with
// MFA switched on or off.
func kServer(t *testing.T, a *api, mfa bool) *api {
	t.Helper()
	srv, err := admin.New(admin.WithRegistryAndTrust(t, admin.Options{Store: a.st, Tokens: a.tokens, Params: fastParams, MFAEnabled: mfa, Logger: slog.New(slog.DiscardHandler)}))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	b := *a
	b.t, b.url, b.srv = t, hs.URL, srv
	return &b
}

// kFetchJWKS fetches the key set over HTTP, as another service would, and
// returns the keys by kid. It uses nothing of warden's.
func kFetchJWKS(t *testing.T, a *api) map[string]ed25519.PublicKey {
	t.Helper()
	resp, err := http.Get(a.url + "/api/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") ||
		!strings.Contains(resp.Header.Get("Cache-Control"), "max-age=300") {
		t.Fatalf("GET jwks.json: %d, Content-Type %q, Cache-Control %q", resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"))
	}
	var set struct {
		Keys []struct {
			Kty, Crv, X, Kid, Use, Alg string
		} `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	keys := map[string]ed25519.PublicKey{}
	for _, k := range set.Keys {
		if k.Kty != "OKP" || k.Crv != "Ed25519" || k.Use != "sig" || k.Alg != "EdDSA" || k.Kid == "" {
			t.Fatalf("JWK %+v is not an Ed25519 signing key with a kid", k)
		}
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			t.Fatalf("JWK x %q is not a base64url Ed25519 key (%v)", k.X, err)
		}
		keys[k.Kid] = ed25519.PublicKey(x)
	}
	return keys
}

// kVerifyOffline verifies tok with golang-jwt and the fetched keys only,
// the way a service without warden's code does it.
func kVerifyOffline(tok string, keys map[string]ed25519.PublicKey) (jwt.MapClaims, error) {
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(tok, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if k, ok := keys[kid]; ok {
			return k, nil
		}
		return nil, fmt.Errorf("unknown kid %q", kid)
	}, jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithIssuer("warden-test"), jwt.WithExpirationRequired())
	return claims, err
}

// kValidate calls GET /api/validateToken with the caller token and
// decodes the 200 answer.
func kValidate(t *testing.T, a *api, caller, tok string) map[string]any {
	t.Helper()
	var out map[string]any
	a.mustAs(caller, "GET", "/api/validateToken?token="+url.QueryEscape(tok), nil, http.StatusOK, &out)
	return out
}

func TestTokensJWKSVerifiesTokensWithAGenericJWTLibrary(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, a *api) {
		keys := kFetchJWKS(t, a)
		if len(keys) != 1 {
			t.Fatalf("JWKS has %d keys, want 1", len(keys))
		}
		claims, err := kVerifyOffline(a.admin, keys)
		if err != nil {
			t.Fatalf("admin login token does not verify with the published key: %v", err)
		}
		if claims["username"] != "admin" || claims["kind"] != credential.KindLogin || claims["sub"] == "" {
			t.Fatalf("claims %v", claims)
		}
		// A token signed by another key, or altered, does not verify.
		parts := strings.Split(a.admin, ".")
		payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
		forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString(bytes.Replace(payload, []byte(`"admin"`), []byte(`"root"`), 1)) + "." + parts[2]
		if _, err := kVerifyOffline(forged, keys); err == nil {
			t.Fatal("an altered token verified offline")
		}

		// After a key rotation the set holds both keys: tokens signed
		// before and after verify offline.
		if err := a.tokens.Rotate(t.Context()); err != nil {
			t.Fatal(err)
		}
		fresh := a.login("admin", adminPassword)
		if _, err := kVerifyOffline(fresh, keys); err == nil {
			t.Fatal("a token signed with the new key verified against the old set")
		}
		keys = kFetchJWKS(t, a)
		if len(keys) != 2 {
			t.Fatalf("JWKS after a rotation has %d keys, want 2", len(keys))
		}
		for name, tok := range map[string]string{"before": a.admin, "after": fresh} {
			if _, err := kVerifyOffline(tok, keys); err != nil {
				t.Fatalf("token signed %s the rotation: %v", name, err)
			}
		}
		// The old token still works online too.
		a.must("GET", "/api/session", nil, http.StatusOK, nil)
	})
}

func TestTokensValidateToken(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, a *api) {
		ctx := context.Background()
		checker := kCreateUser(t, a, "checker", "checker-pass-1",
			acl.Permission{Resource: "/api/validateToken", Operation: acl.OpRead, Context: acl.ContextHTTP})
		svc := a.login(checker.Username, "checker-pass-1")
		op := kCreateUser(t, a, "operator", "operator-pass-1")
		opTok := a.login("operator", "operator-pass-1")

		// Valid: who, what kind, until when, with which permissions.
		got := kValidate(t, a, svc, opTok)
		if got["valid"] != true || got["username"] != "operator" || got["userId"] != op.ID || got["kind"] != "login" ||
			got["tokenId"] == "" || got["expiresAt"] == nil || got["issuedAt"] == nil {
			t.Fatalf("valid token: %v", got)
		}
		perms, _ := got["permissions"].([]any)
		if len(perms) != 1 || perms[0].(map[string]any)["resource"] != "/api/session" {
			t.Fatalf("permissions of the operator: %v", got["permissions"])
		}
		exp, err := time.Parse(time.RFC3339, got["expiresAt"].(string))
		if err != nil || exp.Before(time.Now().Add(23*time.Hour)) {
			t.Fatalf("expiresAt %v (%v)", got["expiresAt"], err)
		}

		// Expired: issued by a node whose clock is two days behind, so it
		// expired a day ago, without waiting.
		past, err := credential.NewTokensWith(ctx, a.st, credential.TokenOptions{
			Issuer: "warden-test", Now: func() time.Time { return time.Now().Add(-48 * time.Hour) },
		})
		if err != nil {
			t.Fatal(err)
		}
		expired, _, err := past.Issue(ctx, op, credential.KindLogin, "", 24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}

		// Revoked: logged out.
		loggedOut := a.login("operator", "operator-pass-1")
		a.mustAs("", "POST", "/api/logout", map[string]string{"token": loggedOut}, http.StatusOK, nil)

		// Another cluster's token.
		other := storetest.OpenBolt(t)
		foreignTokens, err := credential.NewTokens(ctx, other, "warden-test")
		if err != nil {
			t.Fatal(err)
		}
		ou, err := other.CreateUser(ctx, store.User{Username: "operator"})
		if err != nil {
			t.Fatal(err)
		}
		foreign, _, err := foreignTokens.Issue(ctx, ou, credential.KindLogin, "", time.Hour)
		if err != nil {
			t.Fatal(err)
		}

		for name, c := range map[string]struct{ token, reason string }{
			"expired":               {expired, "expired"},
			"revoked":               {loggedOut, "revoked"},
			"garbage":               {"not-a-token", "invalid"},
			"JWT-shaped garbage":    {"eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiIxIn0.c2ln", "invalid"},
			"another cluster's":     {foreign, "invalid"},
			"truncated signature":   {opTok[:len(opTok)-4], "invalid"},
			"with a space appended": {opTok + " ", "invalid"},
		} {
			code, body := a.do("GET", "/api/validateToken?token="+url.QueryEscape(c.token), svc, nil)
			var v map[string]any
			if code != http.StatusOK || json.Unmarshal(body, &v) != nil || v["valid"] != false || v["reason"] != c.reason || len(v) != 2 {
				t.Errorf("%s: %d %s, want 200 {valid: false, reason: %q}", name, code, body, c.reason)
			}
			if strings.Contains(string(body), strings.TrimSpace(c.token)) {
				t.Errorf("%s: the answer quotes the token", name)
			}
		}

		// Suspended user: its token is no longer valid.
		if _, err := a.st.UpdateUser(ctx, op.ID, func(u *store.User) error { u.Suspended = true; return nil }); err != nil {
			t.Fatal(err)
		}
		if got := kValidate(t, a, svc, opTok); got["valid"] != false || got["reason"] != "suspended" {
			t.Fatalf("token of a suspended user: %v", got)
		}
		// Deleted user: its tokens go with it.
		if err := a.st.DeleteUser(ctx, op.ID); err != nil {
			t.Fatal(err)
		}
		if got := kValidate(t, a, svc, opTok); got["valid"] != false || got["reason"] != "revoked" {
			t.Fatalf("token of a deleted user: %v", got)
		}

		// An application token is valid, of its kind.
		var app struct {
			Token string `json:"application_token"`
		}
		a.must("POST", "/api/v1/application_token", map[string]any{"description": "ingest"}, http.StatusCreated, &app)
		if got := kValidate(t, a, svc, app.Token); got["valid"] != true || got["kind"] != "application" || got["username"] != "admin" {
			t.Fatalf("application token: %v", got)
		}

		// The caller needs the permission; the parameter is required.
		plain := kCreateUser(t, a, "plain", "plain-pass-1")
		plainTok := a.login(plain.Username, "plain-pass-1")
		for _, c := range []struct {
			caller, query string
			want          int
		}{
			{plainTok, "?token=" + url.QueryEscape(svc), http.StatusForbidden},
			{"", "?token=" + url.QueryEscape(svc), http.StatusUnauthorized},
			{"not-a-token", "?token=" + url.QueryEscape(svc), http.StatusUnauthorized},
			{svc, "", http.StatusBadRequest},
			{svc, "?token=", http.StatusBadRequest},
		} {
			code, body := a.do("GET", "/api/validateToken"+c.query, c.caller, nil)
			if code != c.want || errorCode(t, body) != c.want {
				t.Errorf("GET /api/validateToken%s as %.10q: %d %s, want %d", c.query, c.caller, code, body, c.want)
			}
		}
		// The admin role (/#) may validate.
		if got := kValidate(t, a, a.admin, svc); got["valid"] != true || got["username"] != "checker" {
			t.Fatalf("admin validating: %v", got)
		}
	})
}

func TestTokensOAuth2AliasAndRevoke(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, a *api) {
		kCreateUser(t, a, "operator", "operator-pass-1")

		// POST /api/oauth2 answers like POST /api/login.
		var alias, login map[string]any
		a.mustAs("", "POST", "/api/oauth2", map[string]any{"username": "operator", "password": "operator-pass-1", "label": "svc"}, http.StatusOK, &alias)
		a.mustAs("", "POST", "/api/login", map[string]any{"username": "operator", "password": "operator-pass-1"}, http.StatusOK, &login)
		for k := range login {
			if _, ok := alias[k]; !ok {
				t.Errorf("POST /api/oauth2 answer lacks %q: %v", k, alias)
			}
		}
		if len(alias) != len(login) || alias["needsMfa"] != false {
			t.Fatalf("POST /api/oauth2 = %v, POST /api/login = %v", alias, login)
		}
		opTok := alias["token"].(string)
		other := login["token"].(string)
		a.mustAs(opTok, "GET", "/api/session", nil, http.StatusOK, nil)
		_, wrongLogin := a.do("POST", "/api/login", "", map[string]string{"username": "operator", "password": "wrong-pass-1"})
		code, wrongAlias := a.do("POST", "/api/oauth2", "", map[string]string{"username": "operator", "password": "wrong-pass-1"})
		if code != http.StatusForbidden || !bytes.Equal(wrongAlias, wrongLogin) {
			t.Fatalf("wrong password on the alias: %d %s; on /api/login: %s", code, wrongAlias, wrongLogin)
		}
		code, body := a.do("POST", "/api/oauth2", "", `{"username":"operator","password":"x","extra":1}`)
		if code != http.StatusBadRequest || errorCode(t, body) != http.StatusBadRequest {
			t.Fatalf("unknown field on the alias: %d %s", code, body)
		}

		// DELETE /api/oauth2/{token}.
		for _, c := range []struct {
			name, caller, token string
			want                int
		}{
			{"without a bearer token", "", opTok, http.StatusUnauthorized},
			{"by another user without permission", other, a.admin, http.StatusForbidden},
			{"of garbage", opTok, "not-a-token", http.StatusNotFound},
		} {
			code, body := a.do("DELETE", "/api/oauth2/"+c.token, c.caller, nil)
			if code != c.want || errorCode(t, body) != c.want {
				t.Fatalf("revoke %s: %d %s, want %d", c.name, code, body, c.want)
			}
			if strings.Contains(string(body), c.token) {
				t.Fatalf("revoke %s: the answer quotes the token: %s", c.name, body)
			}
		}
		a.must("GET", "/api/session", nil, http.StatusOK, nil)

		// Its own user revokes one of its tokens with another.
		code, body = a.do("DELETE", "/api/oauth2/"+opTok, other, nil)
		if code != http.StatusNoContent || len(body) != 0 {
			t.Fatalf("own revoke: %d %q, want 204 with no content", code, body)
		}
		if code, _ := a.do("GET", "/api/session", opTok, nil); code != http.StatusUnauthorized {
			t.Fatalf("revoked token: %d, want 401", code)
		}
		if code, _ := a.do("DELETE", "/api/oauth2/"+opTok, other, nil); code != http.StatusNotFound {
			t.Fatalf("second revoke: %d, want 404", code)
		}
		// A token may revoke itself.
		a.mustAs(other, "DELETE", "/api/oauth2/"+other, nil, http.StatusNoContent, nil)
		if code, _ := a.do("GET", "/api/session", other, nil); code != http.StatusUnauthorized {
			t.Fatalf("self-revoked token: %d, want 401", code)
		}
		// The admin (write on /#) revokes another user's token.
		victim := a.login("operator", "operator-pass-1")
		a.must("DELETE", "/api/oauth2/"+victim, nil, http.StatusNoContent, nil)
		if got := kValidate(t, a, a.admin, victim); got["reason"] != "revoked" {
			t.Fatalf("token revoked by the admin: %v", got)
		}

		// With MFA on, a revoker who has yet to enroll may revoke its own
		// tokens but not, despite its permission, anyone else's.
		due := kCreateUser(t, a, "revoker", "revoker-pass-1",
			acl.Permission{Resource: "/api/oauth2/+", Operation: acl.OpWrite, Context: acl.ContextHTTP})
		if _, err := a.st.UpdateUser(context.Background(), due.ID, func(u *store.User) error { u.EnforceMFAEnrollment = true; return nil }); err != nil {
			t.Fatal(err)
		}
		withMFA := kServer(t, a, true)
		dueTok, victim := withMFA.login("revoker", "revoker-pass-1"), a.login("operator", "operator-pass-1")
		code, body = withMFA.do("DELETE", "/api/oauth2/"+victim, dueTok, nil)
		if code != http.StatusForbidden || errorCode(t, body) != http.StatusForbidden {
			t.Fatalf("revoke another's token before enrolling: %d %s, want 403", code, body)
		}
		a.mustAs(victim, "GET", "/api/session", nil, http.StatusOK, nil)
		withMFA.mustAs(dueTok, "DELETE", "/api/oauth2/"+dueTok, nil, http.StatusNoContent, nil)
		// Without the enrollment duty (MFA off), the permission suffices.
		a.mustAs(a.login("revoker", "revoker-pass-1"), "DELETE", "/api/oauth2/"+victim, nil, http.StatusNoContent, nil)
	})
}

func TestTokensAuthenticateV1(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, a *api) {
		ctx := context.Background()
		kCreateUser(t, a, "operator", "operator-pass-1")
		auth := func(body any) (int, string, []byte) {
			t.Helper()
			code, raw := a.do("POST", "/api/v1/authenticate", "", body)
			var out struct {
				AuthToken string `json:"auth_token"`
			}
			if code == http.StatusOK {
				if err := json.Unmarshal(raw, &out); err != nil || out.AuthToken == "" {
					t.Fatalf("authenticate answer %s", raw)
				}
			}
			return code, out.AuthToken, raw
		}

		// With a password: a login token.
		code, tok, raw := auth(map[string]string{"username": "operator", "password": "operator-pass-1"})
		if code != http.StatusOK {
			t.Fatalf("password: %d %s", code, raw)
		}
		var sess struct {
			Username  string    `json:"username"`
			ExpiresAt time.Time `json:"expiresAt"`
		}
		a.mustAs(tok, "GET", "/api/session", nil, http.StatusOK, &sess)
		if sess.Username != "operator" {
			t.Fatalf("session of the auth_token: %+v", sess)
		}

		// Failures: one 401 answer for wrong password, unknown and
		// suspended users.
		susp := kCreateUser(t, a, "suspended", "suspended-pass-1")
		if _, err := a.st.UpdateUser(ctx, susp.ID, func(u *store.User) error { u.Suspended = true; return nil }); err != nil {
			t.Fatal(err)
		}
		var first []byte
		for _, c := range [][2]string{{"operator", "wrong-pass-1"}, {"nobody", "wrong-pass-1"}, {"suspended", "suspended-pass-1"}} {
			code, _, raw := auth(map[string]string{"username": c[0], "password": c[1]})
			if code != http.StatusUnauthorized || errorCode(t, raw) != http.StatusUnauthorized {
				t.Fatalf("%s: %d %s, want 401", c[0], code, raw)
			}
			if first == nil {
				first = raw
			} else if !bytes.Equal(raw, first) {
				t.Fatalf("%s answered %s, a wrong password %s", c[0], raw, first)
			}
		}
		// The lockout of POST /api/login applies here too, both ways.
		kCreateUser(t, a, "target", "target-pass-1")
		for range 3 {
			auth(map[string]string{"username": "target", "password": "wrong-pass-1"})
		}
		for range 2 {
			a.do("POST", "/api/login", "", map[string]string{"username": "target", "password": "wrong-pass-1"})
		}
		if code, _, raw := auth(map[string]string{"username": "target", "password": "target-pass-1"}); code != http.StatusUnauthorized || !bytes.Equal(raw, first) {
			t.Fatalf("locked account on /api/v1/authenticate: %d %s", code, raw)
		}
		if code, _ := a.do("POST", "/api/login", "", map[string]string{"username": "target", "password": "target-pass-1"}); code != http.StatusForbidden {
			t.Fatalf("locked account on /api/login: %d", code)
		}

		// With MFA on, a user who must give a code (enrolled) or enroll
		// first cannot authenticate with a password here: there is no
		// second step in this contract. With MFA off, both may, as on
		// POST /api/login.
		enrolled := kCreateUser(t, a, "enrolled", "enrolled-pass-1")
		due := kCreateUser(t, a, "due", "due-pass-1")
		if _, err := a.st.UpdateUser(ctx, enrolled.ID, func(u *store.User) error {
			u.MFA = &store.MFAState{Keys: []store.MFAKey{{ID: "k1", Type: store.MFATypeTOTP, Status: store.MFAStatusActive, Secret: "sealed"}}}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := a.st.UpdateUser(ctx, due.ID, func(u *store.User) error { u.EnforceMFAEnrollment = true; return nil }); err != nil {
			t.Fatal(err)
		}
		withMFA := kServer(t, a, true)
		for _, name := range []string{"enrolled", "due"} {
			body := map[string]string{"username": name, "password": name + "-pass-1"}
			code, raw := withMFA.do("POST", "/api/v1/authenticate", "", body)
			if code != http.StatusUnauthorized || errorCode(t, raw) != http.StatusUnauthorized || !strings.Contains(string(raw), "application_token") {
				t.Fatalf("%s user, MFA on: %d %s, want 401 pointing to application tokens", name, code, raw)
			}
			if code, _, raw := auth(body); code != http.StatusOK {
				t.Fatalf("%s user, MFA off: %d %s, want 200", name, code, raw)
			}
		}
		if code, raw := withMFA.do("POST", "/api/v1/authenticate", "", map[string]string{"username": "operator", "password": "operator-pass-1"}); code != http.StatusOK {
			t.Fatalf("user without MFA, MFA on: %d %s", code, raw)
		}

		// With an application token: a short-lived application-session token.
		opLogin := a.login("operator", "operator-pass-1")
		var app struct {
			ID    string `json:"id"`
			Token string `json:"application_token"`
		}
		a.mustAs(opLogin, "POST", "/api/v1/application_token", map[string]any{"description": "exporter"}, http.StatusCreated, &app)
		code, tok, raw = auth(map[string]string{"application_token": app.Token})
		if code != http.StatusOK {
			t.Fatalf("application token: %d %s", code, raw)
		}
		a.mustAs(tok, "GET", "/api/session", nil, http.StatusOK, &sess)
		if sess.Username != "operator" || time.Until(sess.ExpiresAt) > time.Hour+time.Second {
			t.Fatalf("session of the exchanged token: %+v, want operator for at most an hour", sess)
		}
		if got := kValidate(t, a, a.admin, tok); got["kind"] != "application-session" {
			t.Fatalf("the exchanged token is %v, want an application-session token", got)
		}

		// Not an application token, or not a valid one: 401.
		for name, body := range map[string]any{
			"a login token": map[string]string{"application_token": opLogin},
			"garbage":       map[string]string{"application_token": "not-a-token"},
			"JWT-ish":       map[string]string{"application_token": "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiIxIn0.c2ln"},
			"another kind":  map[string]string{"application_token": tok},
		} {
			if code, _, raw := auth(body); code != http.StatusUnauthorized || errorCode(t, raw) != http.StatusUnauthorized {
				t.Fatalf("%s as application_token: %d %s, want 401", name, code, raw)
			}
		}
		// Revoked: 401 (the tokens obtained with it go with it: see
		// TestApplicationSessionRevokedWithItsParent).
		a.mustAs(opLogin, "DELETE", "/api/v1/application_token/"+app.ID, nil, http.StatusNoContent, nil)
		if code, _, raw := auth(map[string]string{"application_token": app.Token}); code != http.StatusUnauthorized {
			t.Fatalf("revoked application token: %d %s, want 401", code, raw)
		}

		// Malformed requests: 400.
		for _, body := range []string{
			`{}`,
			`{"username":"operator"}`,
			`{"password":"operator-pass-1"}`,
			`{"username":"","password":""}`,
			`{"application_token":""}`,
			`{"username":"operator","password":"operator-pass-1","application_token":"x"}`,
			`{"username":"operator","password":"operator-pass-1","extra":1}`,
			`{"username":`,
		} {
			if code, _, raw := auth(body); code != http.StatusBadRequest || errorCode(t, raw) != http.StatusBadRequest {
				t.Fatalf("body %s: %d %s, want 400", body, code, raw)
			}
		}
	})
}

// kAppToken is an application token as listed.
type kAppToken struct {
	ID          string    `json:"id"`
	Token       string    `json:"application_token"`
	Description string    `json:"description"`
	ExpiryDate  time.Time `json:"expiry_date"`
	Created     time.Time `json:"created"`
}

func TestTokensApplicationTokens(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, a *api) {
		op := kCreateUser(t, a, "operator", "operator-pass-1")
		opTok := a.login("operator", "operator-pass-1")

		// Create with the default expiry: a year.
		var made kAppToken
		before := time.Now()
		a.mustAs(opTok, "POST", "/api/v1/application_token", map[string]any{"description": "grafana exporter"}, http.StatusCreated, &made)
		if made.ID == "" || made.Description != "grafana exporter" || made.Created.Before(before.Add(-time.Second)) || !credential.LooksLikeToken(made.Token) {
			t.Fatalf("created %+v", made)
		}
		if d := made.ExpiryDate.Sub(before); d < 364*24*time.Hour || d > 366*24*time.Hour {
			t.Fatalf("default expiry in %v, want a year", d)
		}
		// With an expiry date.
		until := time.Now().Add(48 * time.Hour).Truncate(time.Second).UTC()
		var dated kAppToken
		a.mustAs(opTok, "POST", "/api/v1/application_token", map[string]any{"description": "ci", "expiry_date": until}, http.StatusCreated, &dated)
		if !dated.ExpiryDate.Equal(until) {
			t.Fatalf("expiry_date %v, want %v", dated.ExpiryDate, until)
		}

		// The application token authenticates the API as its user.
		var sess struct {
			Username string `json:"username"`
		}
		a.mustAs(made.Token, "GET", "/api/session", nil, http.StatusOK, &sess)
		if sess.Username != "operator" {
			t.Fatalf("session of the application token: %+v", sess)
		}
		// ... but cannot create application tokens (a leaked one would
		// otherwise outlive its revocation through its successors).
		code, body := a.do("POST", "/api/v1/application_token", made.Token, map[string]any{"description": "child"})
		if code != http.StatusForbidden || errorCode(t, body) != http.StatusForbidden {
			t.Fatalf("application token creating one: %d %s, want 403", code, body)
		}

		// List: own application tokens only, never the token itself.
		a.login("operator", "operator-pass-1") // a login token is not listed
		var adminApp kAppToken
		a.must("POST", "/api/v1/application_token", map[string]any{}, http.StatusCreated, &adminApp)
		code, body = a.do("GET", "/api/v1/application_token", opTok, nil)
		var list []map[string]any
		if code != http.StatusOK || json.Unmarshal(body, &list) != nil {
			t.Fatalf("list: %d %s", code, body)
		}
		// Both were created within a second: creation times tie, so the
		// order between them is not checked.
		descriptions := map[any]any{}
		for _, e := range list {
			descriptions[e["id"]] = e["description"]
		}
		if len(list) != 2 || descriptions[made.ID] != "grafana exporter" || descriptions[dated.ID] != "ci" {
			t.Fatalf("list = %s, want the operator's two application tokens", body)
		}
		if strings.Contains(string(body), made.Token) || strings.Contains(string(body), "application_token") {
			t.Fatalf("list shows the token: %s", body)
		}
		for _, k := range []string{"id", "description", "expiry_date", "created"} {
			if _, ok := list[0][k]; !ok {
				t.Fatalf("list entry lacks %q: %v", k, list[0])
			}
		}
		// Admins see it among the user's tokens.
		var userToks []map[string]any
		a.must("GET", "/api/users/"+op.ID+"/tokens", nil, http.StatusOK, &userToks)
		found := false
		for _, ut := range userToks {
			found = found || (ut["fingerprint"] == made.ID && ut["label"] == "grafana exporter")
		}
		if !found {
			t.Fatalf("/api/users/{id}/tokens = %v, lacks the application token", userToks)
		}

		// Refusals.
		for name, c := range map[string]struct {
			body any
			want int
		}{
			"expiry in the past":        {map[string]any{"description": "x", "expiry_date": time.Now().Add(-time.Hour)}, http.StatusBadRequest},
			"expiry beyond the maximum": {map[string]any{"description": "x", "expiry_date": time.Now().Add(admin.DefaultMaxTokenTTL + 24*time.Hour)}, http.StatusBadRequest},
			"expiry not a date":         {`{"description":"x","expiry_date":"tomorrow"}`, http.StatusBadRequest},
			"control characters":        {map[string]any{"description": "a\nb"}, http.StatusBadRequest},
			"description too long":      {map[string]any{"description": strings.Repeat("d", 257)}, http.StatusBadRequest},
			"unknown field":             {`{"description":"x","label":"y"}`, http.StatusBadRequest},
		} {
			code, body := a.do("POST", "/api/v1/application_token", opTok, c.body)
			if code != c.want || errorCode(t, body) != c.want {
				t.Errorf("%s: %d %s, want %d", name, code, body, c.want)
			}
		}
		for _, path := range []string{"GET /api/v1/application_token", "POST /api/v1/application_token", "DELETE /api/v1/application_token/" + made.ID} {
			method, p, _ := strings.Cut(path, " ")
			if code, _ := a.do(method, p, "", map[string]any{}); code != http.StatusUnauthorized {
				t.Errorf("%s without a token: %d, want 401", path, code)
			}
		}

		// Revoke: only own application tokens; others are 404.
		var adminLogin []map[string]any
		a.must("GET", "/api/users/"+op.ID+"/tokens", nil, http.StatusOK, &adminLogin)
		loginID := ""
		for _, ut := range adminLogin {
			if ut["label"] == nil {
				loginID, _ = ut["fingerprint"].(string)
			}
		}
		for name, id := range map[string]string{"another user's": adminApp.ID, "a login token's": loginID, "unknown": "no-such-id"} {
			if code, body := a.do("DELETE", "/api/v1/application_token/"+id, opTok, nil); code != http.StatusNotFound || errorCode(t, body) != http.StatusNotFound {
				t.Errorf("revoke %s id: %d %s, want 404", name, code, body)
			}
		}
		a.must("GET", "/api/v1/application_token", nil, http.StatusOK, nil)
		a.mustAs(opTok, "DELETE", "/api/v1/application_token/"+made.ID, nil, http.StatusNoContent, nil)
		if code, _ := a.do("GET", "/api/session", made.Token, nil); code != http.StatusUnauthorized {
			t.Fatalf("revoked application token on the API: %d, want 401", code)
		}
		if code, _ := a.do("DELETE", "/api/v1/application_token/"+made.ID, opTok, nil); code != http.StatusNotFound {
			t.Fatalf("second revoke: %d, want 404", code)
		}
		list = nil
		a.mustAs(opTok, "GET", "/api/v1/application_token", nil, http.StatusOK, &list)
		if len(list) != 1 || list[0]["id"] != dated.ID {
			t.Fatalf("list after revoking one: %v", list)
		}
		// The admin's application token survived the operator's attempts.
		a.mustAs(adminApp.Token, "GET", "/api/session", nil, http.StatusOK, nil)
	})
}

// TestTokensRotateKeys: an admin rotates the signing key over HTTP; the
// new key signs new tokens, a token signed before still works, and a user
// without the permission cannot rotate.
func TestTokensRotateKeys(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, a *api) {
		var before, after struct {
			Keys []struct {
				KID string `json:"kid"`
			} `json:"keys"`
		}
		a.mustAs("", "GET", "/api/.well-known/jwks.json", nil, 200, &before)
		old := a.login("admin", adminPassword)
		a.must("POST", "/api/keys/rotate", nil, 200, &after)
		if len(after.Keys) != len(before.Keys)+1 || after.Keys[0].KID == before.Keys[0].KID || after.Keys[1].KID != before.Keys[0].KID {
			t.Fatalf("key set before %+v, after %+v", before, after)
		}
		a.mustAs(old, "GET", "/api/session", nil, 200, nil)
		fresh := a.login("admin", adminPassword)
		a.mustAs(fresh, "GET", "/api/session", nil, 200, nil)
		if tokenKID(t, fresh) != after.Keys[0].KID || tokenKID(t, old) != before.Keys[0].KID {
			t.Fatalf("kid of the old token %q, of the new one %q; keys %+v", tokenKID(t, old), tokenKID(t, fresh), after)
		}
		sCreateUser(t, a, "operator", "operator-pass-1", "minimum-access")
		if code, _ := a.do("POST", "/api/keys/rotate", a.login("operator", "operator-pass-1"), nil); code != 403 {
			t.Fatalf("rotation by a minimum-access user: %d, want 403", code)
		}
	})
}

// tokenKID reads the kid header of a JWT without verifying it.
func tokenKID(t *testing.T, tok string) string {
	t.Helper()
	h, _, _ := strings.Cut(tok, ".")
	raw, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	var hdr struct {
		KID string `json:"kid"`
	}
	if err := json.Unmarshal(raw, &hdr); err != nil {
		t.Fatal(err)
	}
	return hdr.KID
}
