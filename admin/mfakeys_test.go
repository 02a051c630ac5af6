package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/warden-mqtt/warden/admin"
)

// t2Node starts another server on a's store (another node, in effect)
// with the clock and a debug log; opts sets the options under test (MFA
// on or off, trusted-device days).
func t2Node(t *testing.T, a *api, clock *mClock, opts func(*admin.Options)) *mEnv {
	t.Helper()
	logs := &mLog{}
	o := admin.Options{
		Store: a.st, Tokens: a.tokens, Params: fastParams, Now: clock.now,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	opts(&o)
	srv, err := admin.New(admin.WithRegistryAndTrust(t, o))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	b := *a
	b.t, b.url, b.srv = t, hs.URL, srv
	b.admin = b.login("admin", adminPassword)
	return &mEnv{api: &b, clock: clock, logs: logs}
}

type t2Lookup struct {
	ID          int    `json:"id"`
	Description string `json:"description"`
}

// t2Key is an MFA key as the v1 API shows it; SecretKey and OTPAuth only
// in the answer that created it.
type t2Key struct {
	ID             string     `json:"id"`
	Status         t2Lookup   `json:"status"`
	Type           t2Lookup   `json:"type"`
	SecretKey      string     `json:"secret_key"`
	OTPAuth        string     `json:"otpauth"`
	CreationDate   time.Time  `json:"creation_date"`
	ActivationDate *time.Time `json:"activation_date"`
}

var (
	t2Pending = t2Lookup{0, "activation pending"}
	t2Active  = t2Lookup{1, "active"}
	t2TOTP    = t2Lookup{1, "TOTP"}
)

// t2Create creates a key for the user holding token and checks the
// answer: pending, TOTP, created now, not activated, and a secret_key
// that is the otpauth URI's secret. extra adds fields to the request (the
// code an enrolled user needs).
func (m *mEnv) t2Create(token, username, password string, extra ...map[string]any) t2Key {
	m.t.Helper()
	t := m.t.(*testing.T)
	body := map[string]any{"type": map[string]any{"id": 1}, "password": password}
	for _, e := range extra {
		for k, v := range e {
			body[k] = v
		}
	}
	code, b := m.do("POST", "/api/v1/user/mfa", token, body)
	if code != http.StatusCreated {
		t.Fatalf("create key: %d %s", code, b)
	}
	var k t2Key
	if err := json.Unmarshal(b, &k); err != nil {
		t.Fatal(err)
	}
	if k.ID == "" || k.Status != t2Pending || k.Type != t2TOTP || !k.CreationDate.Equal(m.clock.now()) ||
		!bytes.Contains(b, []byte(`"activation_date":null`)) {
		t.Fatalf("created key %s", b)
	}
	if s := mSecretOf(t, k.OTPAuth, username); s != k.SecretKey {
		t.Fatalf("secret_key %q is not the otpauth secret %q", k.SecretKey, s)
	}
	return k
}

// t2Activate sends PATCH /api/v1/user/mfa/{id} with code.
func (m *mEnv) t2Activate(token, keyID, code string) (int, []byte) {
	m.t.Helper()
	return m.do("PATCH", "/api/v1/user/mfa/"+keyID, token, map[string]any{"status": map[string]any{"id": 1}, "code": code})
}

// t2Keys lists a user's keys ("my" for the caller's own).
func (m *mEnv) t2Keys(token, userID string) []t2Key {
	m.t.Helper()
	var keys []t2Key
	m.mustAs(token, "GET", "/api/v1/user/"+userID+"/mfa", nil, http.StatusOK, &keys)
	for _, k := range keys {
		if k.SecretKey != "" || k.OTPAuth != "" {
			m.t.Fatalf("key list shows a secret: %+v", k)
		}
	}
	return keys
}

// t2Enroll enrols the user through the v1 API (create, oathtool code,
// activate: 200 with 10 backup codes) and returns the key and the codes;
// the clock then moves a step, so the caller's next code is fresh.
func (m *mEnv) t2Enroll(token, username, password string) (t2Key, []string) {
	m.t.Helper()
	k := m.t2Create(token, username, password)
	var resp struct {
		BackupCodes []string `json:"backupCodes"`
	}
	m.mustAs(token, "PATCH", "/api/v1/user/mfa/"+k.ID, map[string]any{"status": map[string]any{"id": 1}, "code": m.mCode(k.SecretKey)}, http.StatusOK, &resp)
	if len(resp.BackupCodes) != 10 {
		m.t.Fatalf("first activation gave %d backup codes, want 10", len(resp.BackupCodes))
	}
	m.clock.advance(30 * time.Second)
	return k, resp.BackupCodes
}

// t2Login is POST /api/login, with a device token when one is given; it
// returns the decoded answer.
func (m *mEnv) t2Login(username, password, deviceToken string) map[string]any {
	m.t.Helper()
	body := map[string]any{"username": username, "password": password}
	if deviceToken != "" {
		body["deviceToken"] = deviceToken
	}
	var resp map[string]any
	m.mustAs("", "POST", "/api/login", body, http.StatusOK, &resp)
	return resp
}

// t2LoginWithoutCode reports whether a login with the device token gave a token at
// once (true) or asked for the MFA step (false).
func (m *mEnv) t2LoginWithoutCode(username, password, deviceToken string) bool {
	m.t.Helper()
	resp := m.t2Login(username, password, deviceToken)
	tok, _ := resp["token"].(string)
	switch {
	case resp["needsMfa"] == false && tok != "" && resp["secret"] == nil:
		return true
	case resp["needsMfa"] == true && tok == "":
		return false
	}
	m.t.Fatalf("login answer %v", resp)
	return false
}

// t2Trust completes an MFA login with a fresh code and trustDevice (extra
// adds fields, e.g. deviceName) and returns the login token and the device
// token. The clock then moves a step.
func (m *mEnv) t2Trust(username, password, secret string, extra map[string]any) (string, string) {
	m.t.Helper()
	body := map[string]any{"username": username, "secret": m.mChallenge(username, password), "otp": m.mCode(secret), "trustDevice": true}
	for k, v := range extra {
		body[k] = v
	}
	var resp struct {
		Token       string `json:"token"`
		DeviceToken string `json:"deviceToken"`
	}
	m.mustAs("", "POST", "/api/mfa/login", body, http.StatusOK, &resp)
	if resp.Token == "" || len(resp.DeviceToken) < 40 {
		m.t.Fatalf("mfa login with trustDevice: %+v", resp)
	}
	m.clock.advance(30 * time.Second)
	return resp.Token, resp.DeviceToken
}

type t2Device struct {
	ID             string    `json:"id"`
	Name           string    `json:"name"`
	CreationDate   time.Time `json:"creation_date"`
	ExpirationDate time.Time `json:"expiration_date"`
}

func (m *mEnv) t2Devices(token, userID string) []t2Device {
	m.t.Helper()
	var out []t2Device
	m.mustAs(token, "GET", "/api/v1/user/"+userID+"/mfa/trusted_device", nil, http.StatusOK, &out)
	return out
}

// t2Status checks a request's status and that an error answer is a JSON
// error with the same code.
func (m *mEnv) t2Status(token, method, path string, body any, want int) []byte {
	m.t.Helper()
	code, b := m.do(method, path, token, body)
	if code != want {
		m.t.Fatalf("%s %s: %d %s, want %d", method, path, code, b, want)
	}
	if want >= 400 && errorCode(m.t, b) != want {
		m.t.Fatalf("%s %s: error body %s, want code %d", method, path, b, want)
	}
	return b
}

// TestMFAKeysCreateActivateAndLogin: a key is created pending with its
// secret shown once; while pending it protects nothing; a code oathtool
// computes from secret_key activates it, which enrols the user (backup
// codes, isenrolled, logins need a code); the activation's code cannot
// log in afterwards.
func TestMFAKeysCreateActivateAndLogin(t *testing.T) {
	t.Parallel()
	mBackends(t, func(t *testing.T, m *mEnv) {
		u := sCreateUser(t, m.api, "operator", "operator-pass-1", "minimum-access")
		tok := m.login("operator", "operator-pass-1")
		k := m.t2Create(tok, "operator", "operator-pass-1")

		keys := m.t2Keys(tok, "my")
		if len(keys) != 1 || keys[0].ID != k.ID || keys[0].Status != t2Pending || keys[0].ActivationDate != nil {
			t.Fatalf("keys while pending: %+v", keys)
		}
		if m.mIsEnrolled(tok) || !m.t2LoginWithoutCode("operator", "operator-pass-1", "") {
			t.Fatal("a pending key protects logins")
		}

		m.clock.advance(10 * time.Second)
		activatedAt := m.clock.now()
		code := m.mCode(k.SecretKey)
		var resp struct {
			BackupCodes []string `json:"backupCodes"`
		}
		m.mustAs(tok, "PATCH", "/api/v1/user/mfa/"+k.ID, map[string]any{"status": map[string]any{"id": 1}, "code": code}, http.StatusOK, &resp)
		if len(resp.BackupCodes) != 10 {
			t.Fatalf("first activation: backup codes %v", resp.BackupCodes)
		}
		keys = m.t2Keys(tok, u.ID)
		if len(keys) != 1 || keys[0].Status != t2Active || keys[0].ActivationDate == nil || !keys[0].ActivationDate.Equal(activatedAt) {
			t.Fatalf("keys after activation: %+v", keys)
		}
		if !m.mIsEnrolled(tok) {
			t.Fatal("not enrolled after activating a key")
		}

		// The activation's code is spent; the next step's code logs in,
		// and so does a backup code of the activation.
		m.mRefused("operator", m.mChallenge("operator", "operator-pass-1"), mOTP(code), 401)
		m.clock.advance(30 * time.Second)
		m.mToken("operator", m.mChallenge("operator", "operator-pass-1"), mOTP(m.mCode(k.SecretKey)))
		m.mToken("operator", m.mChallenge("operator", "operator-pass-1"), mBackup(resp.BackupCodes[0]))

		// Activating it again is a conflict, whatever the code.
		m.clock.advance(30 * time.Second)
		code2, b := m.t2Activate(tok, k.ID, m.mCode(k.SecretKey))
		if code2 != http.StatusConflict || errorCode(t, b) != http.StatusConflict {
			t.Fatalf("activate an active key: %d %s", code2, b)
		}
	})
}

// TestMFAKeysActivationRefusals: a wrong code is 422 and leaves the key
// pending; so is a code of another key; malformed bodies are 400; keys of
// other users and unknown ids are 404; with MFA off the key endpoints
// answer 403.
func TestMFAKeysActivationRefusals(t *testing.T) {
	t.Parallel()
	mBackends(t, func(t *testing.T, m *mEnv) {
		sCreateUser(t, m.api, "operator", "operator-pass-1", "minimum-access")
		sCreateUser(t, m.api, "viewer", "viewer-pass-1", "minimum-access")
		tok := m.login("operator", "operator-pass-1")
		other := m.login("viewer", "viewer-pass-1")
		k := m.t2Create(tok, "operator", "operator-pass-1")
		k2 := m.t2Create(tok, "operator", "operator-pass-1")

		wrong := m.t2Status(tok, "PATCH", "/api/v1/user/mfa/"+k.ID, map[string]any{"status": map[string]any{"id": 1}, "code": "000000"}, 422)
		// A current code of the other key: a valid TOTP, but not this key's.
		if b := m.t2Status(tok, "PATCH", "/api/v1/user/mfa/"+k.ID, map[string]any{"status": map[string]any{"id": 1}, "code": m.mCode(k2.SecretKey)}, 422); !bytes.Equal(b, wrong) {
			t.Fatalf("another key's code answered %s, a wrong code %s", b, wrong)
		}
		for _, body := range []any{
			`{}`,
			map[string]any{"status": map[string]any{"id": 0}, "code": m.mCode(k.SecretKey)},
			map[string]any{"status": map[string]any{"id": 1}},
			map[string]any{"code": m.mCode(k.SecretKey)},
			map[string]any{"status": map[string]any{"id": 1}, "code": m.mCode(k.SecretKey), "password": "x"},
		} {
			m.t2Status(tok, "PATCH", "/api/v1/user/mfa/"+k.ID, body, 400)
		}
		m.t2Status(other, "PATCH", "/api/v1/user/mfa/"+k.ID, map[string]any{"status": map[string]any{"id": 1}, "code": m.mCode(k.SecretKey)}, 404)
		m.t2Status(tok, "PATCH", "/api/v1/user/mfa/no-such-key", map[string]any{"status": map[string]any{"id": 1}, "code": m.mCode(k.SecretKey)}, 404)
		if m.mIsEnrolled(tok) || m.t2Keys(tok, "my")[0].Status != t2Pending {
			t.Fatal("a refused activation changed the key")
		}

		off := t2Node(t, m.api, m.clock, func(o *admin.Options) { o.MFAEnabled = false })
		for _, c := range []struct {
			method, path string
			body         any
		}{
			{"POST", "/api/v1/user/mfa", map[string]any{"type": map[string]any{"id": 1}, "password": "operator-pass-1"}},
			{"PATCH", "/api/v1/user/mfa/" + k.ID, map[string]any{"status": map[string]any{"id": 1}, "code": m.mCode(k.SecretKey)}},
			{"DELETE", "/api/v1/user/my/mfa/" + k.ID, nil},
		} {
			if b := off.t2Status(tok, c.method, c.path, c.body, 403); !strings.Contains(string(b), "MFA is disabled") {
				t.Fatalf("%s %s with MFA off: %s", c.method, c.path, b)
			}
		}
		// Still pending: the code of the refused requests activates it, with
		// the id as seed 002's clients send it (a float).
		m.mustAs(tok, "PATCH", "/api/v1/user/mfa/"+k.ID, `{"status":{"id":1.0},"code":"`+m.mCode(k.SecretKey)+`"}`, 200, nil)
	})
}

// TestMFAKeysCreateNeedsThePassword: a wrong password is 403 and counts
// towards the login lockout, after which even the right password is
// refused, on the key endpoint and on /api/login; malformed requests are
// 400 and count nothing.
func TestMFAKeysCreateNeedsThePassword(t *testing.T) {
	t.Parallel()
	mBackends(t, func(t *testing.T, m *mEnv) {
		sCreateUser(t, m.api, "operator", "operator-pass-1", "minimum-access")
		tok := m.login("operator", "operator-pass-1")
		for _, body := range []any{
			`{}`,
			map[string]any{"password": "operator-pass-1"},
			map[string]any{"type": map[string]any{"id": 2}, "password": "operator-pass-1"},
			map[string]any{"type": map[string]any{}, "password": "operator-pass-1"},
			map[string]any{"type": map[string]any{"id": 1}},
			map[string]any{"type": map[string]any{"id": 1}, "password": "operator-pass-1", "otp": "1"},
		} {
			m.t2Status(tok, "POST", "/api/v1/user/mfa", body, 400)
		}
		for range admin.DefaultLoginMaxFailures {
			m.t2Status(tok, "POST", "/api/v1/user/mfa", map[string]any{"type": map[string]any{"id": 1}, "password": "wrong-pass-1"}, 403)
		}
		m.t2Status(tok, "POST", "/api/v1/user/mfa", map[string]any{"type": map[string]any{"id": 1}, "password": "operator-pass-1"}, 403)
		m.t2Status("", "POST", "/api/login", map[string]any{"username": "operator", "password": "operator-pass-1"}, 403)
		if keys := m.t2Keys(tok, "my"); len(keys) != 0 {
			t.Fatalf("refused creations stored keys: %+v", keys)
		}
		m.clock.advance(admin.DefaultLoginBackoff + time.Second)
		m.t2Create(tok, "operator", "operator-pass-1")
	})
}

// TestMFAKeysSecondKeyAndDelete: an enrolled user adds a second key (204,
// no new backup codes: the old ones still work), either key's code logs
// in; deleting a key stops its codes; the last active key cannot be
// deleted by its user (409) but can by an admin, which ends the
// enrollment like a reset.
func TestMFAKeysSecondKeyAndDelete(t *testing.T) {
	t.Parallel()
	mBackends(t, func(t *testing.T, m *mEnv) {
		u := sCreateUser(t, m.api, "operator", "operator-pass-1", "minimum-access")
		tok := m.login("operator", "operator-pass-1")
		// The first key comes from /api/mfa/enable: one enrolment, two APIs.
		first, codes := m.mEnroll(tok, "operator")
		// Enrolled: a further key takes a current code of the first.
		second := m.t2Create(tok, "operator", "operator-pass-1", map[string]any{"code": m.mCode(first)})
		m.clock.advance(30 * time.Second)
		m.mToken("operator", m.mChallenge("operator", "operator-pass-1"), mOTP(m.mCode(first))) // a pending key changes nothing
		m.clock.advance(30 * time.Second)
		m.t2Status(tok, "PATCH", "/api/v1/user/mfa/"+second.ID, map[string]any{"status": map[string]any{"id": 1}, "code": m.mCode(second.SecretKey)}, 204)
		keys := m.t2Keys(tok, "my")
		if len(keys) != 2 || keys[0].Status != t2Active || keys[1].Status != t2Active {
			t.Fatalf("keys: %+v", keys)
		}
		m.clock.advance(30 * time.Second)
		m.mToken("operator", m.mChallenge("operator", "operator-pass-1"), mOTP(m.mCode(first)))
		m.mToken("operator", m.mChallenge("operator", "operator-pass-1"), mOTP(m.mCode(second.SecretKey)))
		m.mToken("operator", m.mChallenge("operator", "operator-pass-1"), mBackup(codes[0]))

		// Delete the first key by its id from the key list.
		m.t2Status(tok, "DELETE", "/api/v1/user/my/mfa/no-such-key", nil, 404)
		m.t2Status(tok, "DELETE", "/api/v1/user/my/mfa/"+keys[0].ID, nil, 204)
		m.t2Status(tok, "DELETE", "/api/v1/user/my/mfa/"+keys[0].ID, nil, 404)
		m.clock.advance(30 * time.Second)
		m.mRefused("operator", m.mChallenge("operator", "operator-pass-1"), mOTP(m.mCode(first)), 401)
		m.mToken("operator", m.mChallenge("operator", "operator-pass-1"), mOTP(m.mCode(second.SecretKey)))

		// The last active key: not by its user, on either path.
		for _, p := range []string{"/api/v1/user/my/mfa/" + second.ID, "/api/v1/user/" + u.ID + "/mfa/" + second.ID} {
			if b := m.t2Status(tok, "DELETE", p, nil, 409); !strings.Contains(string(b), "/api/mfa/disable") {
				t.Fatalf("DELETE %s: %s", p, b)
			}
		}
		// A pending key of its own, yes.
		m.clock.advance(30 * time.Second)
		third := m.t2Create(tok, "operator", "operator-pass-1", map[string]any{"code": m.mCode(second.SecretKey)})
		m.t2Status(tok, "DELETE", "/api/v1/user/"+u.ID+"/mfa/"+third.ID, nil, 204)

		// An admin may, and the user is no longer enrolled: password only,
		// backup codes gone.
		m.t2Status(m.admin, "DELETE", "/api/v1/user/"+u.ID+"/mfa/"+second.ID, nil, 204)
		if m.mIsEnrolled(tok) || !m.t2LoginWithoutCode("operator", "operator-pass-1", "") {
			t.Fatal("still enrolled after the admin deleted the last key")
		}
		if got, err := m.st.User(context.Background(), u.ID); err != nil || got.MFA == nil || len(got.MFA.BackupCodes) != 0 || len(got.MFA.Keys) != 0 {
			t.Fatalf("stored MFA state after the last key went: %+v, %v", got.MFA, err)
		}
	})
}

// TestMFAKeysKeyLimit: a user holds at most 10 keys; deleting one makes
// room.
func TestMFAKeysKeyLimit(t *testing.T) {
	t.Parallel()
	mBackends(t, func(t *testing.T, m *mEnv) {
		sCreateUser(t, m.api, "operator", "operator-pass-1", "minimum-access")
		tok := m.login("operator", "operator-pass-1")
		var last t2Key
		for range 10 {
			last = m.t2Create(tok, "operator", "operator-pass-1")
		}
		m.t2Status(tok, "POST", "/api/v1/user/mfa", map[string]any{"type": map[string]any{"id": 1}, "password": "operator-pass-1"}, 409)
		m.t2Status(tok, "DELETE", "/api/v1/user/my/mfa/"+last.ID, nil, 204)
		m.t2Create(tok, "operator", "operator-pass-1")
	})
}

// TestMFAKeysLookups: the status and type lists, for any logged-in user.
func TestMFAKeysLookups(t *testing.T) {
	t.Parallel()
	mBackends(t, func(t *testing.T, m *mEnv) {
		sCreateUser(t, m.api, "operator", "operator-pass-1", "minimum-access")
		tok := m.login("operator", "operator-pass-1")
		var statuses, types []t2Lookup
		m.mustAs(tok, "GET", "/api/v1/user/mfa/status", nil, 200, &statuses)
		m.mustAs(tok, "GET", "/api/v1/user/mfa/type", nil, 200, &types)
		if len(statuses) != 2 || statuses[0] != t2Pending || statuses[1] != t2Active {
			t.Fatalf("statuses %+v", statuses)
		}
		if len(types) != 1 || types[0] != t2TOTP {
			t.Fatalf("types %+v", types)
		}
		m.t2Status("", "GET", "/api/v1/user/mfa/status", nil, 401)
	})
}

// TestMFAKeysEnforcedEnrollment: a user who must enrol may do so through
// the v1 keys (and nothing else) until enrolled.
func TestMFAKeysEnforcedEnrollment(t *testing.T) {
	t.Parallel()
	mBackends(t, func(t *testing.T, m *mEnv) {
		u := sCreateUser(t, m.api, "operator", "operator-pass-1", "minimum-access")
		m.must("PUT", "/api/users/"+u.ID, map[string]any{"enforceMFAEnrollment": true}, 200, nil)
		tok := m.login("operator", "operator-pass-1")
		m.t2Status(tok, "GET", "/api/v1/user/my/mfa/trusted_device", nil, 403)
		m.t2Status(tok, "GET", "/api/v1/user/my/mfa", nil, 403)
		m.mustAs(tok, "GET", "/api/v1/user/mfa/type", nil, 200, nil)
		m.t2Enroll(tok, "operator", "operator-pass-1")
		m.mustAs(tok, "GET", "/api/permissions", nil, 200, nil)
		m.t2Keys(tok, "my")
	})
}

// TestMFAKeysOfOtherUsers: listing and deleting another user's keys needs
// the http permission (403 for a minimum-access user, also for an unknown
// user, so ids cannot be probed); an admin lists them without secrets.
func TestMFAKeysOfOtherUsers(t *testing.T) {
	t.Parallel()
	mBackends(t, func(t *testing.T, m *mEnv) {
		u := sCreateUser(t, m.api, "operator", "operator-pass-1", "minimum-access")
		sCreateUser(t, m.api, "viewer", "viewer-pass-1", "minimum-access")
		k, _ := m.t2Enroll(m.login("operator", "operator-pass-1"), "operator", "operator-pass-1")
		other := m.login("viewer", "viewer-pass-1")
		for _, id := range []string{u.ID, "no-such-user"} {
			m.t2Status(other, "GET", "/api/v1/user/"+id+"/mfa", nil, 403)
			m.t2Status(other, "DELETE", "/api/v1/user/"+id+"/mfa/"+k.ID, nil, 403)
		}
		// viewer's own path does not reach operator's key.
		m.t2Status(other, "DELETE", "/api/v1/user/my/mfa/"+k.ID, nil, 404)
		keys := m.t2Keys(m.admin, u.ID)
		if len(keys) != 1 || keys[0].ID != k.ID || keys[0].Status != t2Active {
			t.Fatalf("admin's list: %+v", keys)
		}
		m.t2Status(m.admin, "GET", "/api/v1/user/no-such-user/mfa", nil, 404)
		m.t2Status(m.admin, "DELETE", "/api/v1/user/no-such-user/mfa/"+k.ID, nil, 404)
	})
}

// TestTrustedDevicesSkipMFA: an MFA login with trustDevice gives a device
// token; a later login with the right password and that token gets a
// token at once, until the configured days have passed; a wrong password
// is refused whatever the token.
func TestTrustedDevicesSkipMFA(t *testing.T) {
	t.Parallel()
	for name, days := range map[string]int{"default 30 days": 0, "configured 2 days": 2} {
		t.Run(name, func(t *testing.T) {
			backends(t, func(t *testing.T, a *api) {
				m := t2Node(t, a, &mClock{t: mEpoch}, func(o *admin.Options) { o.MFAEnabled, o.TrustedDeviceDays = true, days })
				want := time.Duration(days) * 24 * time.Hour
				if days == 0 {
					want = admin.DefaultTrustedDeviceDays * 24 * time.Hour
				}
				u := sCreateUser(t, m.api, "operator", "operator-pass-1", "minimum-access")
				tok := m.login("operator", "operator-pass-1")
				k, _ := m.t2Enroll(tok, "operator", "operator-pass-1")
				trustedAt := m.clock.now()
				_, device := m.t2Trust("operator", "operator-pass-1", k.SecretKey, map[string]any{"deviceName": "line 3 tablet"})

				devs := m.t2Devices(tok, "my")
				if len(devs) != 1 || devs[0].Name != "line 3 tablet" || !devs[0].CreationDate.Equal(trustedAt) || !devs[0].ExpirationDate.Equal(trustedAt.Add(want)) {
					t.Fatalf("devices %+v; want one named line 3 tablet, expiring %v after %v", devs, want, trustedAt)
				}
				if !m.t2LoginWithoutCode("operator", "operator-pass-1", device) || m.t2LoginWithoutCode("operator", "operator-pass-1", "") {
					t.Fatal("the device token does not skip the MFA step, or no token does")
				}
				m.t2Status("", "POST", "/api/login", map[string]any{"username": "operator", "password": "wrong-pass-1", "deviceToken": device}, 403)
				if m.t2LoginWithoutCode("operator", "operator-pass-1", device+"x") {
					t.Fatal("a changed device token skips")
				}

				// Another node honours it too (the state is in the store).
				other := t2Node(t, a, m.clock, func(o *admin.Options) { o.MFAEnabled, o.TrustedDeviceDays = true, days })
				m.clock.advance(want - time.Second - (m.clock.now().Sub(trustedAt)))
				if !other.t2LoginWithoutCode("operator", "operator-pass-1", device) {
					t.Fatal("a second before expiry the device token does not skip")
				}
				m.clock.advance(time.Second)
				if m.t2LoginWithoutCode("operator", "operator-pass-1", device) || other.t2LoginWithoutCode("operator", "operator-pass-1", device) {
					t.Fatal("an expired device token skips")
				}
				if devs := m.t2Devices(tok, "my"); len(devs) != 0 {
					t.Fatalf("expired devices listed: %+v", devs)
				}
				m.t2Status(tok, "DELETE", "/api/v1/user/my/mfa/trusted_device/"+devs[0].ID, nil, 404)

				// Trusting the device again gives a new token; the expired
				// record is dropped then.
				_, fresh := m.t2Trust("operator", "operator-pass-1", k.SecretKey, nil)
				if !m.t2LoginWithoutCode("operator", "operator-pass-1", fresh) || m.t2LoginWithoutCode("operator", "operator-pass-1", device) {
					t.Fatal("after trusting again: the new token does not skip, or the expired one does")
				}
				if got, err := m.st.User(context.Background(), u.ID); err != nil || len(got.MFA.TrustedDevices) != 1 {
					t.Fatalf("stored devices after trusting again: %+v, %v", got.MFA, err)
				}
			})
		})
	}
}

// TestTrustedDevicesDeleteStopsSkipping: a deleted device's token no
// longer skips; the device is named after the User-Agent without
// deviceName; a bad deviceName is 400 and spends no code; a backup code
// login may trust a device too.
func TestTrustedDevicesDeleteStopsSkipping(t *testing.T) {
	t.Parallel()
	mBackends(t, func(t *testing.T, m *mEnv) {
		u := sCreateUser(t, m.api, "operator", "operator-pass-1", "minimum-access")
		tok := m.login("operator", "operator-pass-1")
		k, codes := m.t2Enroll(tok, "operator", "operator-pass-1")

		ch := m.mChallenge("operator", "operator-pass-1")
		code := m.mCode(k.SecretKey)
		for _, name := range []string{"tab\tlet", " padded", strings.Repeat("x", 257)} {
			m.t2Status("", "POST", "/api/mfa/login", map[string]any{"username": "operator", "secret": ch, "otp": code, "trustDevice": true, "deviceName": name}, 400)
		}
		m.mToken("operator", ch, mOTP(code)) // neither code nor challenge spent
		m.clock.advance(30 * time.Second)

		_, first := m.t2Trust("operator", "operator-pass-1", k.SecretKey, nil)
		var resp struct {
			DeviceToken string `json:"deviceToken"`
		}
		m.mustAs("", "POST", "/api/mfa/login", map[string]any{"username": "operator", "secret": m.mChallenge("operator", "operator-pass-1"),
			"backupCode": codes[0], "trustDevice": true, "deviceName": "spare"}, 200, &resp)
		second := resp.DeviceToken
		devs := m.t2Devices(tok, u.ID)
		if len(devs) != 2 || !strings.HasPrefix(devs[0].Name, "Go-http-client/") || devs[1].Name != "spare" {
			t.Fatalf("devices %+v: want the User-Agent's name, then spare", devs)
		}

		m.t2Status(tok, "DELETE", "/api/v1/user/"+u.ID+"/mfa/trusted_device/"+devs[0].ID, nil, 204)
		m.t2Status(tok, "DELETE", "/api/v1/user/"+u.ID+"/mfa/trusted_device/"+devs[0].ID, nil, 404)
		if m.t2LoginWithoutCode("operator", "operator-pass-1", first) || !m.t2LoginWithoutCode("operator", "operator-pass-1", second) {
			t.Fatal("after deleting the first device: the first still skips, or the second does not")
		}
		m.t2Status(tok, "DELETE", "/api/v1/user/my/mfa/trusted_device/"+devs[1].ID, nil, 204)
		if m.t2LoginWithoutCode("operator", "operator-pass-1", second) {
			t.Fatal("a deleted device still skips")
		}
	})
}

// TestTrustedDevicesOfAnotherUser: a device token skips only its own
// user's MFA step.
func TestTrustedDevicesOfAnotherUser(t *testing.T) {
	t.Parallel()
	mBackends(t, func(t *testing.T, m *mEnv) {
		sCreateUser(t, m.api, "operator", "operator-pass-1", "minimum-access")
		sCreateUser(t, m.api, "viewer", "viewer-pass-1", "minimum-access")
		k, _ := m.t2Enroll(m.login("operator", "operator-pass-1"), "operator", "operator-pass-1")
		m.t2Enroll(m.login("viewer", "viewer-pass-1"), "viewer", "viewer-pass-1")
		_, device := m.t2Trust("operator", "operator-pass-1", k.SecretKey, nil)
		if m.t2LoginWithoutCode("viewer", "viewer-pass-1", device) {
			t.Fatal("operator's device token skips viewer's MFA step")
		}
		if !m.t2LoginWithoutCode("operator", "operator-pass-1", device) {
			t.Fatal("the device token does not skip for its own user")
		}
	})
}

// TestTrustedDevicesAdminAndMinimumAccess: an admin lists and deletes
// another user's devices; a minimum-access user may not (403, also for
// an unknown user), only its own.
func TestTrustedDevicesAdminAndMinimumAccess(t *testing.T) {
	t.Parallel()
	mBackends(t, func(t *testing.T, m *mEnv) {
		u := sCreateUser(t, m.api, "operator", "operator-pass-1", "minimum-access")
		sCreateUser(t, m.api, "viewer", "viewer-pass-1", "minimum-access")
		k, _ := m.t2Enroll(m.login("operator", "operator-pass-1"), "operator", "operator-pass-1")
		_, device := m.t2Trust("operator", "operator-pass-1", k.SecretKey, map[string]any{"deviceName": "laptop"})
		viewer := m.login("viewer", "viewer-pass-1")

		devs := m.t2Devices(m.admin, u.ID)
		if len(devs) != 1 || devs[0].Name != "laptop" {
			t.Fatalf("admin's list: %+v", devs)
		}
		for _, id := range []string{u.ID, "no-such-user"} {
			m.t2Status(viewer, "GET", "/api/v1/user/"+id+"/mfa/trusted_device", nil, 403)
			m.t2Status(viewer, "DELETE", "/api/v1/user/"+id+"/mfa/trusted_device/"+devs[0].ID, nil, 403)
		}
		if own := m.t2Devices(viewer, "my"); len(own) != 0 {
			t.Fatalf("viewer's own devices: %+v", own)
		}
		m.t2Status(viewer, "DELETE", "/api/v1/user/my/mfa/trusted_device/"+devs[0].ID, nil, 404)
		m.t2Status(m.admin, "GET", "/api/v1/user/no-such-user/mfa/trusted_device", nil, 404)
		m.t2Status(m.admin, "DELETE", "/api/v1/user/"+u.ID+"/mfa/trusted_device/no-such-device", nil, 404)

		if !m.t2LoginWithoutCode("operator", "operator-pass-1", device) {
			t.Fatal("refused deletions removed the device")
		}
		m.t2Status(m.admin, "DELETE", "/api/v1/user/"+u.ID+"/mfa/trusted_device/"+devs[0].ID, nil, 204)
		if m.t2LoginWithoutCode("operator", "operator-pass-1", device) {
			t.Fatal("the device the admin deleted still skips")
		}
	})
}

// TestTrustedDevicesGoWithMFA: disabling MFA, and an admin's reset,
// remove the trusted devices: after enrolling again, old device tokens do
// not skip.
func TestTrustedDevicesGoWithMFA(t *testing.T) {
	t.Parallel()
	mBackends(t, func(t *testing.T, m *mEnv) {
		u := sCreateUser(t, m.api, "operator", "operator-pass-1", "minimum-access")
		tok := m.login("operator", "operator-pass-1")
		for _, remove := range []func(secret string){
			func(secret string) { m.mustAs(tok, "POST", "/api/mfa/disable", mOTP(m.mCode(secret)), 200, nil) },
			func(string) { m.must("PUT", "/api/users/"+u.ID, map[string]any{"disableMfa": true}, 200, nil) },
		} {
			k, _ := m.t2Enroll(tok, "operator", "operator-pass-1")
			_, device := m.t2Trust("operator", "operator-pass-1", k.SecretKey, nil)
			remove(k.SecretKey)
			if devs := m.t2Devices(tok, "my"); len(devs) != 0 {
				t.Fatalf("devices after MFA was removed: %+v", devs)
			}
			m.clock.advance(30 * time.Second)
			m.t2Enroll(tok, "operator", "operator-pass-1")
			if m.t2LoginWithoutCode("operator", "operator-pass-1", device) {
				t.Fatal("a device trusted before MFA was removed skips after enrolling again")
			}
			m.clock.advance(30 * time.Second)
			m.must("PUT", "/api/users/"+u.ID, map[string]any{"disableMfa": true}, 200, nil)
		}
	})
}

// TestMFAKeysSecretsNeverLeak: the key's secret (secret_key, otpauth),
// backup codes and device tokens appear in no GET answer and no log line
// (debug level); the store holds device tokens only hashed.
func TestMFAKeysSecretsNeverLeak(t *testing.T) {
	t.Parallel()
	mBackends(t, func(t *testing.T, m *mEnv) {
		u := sCreateUser(t, m.api, "operator", "operator-pass-1", "minimum-access")
		tok := m.login("operator", "operator-pass-1")
		k, codes := m.t2Enroll(tok, "operator", "operator-pass-1")
		m.t2Status(tok, "PATCH", "/api/v1/user/mfa/"+k.ID, map[string]any{"status": map[string]any{"id": 1}, "code": "000000"}, 409)
		pending := m.t2Create(tok, "operator", "operator-pass-1", map[string]any{"code": m.mCode(k.SecretKey)})
		m.clock.advance(30 * time.Second)
		m.t2Status(tok, "PATCH", "/api/v1/user/mfa/"+pending.ID, map[string]any{"status": map[string]any{"id": 1}, "code": "000000"}, 422)
		_, device := m.t2Trust("operator", "operator-pass-1", k.SecretKey, nil)
		m.t2LoginWithoutCode("operator", "operator-pass-1", device)
		m.t2LoginWithoutCode("operator", "operator-pass-1", device+"x")

		stored, err := m.st.User(context.Background(), u.ID)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(stored)
		if strings.Contains(string(raw), device) || len(stored.MFA.TrustedDevices) != 1 {
			t.Fatalf("stored user: device token in the clear, or not one device: %s", raw)
		}

		secrets := append([]string{k.SecretKey, pending.SecretKey, device}, codes...)
		answers := map[string]string{"log": m.logs.String()}
		for p, token := range map[string]string{
			"/api/v1/user/my/mfa": tok, "/api/v1/user/" + u.ID + "/mfa": m.admin, "/api/v1/user/my/mfa/trusted_device": tok,
			"/api/v1/user/" + u.ID + "/mfa/trusted_device": m.admin, "/api/users/" + u.ID: m.admin, "/api/listUsers": m.admin, "/api/session": tok,
		} {
			answers["GET "+p] = string(m.t2Status(token, "GET", p, nil, 200))
		}
		for name, text := range answers {
			if !strings.Contains(text, "operator") && !strings.Contains(text, k.ID) && !strings.Contains(text, "Go-http-client") {
				t.Fatalf("%s mentions neither the user, its key nor its device; nothing was checked: %s", name, text)
			}
			for _, s := range secrets {
				for _, form := range []string{s, strings.ReplaceAll(s, "-", "")} {
					if strings.Contains(text, form) {
						t.Errorf("%s holds a secret (%.6s...)", name, form)
					}
				}
			}
			for _, field := range []string{"secret_key", "otpauth", "tokenHash", "deviceToken"} {
				if name != "log" && strings.Contains(text, field) {
					t.Errorf("%s shows %s", name, field)
				}
			}
		}
		for _, want := range []string{"mfa key created", "mfa enrolled", "mfa device trusted", "http login with trusted device", "http login device token not accepted"} {
			if !strings.Contains(m.logs.String(), want) {
				t.Errorf("not logged: %q", want)
			}
		}
	})
}

// TestTrustedDevicesAreCapped: a user keeps at most 20 trusted devices;
// one more forgets the one that expires first. A User-Agent naming a
// device loses its control characters and is cut to 256 bytes.
func TestTrustedDevicesAreCapped(t *testing.T) {
	t.Parallel()
	mBackends(t, func(t *testing.T, m *mEnv) {
		sCreateUser(t, m.api, "operator", "operator-pass-1", "minimum-access")
		tok := m.login("operator", "operator-pass-1")
		k, _ := m.t2Enroll(tok, "operator", "operator-pass-1")
		var tokens []string
		for range 20 {
			_, d := m.t2Trust("operator", "operator-pass-1", k.SecretKey, nil)
			tokens = append(tokens, d)
		}

		// The 21st, named by a long User-Agent with a tab in it.
		body, _ := json.Marshal(map[string]any{"username": "operator", "secret": m.mChallenge("operator", "operator-pass-1"),
			"otp": m.mCode(k.SecretKey), "trustDevice": true})
		req, err := http.NewRequest("POST", m.url+"/api/mfa/login", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "kiosk\tbrowser/"+strings.Repeat("é", 200))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var out struct {
			DeviceToken string `json:"deviceToken"`
		}
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || out.DeviceToken == "" {
			t.Fatalf("21st trusted device: %d, %+v, %v", resp.StatusCode, out, err)
		}

		devs := m.t2Devices(tok, "my")
		last := devs[len(devs)-1].Name
		if len(devs) != 20 || len(last) > 256 || !strings.HasPrefix(last, "kioskbrowser/éé") || strings.ContainsRune(last, '\t') || !utf8.ValidString(last) {
			t.Fatalf("%d devices, the last named %q: want 20, the last named after the User-Agent without the tab, in 256 bytes", len(devs), last)
		}
		if m.t2LoginWithoutCode("operator", "operator-pass-1", tokens[0]) || !m.t2LoginWithoutCode("operator", "operator-pass-1", tokens[1]) || !m.t2LoginWithoutCode("operator", "operator-pass-1", out.DeviceToken) {
			t.Fatal("want the first device forgotten, the second and the 21st trusted")
		}
	})
}
