package admin_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"golang.org/x/text/unicode/norm"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/admin"
	"github.com/warden-mqtt/warden/audit"
	"github.com/warden-mqtt/warden/pki"
	"github.com/warden-mqtt/warden/registry"
	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

// Gaps a review of the issue 14 hardening found, each reproduced as the
// attacker would run it over HTTP (and MQTT where the token is used
// there): a user holding part of the admin API takes over an admin's
// second factor, the whole model through a restore, the keys through a
// backup, any account through a CA of its own or through a rename; an
// unbounded username fills the log; a login token a failed revocation
// left behind still works; every change of a user scans all users.

// as is a copy of a whose requests made with a.admin carry token, so the
// helpers written for the admin (bUpload, bBackup) run as another caller.
func as(a *api, token string) *api {
	b := *a
	b.admin = token
	return &b
}

// TestReviewMFAKeyOfAnotherUserNeedsTakeover: a helpdesk user with write
// on /api/v1/user/# (and /api/users/#) deletes the admin's MFA key, which
// resets the admin's second factor as {"disableMfa": true} would. It is
// refused like that reset (403, the takeover rule); another user's key it
// may delete when that user holds nothing the helpdesk lacks.
func TestReviewMFAKeyOfAnotherUserNeedsTakeover(t *testing.T) {
	t.Parallel()
	mBackends(t, func(t *testing.T, m *mEnv) {
		adminID := uAdminID(t, m.api)
		key, _ := m.t2Enroll(m.admin, "admin", adminPassword)
		_, _, helpdesk := eUser(t, m.api, "helpdesk", nil, httpPerm("/api/users/#", "readWrite"), httpPerm("/api/v1/user/#", "readWrite"))

		eRefused(t, m.api, helpdesk, "PUT", "/api/users/"+adminID, map[string]any{"disableMfa": true}, `cannot change how "admin" logs in`)
		eRefused(t, m.api, helpdesk, "DELETE", "/api/v1/user/"+adminID+"/mfa/"+key.ID, nil, `cannot change how "admin" logs in: it holds role connectware-admin`)
		if keys := m.t2Keys(m.admin, "my"); len(keys) != 1 || keys[0].ID != key.ID {
			t.Fatalf("the admin's keys after the refused delete: %+v", keys)
		}
		if m.t2LoginWithoutCode("admin", adminPassword, "") {
			t.Fatal("the admin logs in with its password alone after the refused delete")
		}

		// A user holding only what the helpdesk holds: its lost phone is
		// the helpdesk's to reset.
		plainID, _, plain := eUser(t, m.api, "plain", nil)
		plainKey, _ := m.t2Enroll(plain, "plain", rPassword)
		eAllowed(t, m.api, helpdesk, "DELETE", "/api/v1/user/"+plainID+"/mfa/"+plainKey.ID, nil, http.StatusNoContent)
		if !m.t2LoginWithoutCode("plain", rPassword, "") {
			t.Fatal("plain still needs a code after its only key was deleted")
		}
	})
}

// TestReviewRestoreAndKeysNeedAdmin: a user with readWrite on
// /api/maintenance/# (and nothing else) restores an archive in which it
// holds connectware-admin, backs up the keys, or downloads the admin's
// backup with keys (token signing keys: any token for anyone). Each is
// refused with 403 naming connectware-admin; a backup without keys stays
// its to take and download.
func TestReviewRestoreAndKeysNeedAdmin(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, a *api) {
		ctx := context.Background()
		id, _, tok := eUser(t, a, "mallory", nil, httpPerm("/api/maintenance/#", "readWrite"))
		mallory := as(a, tok)
		adminRole := uRoleID(t, a, admin.RoleAdmin)

		snap := bSnapshot(t, a.st)
		for i := range snap.Users {
			if snap.Users[i].ID == id {
				snap.Users[i].Roles = append(snap.Users[i].Roles, adminRole)
			}
		}
		code, body := bUpload(mallory, rsArchive(t, snap), false)
		if code != http.StatusForbidden || !strings.Contains(string(body), "only a holder of connectware-admin may restore a backup") {
			t.Fatalf("restore by mallory: %d %s, want 403 naming connectware-admin", code, body)
		}
		if st := bWaitIdle(a); st.Restore != nil {
			t.Fatalf("a restore ran: %+v", st.Restore)
		}
		if u, err := a.st.User(ctx, id); err != nil || slices.Contains(u.Roles, adminRole) {
			t.Fatalf("mallory after the refused restore: %+v %v", u.Roles, err)
		}

		eRefused(t, a, tok, "POST", "/api/maintenance/db/backup?includeKeys=true", nil, "only a holder of connectware-admin may back up the keys")
		if st := bWaitIdle(a); st.Backup != nil {
			t.Fatalf("a backup ran: %+v", st.Backup)
		}
		bBackup(a, "?includeKeys=true")
		eRefused(t, a, tok, "GET", "/api/maintenance/db/backup", nil, "only a holder of connectware-admin may download a backup that holds the keys")

		// Without keys: Connectware's backup page permissions suffice.
		if _, archive := bBackup(mallory, ""); len(archive) == 0 {
			t.Fatal("empty archive")
		}
	})
}

// TestReviewTrustedCertificatesNeedAdmin: a user with write on
// /api/certificates adds a CA of its own, with which it could sign a
// client certificate whose CN is any user with the certificate grant, an
// admin included: refused (403), and the CA is not trusted. A helpdesk
// with write on /api/users/# unpins the admin's certificate fingerprint
// (so any trusted certificate named admin would log in): refused like
// pinning one (the takeover rule).
func TestReviewTrustedCertificatesNeedAdmin(t *testing.T) {
	t.Parallel()
	a := newAPI(t, storetest.OpenBolt(t))
	_, _, mallory := eUser(t, a, "mallory", nil, httpPerm("/api/certificates", "readWrite"))
	ca := cCA(t, "mallory CA")
	eRefused(t, a, mallory, "POST", "/api/certificates", ca.pem(), "only a holder of connectware-admin may add trusted certificates")
	if slices.Contains(cIDs(cList(t, a)), ca.id()) {
		t.Fatal("mallory's CA is trusted")
	}
	if code, b := cPost(t, a, "application/x-pem-file", []byte(ca.pem())); code != http.StatusCreated {
		t.Fatalf("the admin adds the CA: %d %s", code, b)
	}

	adminID := uAdminID(t, a)
	_, fp := uFingerprint(7)
	a.must("POST", "/api/users/"+adminID+"/certificates", map[string]any{"fingerprint": fp}, http.StatusCreated, nil)
	_, _, helpdesk := eUser(t, a, "helpdesk", nil, httpPerm("/api/users/#", "readWrite"))
	eRefused(t, a, helpdesk, "DELETE", "/api/users/"+adminID+"/certificates", map[string]any{"fingerprint": fp}, `cannot change how "admin" logs in`)
	if got := uGet(t, a, adminID).Certificates; len(got) != 1 {
		t.Fatalf("the admin's pinned certificates after the refused removal: %+v", got)
	}
	plainID, _ := rCreateUser(t, a, "plain", nil)
	a.must("POST", "/api/users/"+plainID+"/certificates", map[string]any{"fingerprint": fp}, http.StatusCreated, nil)
	eAllowed(t, a, helpdesk, "DELETE", "/api/users/"+plainID+"/certificates", map[string]any{"fingerprint": fp}, http.StatusOK)
}

// countingWriter counts what the server logs.
type countingWriter struct{ n atomic.Int64 }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n.Add(int64(len(p)))
	return len(p), nil
}

// TestReviewLongUsernameLogin: a login naming a 60 KB username (it fits
// the public body cap) is refused with the answer any unknown user gets,
// and neither the log nor the audit trail takes more than a clipped name
// (an 800 KB one used to write 800 KB to the log). A decomposed spelling
// of a long stored name, longer than 256 bytes, still logs in.
func TestReviewLongUsernameLogin(t *testing.T) {
	t.Parallel()
	logs, trail := &countingWriter{}, &mLog{}
	clock := &mClock{t: mEpoch}
	a := newAPI(t, storetest.OpenBolt(t), func(o *admin.Options) {
		o.Logger = slog.New(slog.NewJSONHandler(logs, nil))
		o.Audit = audit.New(trail)
		o.MFAEnabled = true
		o.Now = clock.now
	})
	long := strings.Repeat("é", 30_000) // 60,000 bytes

	_, unknown := a.do("POST", "/api/login", "", map[string]any{"username": "nobody-at-all", "password": "some-password-1"})
	before := logs.n.Load()
	for _, c := range []struct {
		path string
		body map[string]any
		want int
	}{
		{"/api/login", map[string]any{"username": long, "password": "some-password-1"}, http.StatusForbidden},
		{"/api/oauth2", map[string]any{"username": long, "password": "some-password-1"}, http.StatusForbidden},
		{"/api/v1/authenticate", map[string]any{"username": long, "password": "some-password-1"}, http.StatusUnauthorized},
		{"/api/mfa/login", map[string]any{"username": long, "secret": "x", "otp": "123456"}, http.StatusUnauthorized},
	} {
		code, b := a.do("POST", c.path, "", c.body)
		if code != c.want {
			t.Fatalf("%s with a 60 KB username: %d %s, want %d", c.path, code, b, c.want)
		}
		if c.path == "/api/login" && !bytes.Equal(b, unknown) {
			t.Fatalf("answer %s, want an unknown user's %s", b, unknown)
		}
	}
	if n := logs.n.Load() - before; n > 4<<10 {
		t.Fatalf("4 logins with a 60 KB username wrote %d bytes to the log", n)
	}
	var refused int
	for _, r := range auditRecords(t, trail) {
		if u, _ := r["user"].(string); strings.HasPrefix(u, "éé") {
			refused++
			if len(u) > 100 {
				t.Fatalf("audit record with a %d-byte username", len(u))
			}
		}
	}
	if refused != 4 {
		t.Fatalf("%d audit records of the refused logins, want 4", refused)
	}

	// Legitimate: a stored name of 200 bytes, typed decomposed (300 bytes).
	name := strings.Repeat("é", 100)
	sCreateUser(t, a, name, "long-name-password-1", admin.RoleMinimum)
	a.login(norm.NFD.String(name), "long-name-password-1")
}

// TestReviewPublicBodyCap: a body over 64 KiB on a route that needs no
// token (a 70 KB login) is 413 before it is read further; a registration
// with a CSR of a 4096-bit RSA key, the largest a device sends, fits that
// cap, and routes with a token keep the 1 MiB cap.
func TestReviewPublicBodyCap(t *testing.T) {
	t.Parallel()
	a := newAPI(t, storetest.OpenBolt(t))
	for _, path := range []string{"/api/login", "/api/v1/authenticate", "/api/client-registry/register"} {
		code, b := a.do("POST", path, "", map[string]any{"username": strings.Repeat("a", 70_000), "password": "some-password-1"})
		if code != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), "larger than 65536 bytes") {
			t.Fatalf("%s with a 70 KB body: %d %s, want 413 naming the 65536-byte limit", path, code, b)
		}
	}
	key, err := rsa.GenerateKey(rand.Reader, 4096)
	if err != nil {
		t.Fatal(err)
	}
	gOpen(t, a, map[string]any{"duration": 60000})
	gWant(t, a, map[string]any{"username": "dev-rsa", "csr": gCSR(t, key, "dev-rsa"), "context": strings.Repeat("s", 1024)}, http.StatusAccepted)
	// 100 KiB of permissions on a route with a token: read, not refused
	// for its size.
	perms := make([]rPerm, 0, 2000)
	for i := range cap(perms) {
		perms = append(perms, mqttPermOf(fmt.Sprintf("plant1/line-%04d/station/#", i), "read"))
	}
	body, _ := json.Marshal(map[string]any{"username": "many-perms", "password": rPassword, "initialPermissions": perms})
	if len(body) < 100<<10 {
		t.Fatalf("body of %d bytes, want over 100 KiB", len(body))
	}
	if code, b := a.do("POST", "/api/users", a.admin, body); code != http.StatusCreated {
		t.Fatalf("POST /api/users with %d bytes: %d %s, want 201", len(body), code, b)
	}
}

// TestReviewRenameWithUsernamePlaceholder: a user holding {username}/#
// and write on /api/users/+ renames itself, or another user it may
// change, to plant1 and so gains plant1/#. Refused (403 naming the
// placeholder) unless the caller holds connectware-admin; creating a user
// named plant2 holding {username}/# stays allowed (placeholders are
// compared as written), and so does renaming a user whose permissions
// name no placeholder.
func TestReviewRenameWithUsernamePlaceholder(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, a *api) {
		mine := mqttPermOf("{username}/#", "readWrite")
		malloryID, _, tok := eUser(t, a, "mallory", nil, httpPerm("/api/users/#", "readWrite"), mine)
		eRefused(t, a, tok, "PUT", "/api/users/"+malloryID, map[string]any{"username": "plant1"},
			`cannot rename "mallory": its permission readWrite on mqtt {username}/# uses {username}`)
		devID, _ := rCreateUser(t, a, "dev-7", nil, mine)
		eRefused(t, a, tok, "PUT", "/api/users/"+devID, map[string]any{"username": "plant1"},
			`cannot rename "dev-7": its permission readWrite on mqtt {username}/# uses {username}`)
		ops := rCreateRole(t, a, "device-base", true, httpPerm("/api/users/{username}", "read"))
		viaRoleID, _ := rCreateUser(t, a, "dev-8", []string{ops.ID})
		eRefused(t, a, tok, "PUT", "/api/users/"+viaRoleID, map[string]any{"username": "plant1"}, "uses {username}")
		if names := uUsernames(t, a); names["plant1"] != "" {
			t.Fatal("a refused rename took effect")
		}

		eAllowed(t, a, tok, "POST", "/api/users", map[string]any{"username": "plant2", "password": rPassword,
			"initialPermissions": []rPerm{mine}}, http.StatusCreated)
		plainID, _ := rCreateUser(t, a, "plain", nil)
		eAllowed(t, a, tok, "PUT", "/api/users/"+plainID, map[string]any{"username": "plain-2"}, http.StatusOK)
		a.must("PUT", "/api/users/"+devID, map[string]any{"username": "plant1"}, http.StatusOK, nil)
	})
}

// TestReviewStaleLoginTokenRefused: a password change whose revocation
// did not reach the store (the client went away, the store blinked)
// leaves the stolen login token's record behind; simulated by writing it
// back through the store. The token is refused over HTTP (401, and
// validateToken says revoked) and as an MQTT password (0x86), while the
// session that changed the password and the application session go on.
func TestReviewStaleLoginTokenRefused(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, a *api) {
		ctx := context.Background()
		kCreateUser(t, a, "operator", "operator-pass-1", acl.Permission{Resource: "op/#", Operation: acl.OpReadWrite, Context: acl.ContextMQTT})
		mine, stolen, _, appSession := pwTokens(t, a)
		claims, err := a.tokens.Parse(stolen)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := a.st.Token(ctx, claims.TokenID)
		if err != nil {
			t.Fatal(err)
		}
		a.mustAs(mine, "PUT", "/api/users/change-password", map[string]any{"password": "operator-pass-1", "newPassword": "operator-pass-2"}, http.StatusNoContent, nil)

		snap := bSnapshot(t, a.st)
		snap.Tokens = append(snap.Tokens, rec)
		if err := a.st.Restore(ctx, snap); err != nil {
			t.Fatal(err)
		}
		if _, err := a.st.Token(ctx, rec.ID); err != nil {
			t.Fatalf("the stolen token's record was not written back: %v", err)
		}

		if code := pwSession(a, stolen); code != http.StatusUnauthorized {
			t.Fatalf("the stolen login token of the old password over HTTP: %d, want 401", code)
		}
		if got := kValidate(t, a, a.admin, stolen); got["valid"] != false || got["reason"] != "revoked" {
			t.Fatalf("validateToken of the stolen token: %v, want revoked", got)
		}
		addr := bNode(t, a.st)
		if code := rvConnect(t, addr, "operator", stolen); code != 0x86 {
			t.Fatalf("CONNECT with the stolen login token: 0x%02x, want 0x86", code)
		}
		for name, tok := range map[string]string{"the session that changed the password": mine, "the application session": appSession} {
			if code := pwSession(a, tok); code != http.StatusOK {
				t.Fatalf("%s: %d, want 200", name, code)
			}
			if code := rvConnect(t, addr, "operator", tok); code != 0 {
				t.Fatalf("CONNECT with %s: 0x%02x, want 0", name, code)
			}
		}
	})
}

// rvConnect connects an MQTT 5 client and returns the CONNACK's reason
// code (the client disconnects at the end of the test).
func rvConnect(t *testing.T, addr, username, password string) byte {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	c := paho.NewClient(paho.ClientConfig{Conn: conn})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ca, err := c.Connect(ctx, &paho.Connect{ClientID: username + "-" + password[len(password)-8:], KeepAlive: 30, CleanStart: true,
		Username: username, UsernameFlag: true, Password: []byte(password), PasswordFlag: true})
	if ca == nil {
		t.Fatalf("connect %s: no CONNACK: %v", username, err)
	}
	if ca.ReasonCode == 0 {
		t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	}
	return ca.ReasonCode
}

// scanCounting is a store whose transactions count how often they read
// every user (Tx.Users), to see what a change of one user costs.
type scanCounting struct {
	store.Store
	scans atomic.Int64
}

func (s *scanCounting) Atomic(ctx context.Context, fn func(store.Tx) error) error {
	return s.Store.Atomic(ctx, func(tx store.Tx) error { return fn(scanCountingTx{tx, &s.scans}) })
}

type scanCountingTx struct {
	store.Tx
	scans *atomic.Int64
}

func (tx scanCountingTx) Users() ([]store.User, error) {
	tx.scans.Add(1)
	return tx.Tx.Users()
}

// TestReviewUserChangeReadsOnlyItsUsers: changing, suspending or deleting
// a user that is no admin, on a fleet where devices are users, reads that
// user, not every user (which on Redis also makes any concurrent user
// write rerun the change). Only a change that takes an active admin away
// reads the others, to find the next admin; the last one is still kept.
func TestReviewUserChangeReadsOnlyItsUsers(t *testing.T) {
	t.Parallel()
	for name, open := range map[string]func(testing.TB, ...storetest.Option) store.Store{"bolt": storetest.OpenBolt, "redis": storetest.OpenRedis} {
		t.Run(name, func(t *testing.T) { testUserChangeReadsOnlyItsUsers(t, open(t)) })
	}
}

func testUserChangeReadsOnlyItsUsers(t *testing.T, real store.Store) {
	st := &scanCounting{Store: real}
	b := newAPI(t, st)
	devs := make([]string, 0, 20)
	for i := range cap(devs) {
		id, _ := rCreateUser(t, b, "device-"+string(rune('a'+i)), nil)
		devs = append(devs, id)
	}
	st.scans.Store(0)
	b.must("PUT", "/api/users/"+devs[0], map[string]any{"mqttPublishPrefix": "plant1/"}, http.StatusOK, nil)
	b.must("PUT", "/api/users/"+devs[1], map[string]any{"suspended": true}, http.StatusOK, nil)
	b.must("DELETE", "/api/users/"+devs[2], nil, http.StatusOK, nil)
	b.must("POST", "/api/users/batch/delete", devs[3:5], http.StatusOK, nil)
	if n := st.scans.Load(); n != 0 {
		t.Fatalf("4 changes of devices read every user %d times, want 0", n)
	}

	adminRole := uRoleID(t, b, admin.RoleAdmin)
	second, _ := rCreateUser(t, b, "admin2", []string{adminRole})
	b.must("PUT", "/api/users/"+second, map[string]any{"suspended": true}, http.StatusOK, nil)
	if st.scans.Load() == 0 {
		t.Fatal("suspending an admin did not look for another one")
	}
	b.must("DELETE", "/api/users/"+second, nil, http.StatusOK, nil)
	b.must("DELETE", "/api/users/"+uAdminID(t, b), nil, http.StatusConflict, nil)
}

// rvFullRegistry is a second server on a's store and tokens whose client
// registry runs on clock and holds at most maxPending requests.
func rvFullRegistry(t *testing.T, a *api, clock *gClock, maxPending int) *api {
	t.Helper()
	ca, err := pki.LoadOrCreateCA(context.Background(), a.st, pki.DefaultCAName)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(registry.Options{Store: a.st, CA: ca, Params: fastParams, Logger: slog.New(slog.DiscardHandler),
		Now: clock.Now, MaxPending: maxPending})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := admin.New(admin.WithRegistryAndTrust(t, admin.Options{Store: a.st, Tokens: a.tokens, Params: fastParams, Logger: slog.New(slog.DiscardHandler), Registry: reg}))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	b := *a
	b.url, b.srv = hs.URL, srv
	return &b
}
