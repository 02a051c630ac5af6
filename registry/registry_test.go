package registry_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/pki"
	"github.com/warden-mqtt/warden/registry"
	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

// fastParams keep argon2id cheap in tests.
var fastParams = credential.Params{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

const (
	devicePW  = "device-secret-1"
	otherPW   = "device-secret-2"
	certLife  = 72 * time.Hour
	retention = 10 * time.Minute
)

// ---- helpers ----

// clock is the registry's injected clock; tests move it, never sleep.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Now().UTC().Truncate(time.Millisecond)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// testCA is created once: every test trusts the same internal CA.
var testCA = sync.OnceValues(func() (*pki.CA, error) { return pki.NewCA("warden registry test CA", 10*365*24*time.Hour) })

// Keys are expensive (RSA) or plentiful; each kind is made once.
var (
	rsa2048 = sync.OnceValue(func() crypto.Signer { return must(rsa.GenerateKey(rand.Reader, 2048)) })
	rsa1024 = sync.OnceValue(func() crypto.Signer { return must(rsa.GenerateKey(rand.Reader, 1024)) })
)

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func ecKey(t *testing.T, c elliptic.Curve) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func edKey(t *testing.T) crypto.Signer {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// csrPEM returns a PEM CSR for key with common name cn; org varies the
// request's bytes for the same key.
func csrPEM(t *testing.T, key crypto.Signer, cn, org string) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: cn, Organization: []string{org}},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// csrB64 is the form the Connectware API sends: base64 of the PEM.
func csrB64(t *testing.T, key crypto.Signer, cn string) string {
	t.Helper()
	return base64.StdEncoding.EncodeToString(csrPEM(t, key, cn, "warden test"))
}

// stores runs fn on a fresh bbolt store and on a fresh Redis store.
func stores(t *testing.T, fn func(t *testing.T, st store.Store)) {
	t.Run("bolt", func(t *testing.T) { fn(t, storetest.OpenBolt(t)) })
	t.Run("redis", func(t *testing.T) { fn(t, storetest.OpenRedis(t)) })
}

// env is a registry on a real store with a fake clock and a real CA.
type env struct {
	t     *testing.T
	ctx   context.Context
	st    store.Store
	clock *clock
	ca    *pki.CA
	reg   *registry.Registry
	opts  registry.Options
}

func newEnv(t *testing.T, st store.Store, tweak ...func(*registry.Options)) *env {
	t.Helper()
	ca, err := testCA()
	if err != nil {
		t.Fatal(err)
	}
	c := newClock()
	o := registry.Options{
		Store: st, CA: ca, Logger: slog.New(slog.DiscardHandler), Params: fastParams,
		CertLifetime: certLife, GrantRetention: retention, Now: c.Now,
	}
	for _, fn := range tweak {
		fn(&o)
	}
	reg, err := registry.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, ctx: t.Context(), st: st, clock: c, ca: ca, reg: reg, opts: o}
}

// in returns e reporting to t (a subtest).
func (e *env) in(t *testing.T) *env {
	c := *e
	c.t = t
	return &c
}

func (e *env) open(d time.Duration) registry.Status {
	e.t.Helper()
	s, err := e.reg.Open(e.ctx, d)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

func (e *env) status() registry.Status {
	e.t.Helper()
	s, err := e.reg.Status(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// pending registers req and fails unless the answer is "pending".
func (e *env) pending(req registry.Request) {
	e.t.Helper()
	res, err := e.reg.Register(e.ctx, req)
	if err != nil || res.Granted || res.Certificate != "" {
		e.t.Fatalf("register %q: %+v, %v; want pending", req.Username, res, err)
	}
}

// granted registers req and fails unless the answer is "granted".
func (e *env) granted(req registry.Request) registry.Result {
	e.t.Helper()
	res, err := e.reg.Register(e.ctx, req)
	if err != nil || !res.Granted {
		e.t.Fatalf("register %q: %+v, %v; want granted", req.Username, res, err)
	}
	return res
}

// refused registers req and fails unless the error matches want.
func (e *env) refused(req registry.Request, want error) error {
	e.t.Helper()
	res, err := e.reg.Register(e.ctx, req)
	if !errors.Is(err, want) {
		e.t.Fatalf("register %q: %+v, %v; want %v", req.Username, res, err, want)
	}
	return err
}

func (e *env) confirm(username string, g registry.Grant) store.User {
	e.t.Helper()
	u, err := e.reg.Confirm(e.ctx, username, g)
	if err != nil {
		e.t.Fatalf("confirm %q: %v", username, err)
	}
	return u
}

func (e *env) request(username string) store.RegistryRequest {
	e.t.Helper()
	q, err := e.st.RegistryRequest(e.ctx, username)
	if err != nil {
		e.t.Fatalf("request %q: %v", username, err)
	}
	return q
}

func (e *env) noRequest(username string) {
	e.t.Helper()
	if q, err := e.st.RegistryRequest(e.ctx, username); !errors.Is(err, store.ErrNotFound) {
		e.t.Fatalf("request %q: %+v, %v; want none", username, q, err)
	}
}

func (e *env) user(username string) store.User {
	e.t.Helper()
	u, err := e.st.UserByUsername(e.ctx, username)
	if err != nil {
		e.t.Fatalf("user %q: %v", username, err)
	}
	return u
}

func (e *env) noUser(username string) {
	e.t.Helper()
	if u, err := e.st.UserByUsername(e.ctx, username); !errors.Is(err, store.ErrNotFound) {
		e.t.Fatalf("user %q: %+v, %v; want none", username, u, err)
	}
}

func (e *env) role(name string, perms ...acl.Permission) store.Role {
	e.t.Helper()
	r, err := e.st.CreateRole(e.ctx, store.Role{Name: name, IsShared: true, Permissions: perms})
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func (e *env) names() []string {
	e.t.Helper()
	reqs, err := e.reg.Requests(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, q := range reqs {
		out = append(out, q.Username)
	}
	return out
}

func verifies(t *testing.T, pw, hash string) bool {
	t.Helper()
	ok, err := credential.Verify(pw, hash)
	return ok && err == nil
}

func mqttPerm(res string, op acl.Operation) acl.Permission {
	return acl.Permission{Resource: res, Operation: op, Context: acl.ContextMQTT}
}

// samePerms compares permissions ignoring their IDs.
func samePerms(a, b []acl.Permission) bool {
	strip := func(ps []acl.Permission) []string {
		var out []string
		for _, p := range ps {
			out = append(out, fmt.Sprintf("%s|%s|%s", p.Resource, p.Operation, p.Context))
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(strip(a), strip(b))
}

// ---- lock state ----

func TestRegistryLockedByDefault(t *testing.T) {
	t.Parallel()
	stores(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		if s := e.status(); s != (registry.Status{Status: "locked"}) {
			t.Fatalf("fresh registry: %+v, want locked", s)
		}
		e.refused(registry.Request{Username: "dev-1", Password: devicePW}, registry.ErrLocked)
		e.refused(registry.Request{Username: "dev-2", CSR: csrB64(t, ecKey(t, elliptic.P256()), "dev-2")}, registry.ErrLocked)
		if got := e.reg.ConnectAttempt(e.ctx, "dev-3", []byte(devicePW), nil); got != registry.NotRecorded {
			t.Fatalf("connect attempt while locked: %v, want NotRecorded", got)
		}
		if n := e.names(); len(n) != 0 {
			t.Fatalf("a locked registry stored requests %v", n)
		}
	})
}

func TestRegistryOpenDurationAndExpiry(t *testing.T) {
	t.Parallel()
	stores(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st, func(o *registry.Options) { o.MaxOpen = 10 * time.Minute })
		start := e.clock.Now()

		s := e.open(0)
		want := registry.Status{Status: "open", UnlockedUntil: start.Add(30 * time.Second).UnixMilli()}
		if s != want || e.status() != want {
			t.Fatalf("open with no duration: %+v, status %+v; want %+v (30 s)", s, e.status(), want)
		}
		if s := e.open(5 * time.Millisecond); s.UnlockedUntil != start.UnixMilli()+5 {
			t.Fatalf("open 5 ms: %+v", s)
		}
		if s := e.open(3 * time.Hour); s.UnlockedUntil != start.Add(10*time.Minute).UnixMilli() || e.status() != s {
			t.Fatalf("open 3 h with MaxOpen 10 min: %+v, status %+v", s, e.status())
		}

		// Open until the clock reaches unlockedUntil, locked from then on.
		e.clock.Advance(10*time.Minute - time.Millisecond)
		if s := e.status(); s.Status != "open" {
			t.Fatalf("1 ms before the end: %+v, want open", s)
		}
		e.pending(registry.Request{Username: "dev-1", Password: devicePW})
		e.clock.Advance(time.Millisecond)
		if s := e.status(); s != (registry.Status{Status: "locked"}) {
			t.Fatalf("at the end of the window: %+v, want locked", s)
		}
		e.refused(registry.Request{Username: "dev-2", Password: devicePW}, registry.ErrLocked)
		if got := e.reg.ConnectAttempt(e.ctx, "dev-3", []byte(devicePW), nil); got != registry.NotRecorded {
			t.Fatalf("connect attempt after expiry: %v", got)
		}
		// The request made while open still waits for the admin.
		if n := e.names(); !slices.Equal(n, []string{"dev-1"}) {
			t.Fatalf("requests after expiry: %v, want [dev-1]", n)
		}
	})
}

func TestRegistryDefaultMaxOpen(t *testing.T) {
	t.Parallel()
	stores(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		s := e.open(1000 * time.Hour)
		if want := e.clock.Now().Add(registry.DefaultMaxOpen).UnixMilli(); s.UnlockedUntil != want || registry.DefaultMaxOpen != time.Hour {
			t.Fatalf("open 1000 h: until %d, want %d (1 h)", s.UnlockedUntil, want)
		}
	})
}

func TestRegistryLockFlushesPendingKeepsGranted(t *testing.T) {
	t.Parallel()
	stores(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		e.open(time.Hour)
		a := registry.Request{Username: "dev-a", Password: devicePW}
		b := registry.Request{Username: "dev-b", Password: devicePW}
		e.pending(a)
		e.pending(b)
		if got := e.reg.ConnectAttempt(e.ctx, "dev-c", []byte(devicePW), nil); got != registry.Pending {
			t.Fatalf("connect attempt: %v", got)
		}
		e.confirm("dev-a", registry.Grant{})

		if err := e.reg.Lock(e.ctx); err != nil {
			t.Fatal(err)
		}
		if s := e.status(); s.Status != "locked" || s.UnlockedUntil != 0 {
			t.Fatalf("after lock: %+v", s)
		}
		if n := e.names(); !slices.Equal(n, []string{"dev-a"}) {
			t.Fatalf("after lock: requests %v, want only the granted dev-a", n)
		}
		e.granted(a) // the granted device's last poll still gets its answer
		e.refused(b, registry.ErrLocked)
		e.noUser("dev-b")
		e.noUser("dev-c")
	})
}

// ---- explicit flow, password ----

func TestRegistryPasswordFlow(t *testing.T) {
	t.Parallel()
	stores(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		admin := e.role("powerful", mqttPerm("#", acl.OpReadWrite))
		line := e.role("line-a", mqttPerm("plant/a/#", acl.OpWrite))
		e.open(time.Hour)

		req := registry.Request{
			Username: "iot.device.0123456", Password: devicePW, Context: "serial 0123456",
			Roles: []string{admin.ID, "powerful"}, Permissions: []acl.Permission{mqttPerm("#", acl.OpReadWrite)},
		}
		e.pending(req)
		q := e.request(req.Username)
		if q.Flow != registry.FlowExplicit || q.CredentialType != registry.CredentialPassword || q.Granted ||
			q.Context != req.Context || !slices.Equal(q.Roles, req.Roles) || !q.Timestamp.Equal(e.clock.Now()) {
			t.Fatalf("stored request: %+v", q)
		}
		if q.PasswordHash == "" || q.PasswordHash == devicePW || !verifies(t, devicePW, q.PasswordHash) {
			t.Fatalf("stored password hash %q does not verify the password", q.PasswordHash)
		}

		e.clock.Advance(time.Second)
		e.pending(req) // the same poll
		other := req
		other.Password = otherPW
		e.refused(other, registry.ErrConflict)
		withCSR := req
		withCSR.Password, withCSR.CSR = "", csrB64(t, ecKey(t, elliptic.P256()), req.Username)
		e.refused(withCSR, registry.ErrConflict)
		both := req
		both.CSR = withCSR.CSR
		e.refused(both, registry.ErrConflict)
		// No takeover: the stored request is the first one, unchanged.
		if q2 := e.request(req.Username); q2.PasswordHash != q.PasswordHash || q2.CSR != nil || q2.Granted {
			t.Fatalf("conflicting polls changed the request: %+v", q2)
		}
		e.pending(req)

		perms := []acl.Permission{mqttPerm("devices/{username}/#", acl.OpReadWrite)}
		created := e.confirm(req.Username, registry.Grant{MQTTPublishPrefix: "plant/a/", Roles: []string{line.ID}, Permissions: perms})
		u := e.user(req.Username)
		if u.ID != created.ID {
			t.Fatalf("confirm returned user %s, the store holds %s", created.ID, u.ID)
		}
		if !verifies(t, devicePW, u.PasswordHash) || verifies(t, otherPW, u.PasswordHash) {
			t.Fatal("the user does not have the registered password")
		}
		if u.MQTTPublishPrefix != "plant/a/" || len(u.Certificates) != 0 ||
			!slices.Equal(u.GrantTypes, []store.GrantType{{Method: store.GrantPassword}}) {
			t.Fatalf("user: %+v", u)
		}
		if len(u.Roles) != 2 || u.Roles[1] != line.ID || slices.Contains(u.Roles, admin.ID) {
			t.Fatalf("user roles %v, want [own role, %s] and never the requested %s", u.Roles, line.ID, admin.ID)
		}
		own, err := st.Role(e.ctx, u.Roles[0])
		if err != nil {
			t.Fatal(err)
		}
		if own.OwnerID != u.ID || !own.AutoGenerated || own.IsShared || !samePerms(own.Permissions, perms) {
			t.Fatalf("own role %+v, want exactly the confirmed permissions %v", own, perms)
		}

		q = e.request(req.Username)
		if !q.Granted || !q.Timestamp.Equal(e.clock.Now()) {
			t.Fatalf("request after confirm: %+v", q)
		}
		if res := e.granted(req); res.Certificate != "" {
			t.Fatalf("password registration got a certificate: %+v", res)
		}
		e.refused(other, registry.ErrConflict) // still no takeover once granted
		if _, err := e.reg.Confirm(e.ctx, req.Username, registry.Grant{}); !errors.Is(err, registry.ErrConflict) {
			t.Fatalf("second confirm: %v, want ErrConflict", err)
		}

		// Past the retention the answer is forgotten: a new request for a
		// user that exists.
		e.clock.Advance(retention - time.Second)
		e.granted(req)
		e.clock.Advance(2 * time.Second)
		e.refused(req, registry.ErrConflict)
		if n := e.names(); len(n) != 0 {
			t.Fatalf("requests past the retention: %v", n)
		}
	})
}

func TestRegistryRefusals(t *testing.T) {
	t.Parallel()
	stores(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		h, err := credential.Hash(devicePW, fastParams)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.CreateUser(e.ctx, store.User{Username: "existing", PasswordHash: h}); err != nil {
			t.Fatal(err)
		}
		e.open(time.Hour)
		long := string(bytes.Repeat([]byte("x"), 2000))
		for _, c := range []struct {
			name string
			req  registry.Request
			want error
		}{
			{"an existing user's name is a conflict", registry.Request{Username: "existing", Password: devicePW}, registry.ErrConflict},
			{"an existing user's name with a CSR is a conflict", registry.Request{Username: "existing", CSR: csrB64(t, ecKey(t, elliptic.P256()), "existing")}, registry.ErrConflict},
			{"a two-character username breaks the policy", registry.Request{Username: "ab", Password: devicePW}, registry.ErrPolicy},
			{"a username with a slash breaks the policy", registry.Request{Username: "a/b/c", Password: devicePW}, registry.ErrPolicy},
			{"a short password breaks the policy", registry.Request{Username: "dev-1", Password: "short"}, registry.ErrPolicy},
			{"neither password nor csr is invalid", registry.Request{Username: "dev-2"}, registry.ErrInvalid},
			{"an over-long context is invalid", registry.Request{Username: "dev-3", Password: devicePW, Context: long}, registry.ErrInvalid},
			{"an invalid requested permission is invalid", registry.Request{Username: "dev-4", Password: devicePW,
				Permissions: []acl.Permission{{Resource: "a/#/b", Operation: acl.OpRead, Context: acl.ContextMQTT}}}, registry.ErrInvalid},
		} {
			t.Run(c.name, func(t *testing.T) {
				e := e.in(t)
				e.refused(c.req, c.want)
				if c.req.Username != "existing" {
					e.noRequest(c.req.Username)
				}
			})
		}
		if n := e.names(); len(n) != 0 {
			t.Fatalf("refused registrations stored %v", n)
		}
		if _, err := e.reg.Confirm(e.ctx, "nobody", registry.Grant{}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("confirm of an unknown username: %v, want store.ErrNotFound", err)
		}
	})
}

func TestRegistryConfirmRoleChecks(t *testing.T) {
	t.Parallel()
	stores(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		e.open(time.Hour)
		e.pending(registry.Request{Username: "dev-1", Password: devicePW})
		if _, err := e.reg.Confirm(e.ctx, "dev-1", registry.Grant{Roles: []string{"no-such-role"}}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("confirm with an unknown role: %v, want store.ErrNotFound", err)
		}
		// Another user's own role is not grantable.
		e.pending(registry.Request{Username: "dev-2", Password: devicePW})
		u2 := e.confirm("dev-2", registry.Grant{})
		if _, err := e.reg.Confirm(e.ctx, "dev-1", registry.Grant{Roles: []string{u2.Roles[0]}}); !errors.Is(err, registry.ErrConflict) {
			t.Fatalf("confirm with another user's own role: %v, want ErrConflict", err)
		}
		// Neither failure left a user or an orphan role behind.
		e.noUser("dev-1")
		if _, err := st.RoleByName(e.ctx, "dev-1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a failed confirm left the role dev-1: %v", err)
		}
		if q := e.request("dev-1"); q.Granted {
			t.Fatalf("a failed confirm granted the request: %+v", q)
		}
		e.confirm("dev-1", registry.Grant{})
	})
}

// ---- explicit flow, CSR ----

// checkCert decodes a granted CSR registration's certificate and checks it
// is a client-only leaf of the CA for username's key, registered on the
// user.
func (e *env) checkCert(res registry.Result, username string, pub crypto.PublicKey) *x509.Certificate {
	e.t.Helper()
	t := e.t
	raw, err := base64.StdEncoding.DecodeString(res.Certificate)
	if err != nil {
		t.Fatalf("certificate is not base64: %v", err)
	}
	block, rest := pem.Decode(raw)
	if block == nil || block.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
		t.Fatalf("certificate is not one PEM certificate: %q", raw)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != username || cert.IsCA ||
		!slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
		t.Fatalf("certificate CN %q, CA %v, EKU %v; want a client-auth leaf for %q", cert.Subject.CommonName, cert.IsCA, cert.ExtKeyUsage, username)
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if !pub.(equaler).Equal(cert.PublicKey) {
		t.Fatal("the certificate is not for the CSR's key")
	}
	roots := x509.NewCertPool()
	roots.AddCert(e.ca.Certificate())
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("certificate does not chain to the CA for client auth: %v", err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Fatal("certificate is valid for server auth")
	}
	if d := time.Until(cert.NotAfter) - certLife; d > time.Minute || d < -time.Minute {
		t.Fatalf("certificate expires %v, want about now + %v", cert.NotAfter, certLife)
	}
	u := e.user(username)
	if len(u.Certificates) != 1 || u.Certificates[0].Fingerprint != pki.Fingerprint(cert.Raw) ||
		!u.Certificates[0].ExpiresAt.Equal(cert.NotAfter) {
		t.Fatalf("user certificates %+v, want the fingerprint %s", u.Certificates, pki.Fingerprint(cert.Raw))
	}
	return cert
}

func TestRegistryCSRKeysAccepted(t *testing.T) {
	t.Parallel()
	stores(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		e.open(time.Hour)
		for i, c := range []struct {
			name string
			key  crypto.Signer
			pem  bool // send the PEM itself instead of its base64
		}{
			{"RSA 2048", rsa2048(), false},
			{"ECDSA P-256", ecKey(t, elliptic.P256()), false},
			{"ECDSA P-384 as plain PEM", ecKey(t, elliptic.P384()), true},
			{"Ed25519", edKey(t), false},
		} {
			t.Run(c.name, func(t *testing.T) {
				e := e.in(t)
				name := fmt.Sprintf("dev-key-%d", i)
				req := registry.Request{Username: name, CSR: csrB64(t, c.key, name)}
				if c.pem {
					req.CSR = string(csrPEM(t, c.key, name, "warden test"))
				}
				e.pending(req)
				q := e.request(name)
				if q.CredentialType != registry.CredentialCertificate || q.PasswordHash != "" || len(q.CSR) == 0 {
					t.Fatalf("stored request: %+v", q)
				}
				e.pending(req)
				u := e.confirm(name, registry.Grant{})
				if u.PasswordHash != "" || !slices.Equal(u.GrantTypes, []store.GrantType{{Method: store.GrantCertificate}}) {
					t.Fatalf("user: %+v, want certificate grant only and no password", u)
				}
				res := e.granted(req)
				e.checkCert(res, name, c.key.Public())
				// The next poll returns the same certificate.
				if again := e.granted(req); again.Certificate != res.Certificate {
					t.Fatal("the repeated poll got another certificate")
				}
			})
		}
	})
}

// tamper flips the last byte of a PEM CSR's DER, which lies in the
// signature, and returns the base64 of the PEM.
func tamper(t *testing.T, p []byte) string {
	t.Helper()
	block, _ := pem.Decode(p)
	der := bytes.Clone(block.Bytes)
	der[len(der)-1] ^= 0x01
	if _, err := x509.ParseCertificateRequest(der); err != nil {
		t.Fatalf("tampered CSR no longer parses: %v", err)
	}
	return base64.StdEncoding.EncodeToString(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

func TestRegistryCSRRefused(t *testing.T) {
	t.Parallel()
	stores(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		e.open(time.Hour)
		const name = "dev-csr"
		for _, c := range []struct {
			name string
			csr  string
		}{
			{"RSA 1024", csrB64(t, rsa1024(), name)},
			{"ECDSA P-224", csrB64(t, ecKey(t, elliptic.P224()), name)},
			{"common name of another user", csrB64(t, ecKey(t, elliptic.P256()), "someone-else")},
			{"garbage base64", "bm90IGEgY3Ny!!!$$$"},
			{"base64 of no PEM", base64.StdEncoding.EncodeToString([]byte("hello world"))},
			{"a certificate instead of a CSR", base64.StdEncoding.EncodeToString(e.ca.CertPEM())},
			{"a tampered signature (Ed25519)", tamper(t, csrPEM(t, edKey(t), name, "x"))},
			{"a tampered signature (RSA)", tamper(t, csrPEM(t, rsa2048(), name, "x"))},
		} {
			t.Run(c.name, func(t *testing.T) {
				e := e.in(t)
				e.refused(registry.Request{Username: name, CSR: c.csr}, registry.ErrInvalid)
				e.refused(registry.Request{Username: name, CSR: c.csr, Password: devicePW}, registry.ErrInvalid)
				e.noRequest(name)
			})
		}
		// Without a CA, CSRs are refused too.
		noCA := newEnv(t, st, func(o *registry.Options) { o.CA = nil })
		noCA.refused(registry.Request{Username: name, CSR: csrB64(t, ecKey(t, elliptic.P256()), name)}, registry.ErrInvalid)
	})
}

func TestRegistryCSRPollKey(t *testing.T) {
	t.Parallel()
	stores(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		e.open(time.Hour)
		const name = "dev-key"
		keyA, keyB := ecKey(t, elliptic.P256()), ecKey(t, elliptic.P256())
		first := registry.Request{Username: name, CSR: csrB64(t, keyA, name)}
		e.pending(first)
		stored := e.request(name)

		e.refused(registry.Request{Username: name, CSR: csrB64(t, keyB, name)}, registry.ErrConflict)
		e.refused(registry.Request{Username: name, Password: devicePW}, registry.ErrConflict)
		if q := e.request(name); !bytes.Equal(q.CSR, stored.CSR) || q.Fingerprint != stored.Fingerprint {
			t.Fatal("a poll with another key changed the stored request")
		}
		// A fresh CSR for the same key is the same device.
		fresh := registry.Request{Username: name, CSR: base64.StdEncoding.EncodeToString(csrPEM(t, keyA, name, "fresh"))}
		if fresh.CSR == first.CSR {
			t.Fatal("the fresh CSR is byte-identical")
		}
		e.pending(fresh)
		e.confirm(name, registry.Grant{})
		res := e.granted(registry.Request{Username: name, CSR: base64.StdEncoding.EncodeToString(csrPEM(t, keyA, name, "fresher"))})
		e.checkCert(res, name, keyA.Public())
		e.refused(registry.Request{Username: name, CSR: csrB64(t, keyB, name)}, registry.ErrConflict)
	})
}

// ---- auto-grant ----

func TestRegistryAutoGrant(t *testing.T) {
	t.Parallel()
	stores(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st, func(o *registry.Options) { o.AutoGrantRoles = []string{"line-a"} })
		line := e.role("line-a", mqttPerm("plant/a/#", acl.OpWrite))

		// Auto-grant never bypasses the lock.
		e.refused(registry.Request{Username: "dev-1", Password: devicePW}, registry.ErrLocked)
		e.noUser("dev-1")

		e.open(time.Hour)
		req := registry.Request{Username: "dev-1", Password: devicePW, Roles: []string{"powerful"}}
		if res := e.granted(req); res.Certificate != "" {
			t.Fatalf("password auto-grant: %+v", res)
		}
		u := e.user("dev-1")
		if len(u.Roles) != 2 || u.Roles[1] != line.ID || !verifies(t, devicePW, u.PasswordHash) {
			t.Fatalf("auto-granted user %+v, want its own role and line-a %s", u, line.ID)
		}
		e.granted(req)
		e.refused(registry.Request{Username: "dev-1", Password: otherPW}, registry.ErrConflict)

		key := ecKey(t, elliptic.P384())
		res := e.granted(registry.Request{Username: "dev-2", CSR: csrB64(t, key, "dev-2")})
		e.checkCert(res, "dev-2", key.Public())

		if got := e.reg.ConnectAttempt(e.ctx, "dev-3", []byte(devicePW), nil); got != registry.Granted {
			t.Fatalf("connect attempt with auto-grant: %v, want Granted", got)
		}
		u3 := e.user("dev-3")
		if len(u3.Roles) != 2 || u3.Roles[1] != line.ID || !verifies(t, devicePW, u3.PasswordHash) {
			t.Fatalf("auto-granted implicit user %+v", u3)
		}
		e.noRequest("dev-3")
	})
}

// An auto-grant that cannot be applied (its role is missing) leaves the
// request pending for an admin, in both flows, instead of failing the
// device's registration.
func TestRegistryAutoGrantMissingRole(t *testing.T) {
	t.Parallel()
	stores(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st, func(o *registry.Options) { o.AutoGrantRoles = []string{"not-created"} })
		e.open(time.Hour)
		req := registry.Request{Username: "dev-1", Password: devicePW}
		e.pending(req)
		e.pending(req)
		if got := e.reg.ConnectAttempt(e.ctx, "dev-2", []byte(devicePW), nil); got != registry.Pending {
			t.Fatalf("connect attempt: %v, want Pending", got)
		}
		e.noUser("dev-1")
		e.noUser("dev-2")
		if n := e.names(); !slices.Equal(n, []string{"dev-1", "dev-2"}) {
			t.Fatalf("requests %v, want both pending", n)
		}
		e.confirm("dev-1", registry.Grant{})
		e.granted(req)
	})
}

// ---- implicit flow ----

func TestRegistryConnectAttempt(t *testing.T) {
	t.Parallel()
	stores(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		const name, pw = "sensor-42", "sensor-plain-password-42"
		if got := e.reg.ConnectAttempt(e.ctx, name, []byte(pw), nil); got != registry.NotRecorded {
			t.Fatalf("locked: %v, want NotRecorded", got)
		}
		e.noRequest(name)

		e.open(time.Hour)
		for _, c := range []struct {
			name, user, pw string
		}{
			{"a weak password", "sensor-weak", "short"},
			{"an invalid username", "s/x", pw},
			{"no credential", "sensor-none", ""},
		} {
			if got := e.reg.ConnectAttempt(e.ctx, c.user, []byte(c.pw), nil); got != registry.NotRecorded {
				t.Fatalf("%s: %v, want NotRecorded", c.name, got)
			}
			e.noRequest(c.user)
		}

		if got := e.reg.ConnectAttempt(e.ctx, name, []byte(pw), nil); got != registry.Pending {
			t.Fatalf("open: %v, want Pending", got)
		}
		q := e.request(name)
		if q.Flow != registry.FlowImplicit || q.CredentialType != registry.CredentialPassword || q.Granted ||
			q.PasswordHash == "" || q.PasswordHash == pw || !verifies(t, pw, q.PasswordHash) {
			t.Fatalf("implicit request %+v", q)
		}
		snap, err := st.Snapshot(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := json.Marshal(snap)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(raw, []byte(pw)) || !bytes.Contains(raw, []byte(name)) {
			t.Fatal("the snapshot holds the plain password (or not the request)")
		}

		e.clock.Advance(time.Second)
		if got := e.reg.ConnectAttempt(e.ctx, name, []byte(pw), nil); got != registry.Pending {
			t.Fatalf("second attempt: %v, want Pending", got)
		}
		if got := e.reg.ConnectAttempt(e.ctx, name, []byte(otherPW), nil); got != registry.Pending {
			t.Fatalf("attempt with another password: %v, want Pending", got)
		}
		if q2 := e.request(name); q2.PasswordHash != q.PasswordHash || !q2.Timestamp.Equal(q.Timestamp) {
			t.Fatalf("repeated attempts rewrote the request: %+v", q2)
		}
		// The explicit flow cannot take an implicit request over.
		e.refused(registry.Request{Username: name, Password: pw}, registry.ErrConflict)

		e.confirm(name, registry.Grant{Permissions: []acl.Permission{mqttPerm("sensors/42/#", acl.OpWrite)}})
		u := e.user(name)
		if !verifies(t, pw, u.PasswordHash) || !slices.Equal(u.GrantTypes, []store.GrantType{{Method: store.GrantPassword}}) || len(u.Roles) != 1 {
			t.Fatalf("user %+v", u)
		}
		e.noRequest(name)
	})
}

func TestRegistryConnectAttemptCertificate(t *testing.T) {
	t.Parallel()
	stores(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		e.open(time.Hour)
		key := ecKey(t, elliptic.P256())
		cert, _, err := e.ca.IssueClient(key.Public(), "cam-7", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		// A certificate for another name is not this device's credential.
		if got := e.reg.ConnectAttempt(e.ctx, "cam-8", nil, cert); got != registry.NotRecorded {
			t.Fatalf("certificate CN mismatch: %v", got)
		}
		if got := e.reg.ConnectAttempt(e.ctx, "cam-7", nil, cert); got != registry.Pending {
			t.Fatalf("certificate attempt: %v", got)
		}
		q := e.request("cam-7")
		if q.CredentialType != registry.CredentialCertificate || q.Fingerprint != pki.Fingerprint(cert.Raw) || q.PasswordHash != "" {
			t.Fatalf("implicit certificate request %+v", q)
		}
		e.confirm("cam-7", registry.Grant{})
		u := e.user("cam-7")
		if u.PasswordHash != "" || len(u.Certificates) != 1 || u.Certificates[0].Fingerprint != pki.Fingerprint(cert.Raw) ||
			!slices.Equal(u.GrantTypes, []store.GrantType{{Method: store.GrantCertificate}}) {
			t.Fatalf("user %+v", u)
		}
	})
}

// ---- limits ----

func TestRegistryMaxPending(t *testing.T) {
	t.Parallel()
	stores(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st, func(o *registry.Options) { o.MaxPending = 2 })
		e.open(time.Hour)
		e.pending(registry.Request{Username: "dev-1", Password: devicePW})
		if got := e.reg.ConnectAttempt(e.ctx, "dev-2", []byte(devicePW), nil); got != registry.Pending {
			t.Fatalf("connect attempt: %v", got)
		}
		e.refused(registry.Request{Username: "dev-3", Password: devicePW}, registry.ErrFull)
		if got := e.reg.ConnectAttempt(e.ctx, "dev-4", []byte(devicePW), nil); got != registry.NotRecorded {
			t.Fatalf("connect attempt when full: %v", got)
		}
		e.noRequest("dev-3")
		e.noRequest("dev-4")
		e.pending(registry.Request{Username: "dev-1", Password: devicePW}) // polls still answer

		// Once the retention drops the granted request, there is room again.
		e.confirm("dev-1", registry.Grant{})
		e.refused(registry.Request{Username: "dev-3", Password: devicePW}, registry.ErrFull)
		e.clock.Advance(retention + time.Second)
		e.pending(registry.Request{Username: "dev-3", Password: devicePW})

		if err := e.reg.Lock(e.ctx); err != nil {
			t.Fatal(err)
		}
		e.open(time.Hour)
		e.pending(registry.Request{Username: "dev-5", Password: devicePW})
		e.pending(registry.Request{Username: "dev-6", Password: devicePW})
	})
}

// A device that repeats its first request before the first answer came
// back (a client retry) is polling, not conflicting; another password
// racing for the same name is a conflict, and exactly one request wins.
func TestRegistryConcurrentFirstRequests(t *testing.T) {
	t.Parallel()
	stores(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		e.open(time.Hour)
		const n = 8
		run := func(req func(i int) registry.Request) []error {
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					res, err := e.reg.Register(e.ctx, req(i))
					if err == nil && res.Granted {
						err = errors.New("granted")
					}
					errs[i] = err
				})
			}
			wg.Wait()
			return errs
		}
		for i, err := range run(func(int) registry.Request { return registry.Request{Username: "dev-same", Password: devicePW} }) {
			if err != nil {
				t.Errorf("identical request %d: %v, want pending", i, err)
			}
		}
		won := 0
		for i, err := range run(func(i int) registry.Request {
			return registry.Request{Username: "dev-race", Password: fmt.Sprintf("%s-%d", devicePW, i)}
		}) {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, registry.ErrConflict):
				t.Errorf("racing request %d: %v, want pending or ErrConflict", i, err)
			}
		}
		if won != 1 {
			t.Fatalf("%d racing requests with different passwords were accepted, want 1", won)
		}
	})
}

// Two admins confirming the same request at once create one user.
func TestRegistryConcurrentConfirm(t *testing.T) {
	t.Parallel()
	stores(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		e.open(time.Hour)
		e.pending(registry.Request{Username: "dev-1", CSR: csrB64(t, ecKey(t, elliptic.P256()), "dev-1")})
		const n = 4
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { _, errs[i] = e.reg.Confirm(e.ctx, "dev-1", registry.Grant{}) })
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			if err == nil {
				ok++
			} else if !errors.Is(err, registry.ErrConflict) && !errors.Is(err, store.ErrConflict) {
				t.Errorf("concurrent confirm: %v, want success or a conflict", err)
			}
		}
		if ok != 1 {
			t.Fatalf("%d concurrent confirms succeeded, want 1", ok)
		}
		u := e.user("dev-1")
		q := e.request("dev-1")
		if !q.Granted || len(u.Certificates) != 1 {
			t.Fatalf("user %+v, request %+v", u, q)
		}
		block, _ := pem.Decode(q.Result)
		if block == nil {
			t.Fatalf("granted request holds no PEM certificate: %q", q.Result)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil || pki.Fingerprint(cert.Raw) != u.Certificates[0].Fingerprint {
			t.Fatalf("the certificate returned to the device is not the one registered on the user (%v)", err)
		}
	})
}
