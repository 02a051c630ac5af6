package admin_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/admin"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/pki"
	"github.com/warden-mqtt/warden/registry"
	"github.com/warden-mqtt/warden/store"
)

const gDevicePW = "device-secret-1"

// gClock is the client registry's clock in these tests: they move it and
// never sleep.
type gClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *gClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *gClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// gWithClock points a at a second server on the same store and tokens
// whose client registry runs on a fake clock (and the store's CA, as the
// default one does). It returns the clock and the CA.
func gWithClock(t *testing.T, a *api) (*gClock, *pki.CA) {
	t.Helper()
	ctx := context.Background()
	ca, err := pki.LoadOrCreateCA(ctx, a.st, pki.DefaultCAName)
	if err != nil {
		t.Fatal(err)
	}
	c := &gClock{now: time.Now().UTC().Truncate(time.Millisecond)}
	reg, err := registry.New(registry.Options{Store: a.st, CA: ca, Params: fastParams, Logger: slog.New(slog.DiscardHandler), Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := admin.New(admin.WithRegistryAndTrust(t, admin.Options{Store: a.st, Tokens: a.tokens, Params: fastParams, Logger: slog.New(slog.DiscardHandler), Registry: reg}))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	a.url, a.srv = hs.URL, srv
	return c, ca
}

type gStatus struct {
	Status        string `json:"status"`
	UnlockedUntil int64  `json:"unlockedUntil"`
}

func gGetStatus(t *testing.T, a *api) gStatus {
	t.Helper()
	var s gStatus
	a.mustAs("", "GET", "/api/client-registry/status", nil, http.StatusOK, &s)
	return s
}

// gRegister posts a registration without a token and returns the status
// and body.
func gRegister(a *api, body any) (int, []byte) {
	a.t.Helper()
	return a.do("POST", "/api/client-registry/register", "", body)
}

// gWant fails unless the registration answers want; error answers must be
// JSON errors with that code, whose message contains each of words.
func gWant(t *testing.T, a *api, body any, want int, words ...string) []byte {
	t.Helper()
	code, b := gRegister(a, body)
	if code != want {
		t.Fatalf("register %v: %d %s; want %d", body, code, b, want)
	}
	if want >= 400 {
		if errorCode(t, b) != want {
			t.Fatalf("register: error body %s, want code %d", b, want)
		}
		for _, w := range words {
			if !strings.Contains(strings.ToLower(string(b)), strings.ToLower(w)) {
				t.Fatalf("register: error %s does not say %q", b, w)
			}
		}
	}
	return b
}

// gList returns GET /api/client-registry as raw objects.
func gList(t *testing.T, a *api) ([]map[string]any, []byte) {
	t.Helper()
	code, b := a.do("GET", "/api/client-registry", a.admin, nil)
	if code != http.StatusOK {
		t.Fatalf("list: %d %s", code, b)
	}
	var out []map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("list: %s: %v", b, err)
	}
	return out, b
}

func gOpen(t *testing.T, a *api, body any) {
	t.Helper()
	a.must("POST", "/api/client-registry/open", body, http.StatusNoContent, nil)
}

func gRole(t *testing.T, a *api, name string, perms ...acl.Permission) store.Role {
	t.Helper()
	r, err := a.st.CreateRole(context.Background(), store.Role{Name: name, IsShared: true, Permissions: perms})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// gMinimumUser stores a user holding only minimum-access and logs it in.
func gMinimumUser(t *testing.T, a *api) string {
	t.Helper()
	ctx := context.Background()
	r, err := a.st.RoleByName(ctx, admin.RoleMinimum)
	if err != nil {
		t.Fatal(err)
	}
	h, err := credential.Hash(gDevicePW, fastParams)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.st.CreateUser(ctx, store.User{Username: "operator", PasswordHash: h, Roles: []string{r.ID}}); err != nil {
		t.Fatal(err)
	}
	return a.login("operator", gDevicePW)
}

func gCSR(t *testing.T, key crypto.Signer, cn string) string {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

func gECKey(t *testing.T) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var gRSA1024 = sync.OnceValues(func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 1024) })

func TestRegistryAuthorization(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, a *api) {
		minimum := gMinimumUser(t, a)
		for _, e := range []struct {
			method, path string
			body         any
		}{
			{"GET", "/api/client-registry", nil},
			{"POST", "/api/client-registry/open", map[string]any{"duration": 1000}},
			{"POST", "/api/client-registry/lock", nil},
			{"POST", "/api/client-registry/confirm", map[string]any{"username": "dev-1"}},
			{"POST", "/api/client-registry/reject", map[string]any{"username": "dev-1"}},
		} {
			for _, c := range []struct {
				who, token string
				want       int
			}{{"no token", "", http.StatusUnauthorized}, {"a bad token", "not-a-token", http.StatusUnauthorized}, {"minimum-access", minimum, http.StatusForbidden}} {
				code, b := a.do(e.method, e.path, c.token, e.body)
				if code != c.want || errorCode(t, b) != c.want {
					t.Errorf("%s %s with %s: %d %s; want %d", e.method, e.path, c.who, code, b, c.want)
				}
			}
		}
		if s := gGetStatus(t, a); s != (gStatus{Status: "locked"}) {
			t.Fatalf("the refused calls opened the registry: %+v", s)
		}
		// status and register need no token: a device has none.
		gWant(t, a, map[string]any{"username": "dev-1", "password": gDevicePW}, http.StatusLocked, "locked")
		gOpen(t, a, nil)
		gWant(t, a, map[string]any{"username": "dev-1", "password": gDevicePW}, http.StatusAccepted)
		if l, _ := gList(t, a); len(l) != 1 {
			t.Fatalf("list: %v", l)
		}
	})
}

func TestRegistryPasswordFlow(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, a *api) {
		line := gRole(t, a, "line-a",
			acl.Permission{Resource: "/api/session", Operation: acl.OpRead, Context: acl.ContextHTTP},
			acl.Permission{Resource: "plant/a/#", Operation: acl.OpWrite, Context: acl.ContextMQTT})
		const name = "iot.device.0123456"
		req := map[string]any{
			"username": name, "password": gDevicePW, "roles": []string{"manufacturer.iotModule.simpleRole"},
			"context":     "IoT Device Serial Number <0123456>",
			"permissions": []map[string]any{{"resource": "devices/#", "operation": "read", "context": "mqtt"}},
		}
		if s := gGetStatus(t, a); s != (gStatus{Status: "locked"}) {
			t.Fatalf("status at start: %+v", s)
		}
		gWant(t, a, req, http.StatusLocked)
		if l, _ := gList(t, a); len(l) != 0 {
			t.Fatalf("a locked registry listed %v", l)
		}

		gOpen(t, a, map[string]any{"duration": 60000})
		if b := gWant(t, a, req, http.StatusAccepted); !bytes.Contains(b, []byte(`"pending"`)) {
			t.Fatalf("202 body %s", b)
		}
		gWant(t, a, req, http.StatusAccepted) // the device polls

		list, raw := gList(t, a)
		if len(list) != 1 {
			t.Fatalf("list %s", raw)
		}
		row := list[0]
		for _, k := range []string{"timestamp", "username", "credentialType", "roles", "context", "permissions", "granted"} {
			if _, ok := row[k]; !ok {
				t.Errorf("list row lacks %q: %s", k, raw)
			}
		}
		for _, secret := range []string{gDevicePW, "$argon2", "passwordHash", "csr", "hash", "fingerprint"} {
			if bytes.Contains(raw, []byte(secret)) {
				t.Errorf("list shows %q: %s", secret, raw)
			}
		}
		if row["username"] != name || row["credentialType"] != "password" || row["granted"] != false ||
			row["context"] != req["context"] || len(row["roles"].([]any)) != 1 || len(row["permissions"].([]any)) != 1 {
			t.Fatalf("list row %s", raw)
		}
		if ts, err := time.Parse(time.RFC3339Nano, row["timestamp"].(string)); err != nil || time.Since(ts) > time.Minute {
			t.Fatalf("timestamp %v: %v", row["timestamp"], err)
		}

		a.must("POST", "/api/client-registry/confirm", map[string]any{
			"username": name, "mqttPublishPrefix": "plant/a/", "roles": []string{line.ID},
			"initialPermissions": []map[string]any{{"resource": "devices/{username}/#", "operation": "readWrite", "context": "mqtt"}},
		}, http.StatusNoContent, nil)

		b := gWant(t, a, req, http.StatusCreated)
		var ans map[string]any
		if err := json.Unmarshal(b, &ans); err != nil || ans["certificate"] != nil {
			t.Fatalf("201 body for a password registration: %s", b)
		}
		other := map[string]any{"username": name, "password": "another-password-9"}
		gWant(t, a, other, http.StatusConflict)
		if l, _ := gList(t, a); len(l) != 1 || l[0]["granted"] != true {
			t.Fatalf("list after confirm: %v", l)
		}

		// The device logs in with its password and holds exactly what the
		// admin gave it.
		var login struct {
			Token       string           `json:"token"`
			Permissions []acl.Permission `json:"permissions"`
		}
		a.mustAs("", "POST", "/api/login", map[string]any{"username": name, "password": gDevicePW}, http.StatusOK, &login)
		var got []string
		for _, p := range login.Permissions {
			got = append(got, p.Resource)
		}
		slices.Sort(got)
		if want := []string{"/api/session", "devices/{username}/#", "plant/a/#"}; !slices.Equal(got, want) {
			t.Fatalf("device permissions %v, want %v (never the requested devices/#)", got, want)
		}
		a.mustAs(login.Token, "GET", "/api/session", nil, http.StatusOK, nil)
		u, err := a.st.UserByUsername(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		if u.MQTTPublishPrefix != "plant/a/" || len(u.Roles) != 2 || u.Roles[1] != line.ID {
			t.Fatalf("device user %+v", u)
		}
		var view struct {
			Roles []struct {
				ID   string `json:"id"`
				Name string `json:"name"`
			} `json:"roles"`
		}
		a.must("GET", "/api/users/"+u.ID, nil, http.StatusOK, &view)
		if !slices.ContainsFunc(view.Roles, func(r struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		}) bool {
			return r.ID == line.ID && r.Name == "line-a"
		}) {
			t.Fatalf("GET user roles %+v lack line-a", view.Roles)
		}

		// Existing user, now with a fresh request.
		gWant(t, a, map[string]any{"username": "admin", "password": gDevicePW}, http.StatusConflict, "exists")
	})
}

func TestRegistryCSRFlow(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, a *api) {
		_, ca := gWithClock(t, a)
		const name = "iot.device.csr"
		key := gECKey(t)
		req := map[string]any{"username": name, "csr": gCSR(t, key, name), "context": "serial 7"}
		gOpen(t, a, nil)
		gWant(t, a, req, http.StatusAccepted)
		list, raw := gList(t, a)
		if len(list) != 1 || list[0]["credentialType"] != "certificate" || bytes.Contains(raw, []byte("BEGIN")) ||
			bytes.Contains(raw, []byte(req["csr"].(string)[:40])) {
			t.Fatalf("list %s", raw)
		}
		// A poll with another key is someone else.
		gWant(t, a, map[string]any{"username": name, "csr": gCSR(t, gECKey(t), name)}, http.StatusConflict)

		a.must("POST", "/api/client-registry/confirm", map[string]any{"username": name}, http.StatusNoContent, nil)
		var ans struct {
			Certificate string `json:"certificate"`
		}
		b := gWant(t, a, req, http.StatusCreated)
		if err := json.Unmarshal(b, &ans); err != nil {
			t.Fatal(err)
		}
		pemBytes, err := base64.StdEncoding.DecodeString(ans.Certificate)
		if err != nil {
			t.Fatalf("certificate is not base64: %v (%s)", err, b)
		}
		block, _ := pem.Decode(pemBytes)
		if block == nil || block.Type != "CERTIFICATE" {
			t.Fatalf("certificate is not a PEM certificate: %q", pemBytes)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		roots := x509.NewCertPool()
		roots.AddCert(ca.Certificate())
		if cert.Subject.CommonName != name || !key.Public().(*ecdsa.PublicKey).Equal(cert.PublicKey) {
			t.Fatalf("certificate CN %q (want %q) or key differs", cert.Subject.CommonName, name)
		}
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Fatalf("certificate does not verify against the internal CA: %v", err)
		}
		u, err := a.st.UserByUsername(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		if len(u.Certificates) != 1 || u.Certificates[0].Fingerprint != pki.Fingerprint(cert.Raw) {
			t.Fatalf("user certificates %+v", u.Certificates)
		}
		// The device's next poll gets the same certificate.
		if b2 := gWant(t, a, req, http.StatusCreated); !bytes.Equal(b, b2) {
			t.Fatalf("second poll: %s, first: %s", b2, b)
		}
	})
}

func TestRegistryRefusals(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, a *api) {
		gOpen(t, a, nil)
		rsa1024, err := gRSA1024()
		if err != nil {
			t.Fatal(err)
		}
		gWant(t, a, map[string]any{"username": "dev-pending", "password": gDevicePW}, http.StatusAccepted)
		for _, c := range []struct {
			name  string
			body  any
			want  int
			words []string
		}{
			{"garbage csr", map[string]any{"username": "dev-1", "csr": "bm90IGEgY3Ny!!!$$$"}, 400, []string{"CSR"}},
			{"csr of another common name", map[string]any{"username": "dev-1", "csr": gCSR(t, gECKey(t), "dev-2")}, 400, []string{"common name"}},
			{"csr with a weak key", map[string]any{"username": "dev-1", "csr": gCSR(t, rsa1024, "dev-1")}, 400, []string{"1024"}},
			{"neither password nor csr", map[string]any{"username": "dev-1"}, 400, []string{"password", "csr"}},
			{"an unknown field", map[string]any{"username": "dev-1", "password": gDevicePW, "admin": true}, 400, nil},
			{"malformed JSON", `{"username": "dev-1",`, 400, nil},
			{"another password while pending", map[string]any{"username": "dev-pending", "password": "another-password-9"}, 409, []string{"pending"}},
			{"an existing user", map[string]any{"username": "admin", "password": gDevicePW}, 409, []string{"exists"}},
			{"a weak password", map[string]any{"username": "dev-1", "password": "short"}, 422, nil},
			{"a two-character username", map[string]any{"username": "ab", "password": gDevicePW}, 422, []string{"username"}},
		} {
			t.Run(c.name, func(t *testing.T) {
				gWant(t, a, c.body, c.want, c.words...)
			})
		}
		if l, raw := gList(t, a); len(l) != 1 {
			t.Fatalf("refusals were recorded: %s", raw)
		}
		// Confirm refusals.
		for _, c := range []struct {
			name string
			body map[string]any
			want int
		}{
			{"an unknown username", map[string]any{"username": "nobody"}, 404},
			{"an unknown role", map[string]any{"username": "dev-pending", "roles": []string{"no-such-role"}}, 404},
			{"no username", map[string]any{"roles": []string{}}, 400},
			{"an invalid permission", map[string]any{"username": "dev-pending", "initialPermissions": []map[string]any{{"resource": "a/#/b", "operation": "read", "context": "mqtt"}}}, 400},
		} {
			code, b := a.do("POST", "/api/client-registry/confirm", a.admin, c.body)
			if code != c.want || errorCode(t, b) != c.want {
				t.Errorf("confirm with %s: %d %s; want %d", c.name, code, b, c.want)
			}
		}
		if _, err := a.st.UserByUsername(context.Background(), "dev-pending"); err == nil {
			t.Fatal("a refused confirm created the user")
		}
		a.must("POST", "/api/client-registry/confirm", map[string]any{"username": "dev-pending"}, http.StatusNoContent, nil)
		code, b := a.do("POST", "/api/client-registry/confirm", a.admin, map[string]any{"username": "dev-pending"})
		if code != http.StatusConflict {
			t.Fatalf("second confirm: %d %s; want 409", code, b)
		}
	})
}

func TestRegistryLockFlushes(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, a *api) {
		gOpen(t, a, nil)
		dev1 := map[string]any{"username": "dev-1", "password": gDevicePW}
		gWant(t, a, dev1, http.StatusAccepted)
		gWant(t, a, map[string]any{"username": "dev-2", "csr": gCSR(t, gECKey(t), "dev-2")}, http.StatusAccepted)
		a.must("POST", "/api/client-registry/lock", nil, http.StatusNoContent, nil)
		if l, raw := gList(t, a); len(l) != 0 {
			t.Fatalf("list after lock: %s", raw)
		}
		if s := gGetStatus(t, a); s != (gStatus{Status: "locked"}) {
			t.Fatalf("status after lock: %+v", s)
		}
		gWant(t, a, dev1, http.StatusLocked)
		code, b := a.do("POST", "/api/client-registry/confirm", a.admin, map[string]any{"username": "dev-1"})
		if code != http.StatusNotFound {
			t.Fatalf("confirm of a flushed request: %d %s; want 404", code, b)
		}
	})
}

func TestRegistryOpenDuration(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, a *api) {
		// The default server, on the real clock: no body opens for 30 s.
		before := time.Now().UnixMilli()
		gOpen(t, a, nil)
		after := time.Now().UnixMilli()
		if s := gGetStatus(t, a); s.Status != "open" || s.UnlockedUntil < before+30000 || s.UnlockedUntil > after+30000 {
			t.Fatalf("open without a body: %+v, want unlockedUntil in [%d, %d]", s, before+30000, after+30000)
		}

		clock, _ := gWithClock(t, a)
		now := clock.Now().UnixMilli()
		for _, c := range []struct {
			name string
			body any
			want int64 // ms after now
		}{
			{"5 ms", map[string]any{"duration": 5}, 5},
			{"no body", nil, 30000},
			{"an empty object", map[string]any{}, 30000},
			{"a null duration", `{"duration": null}`, 30000},
			{"one day, capped at 1 h", map[string]any{"duration": 24 * 3600 * 1000}, 3600000},
			{"ten years, capped at 1 h", map[string]any{"duration": int64(10 * 365 * 24 * 3600 * 1000)}, 3600000},
			{"the largest integer, capped at 1 h", `{"duration": 9223372036854775807}`, 3600000},
			{"5 ms again", map[string]any{"duration": 5}, 5},
		} {
			gOpen(t, a, c.body)
			if s := gGetStatus(t, a); s != (gStatus{Status: "open", UnlockedUntil: now + c.want}) {
				t.Fatalf("open with %s: status %+v, want open until now+%d ms", c.name, s, c.want)
			}
		}
		clock.Advance(5 * time.Millisecond)
		if s := gGetStatus(t, a); s != (gStatus{Status: "locked"}) {
			t.Fatalf("5 ms later: %+v, want locked", s)
		}
		gWant(t, a, map[string]any{"username": "dev-1", "password": gDevicePW}, http.StatusLocked)

		for _, body := range []string{`{"duration": 0}`, `{"duration": -5}`, `{"duration": "5"}`, `{"duration": 1.5}`, `{"until": 5}`, `[`} {
			code, b := a.do("POST", "/api/client-registry/open", a.admin, body)
			if code != http.StatusBadRequest || errorCode(t, b) != http.StatusBadRequest {
				t.Errorf("open with %s: %d %s; want 400", body, code, b)
			}
		}
		if s := gGetStatus(t, a); s.Status != "locked" {
			t.Fatalf("refused opens opened the registry: %+v", s)
		}
	})
}

// TestRegistryReject: a rejected request is gone (the device's next poll
// while the registry is open is a new pending request, never a grant); a
// granted request cannot be rejected; an unknown username is a 404.
func TestRegistryReject(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, a *api) {
		gOpen(t, a, nil)
		gWant(t, a, map[string]any{"username": "dev-r1", "password": gDevicePW}, http.StatusAccepted)
		gWant(t, a, map[string]any{"username": "dev-r2", "password": gDevicePW}, http.StatusAccepted)
		a.must("POST", "/api/client-registry/reject", map[string]any{"username": "dev-r1"}, http.StatusNoContent, nil)
		if l, raw := gList(t, a); len(l) != 1 || l[0]["username"] != "dev-r2" {
			t.Fatalf("after rejecting dev-r1: %s", raw)
		}
		a.must("POST", "/api/client-registry/reject", map[string]any{"username": "dev-r1"}, http.StatusNotFound, nil)
		a.must("POST", "/api/client-registry/reject", map[string]any{}, http.StatusBadRequest, nil)
		// The device asks again: pending once more, not granted.
		gWant(t, a, map[string]any{"username": "dev-r1", "password": gDevicePW}, http.StatusAccepted)
		a.must("POST", "/api/client-registry/confirm", map[string]any{"username": "dev-r2"}, http.StatusNoContent, nil)
		code, b := a.do("POST", "/api/client-registry/reject", a.admin, map[string]any{"username": "dev-r2"})
		if code != http.StatusConflict || !bytes.Contains(b, []byte("granted already")) {
			t.Fatalf("rejecting a granted request: %d %s, want 409", code, b)
		}
	})
}
