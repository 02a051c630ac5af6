package admin_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/warden-mqtt/warden/admin"
	"github.com/warden-mqtt/warden/audit"
	"github.com/warden-mqtt/warden/store/storetest"
)

// auditRecords decodes the audit lines written so far.
func auditRecords(t *testing.T, l *mLog) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(l.String()))
	for sc.Scan() {
		var r map[string]any
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("audit line is not JSON: %q: %v", sc.Text(), err)
		}
		if r["audit"] != true {
			t.Errorf("audit line without audit=true: %s", sc.Text())
		}
		out = append(out, r)
	}
	return out
}

// findRecord returns the records with every key/value of want.
func findRecords(rs []map[string]any, want map[string]any) []map[string]any {
	var out []map[string]any
next:
	for _, r := range rs {
		for k, v := range want {
			got, _ := json.Marshal(r[k])
			w, _ := json.Marshal(v)
			if string(got) != string(w) {
				continue next
			}
		}
		out = append(out, r)
	}
	return out
}

// auditEnv is an admin server with MFA on, a fake clock and its audit
// trail in trail.
func auditEnv(t *testing.T) (*mEnv, *mLog) {
	t.Helper()
	trail := &mLog{}
	clock := &mClock{t: mEpoch}
	a := newAPI(t, storetest.OpenBolt(t), func(o *admin.Options) {
		o.Audit = audit.New(trail)
		o.MFAEnabled = true
		o.Now = clock.now
	})
	return &mEnv{api: a, clock: clock, logs: &mLog{}}, trail
}

// TestAuditRecordsChanges: each change through the API, made, refused or
// failed, is one record naming the caller, the route, the path targets
// (or the noted body target), the address and the outcome; reads,
// logins and requests without a valid token are no changes.
func TestAuditRecordsChanges(t *testing.T) {
	t.Parallel()
	m, trail := auditEnv(t)
	var created struct {
		ID string `json:"id"`
	}
	m.must("POST", "/api/users", map[string]any{"username": "operator", "password": "Operator-pass-1"}, http.StatusCreated, &created)
	m.must("GET", "/api/users/"+created.ID, nil, http.StatusOK, nil)
	m.must("DELETE", "/api/roles/no-such-role", nil, http.StatusNotFound, nil)
	op := m.login("operator", "Operator-pass-1")
	m.mustAs(op, "DELETE", "/api/users/"+created.ID, nil, http.StatusForbidden, nil)
	if code, _ := m.do("DELETE", "/api/users/"+created.ID, "", nil); code != http.StatusUnauthorized {
		t.Fatalf("delete without a token: %d", code)
	}
	m.must("DELETE", "/api/users/"+created.ID, nil, http.StatusOK, nil)

	rs := auditRecords(t, trail)
	changes := findRecords(rs, map[string]any{"event": "admin.change"})
	want := []map[string]any{
		{"user": "admin", "action": "POST /api/users", "target": map[string]any{"username": "operator"}, "outcome": "success", "status": 201},
		{"user": "admin", "action": "DELETE /api/roles/{id}", "target": map[string]any{"id": "no-such-role"}, "outcome": "failed", "status": 404},
		{"user": "operator", "action": "DELETE /api/users/{id}", "target": map[string]any{"id": created.ID}, "outcome": "denied", "status": 403},
		{"user": "admin", "action": "DELETE /api/users/{id}", "target": map[string]any{"id": created.ID}, "outcome": "success", "status": 200},
	}
	if len(changes) != len(want) {
		t.Fatalf("%d change records, want %d:\n%s", len(changes), len(want), trail)
	}
	for i, w := range want {
		if len(findRecords(changes[i:i+1], w)) != 1 {
			got, _ := json.Marshal(changes[i])
			t.Errorf("change %d = %s, want %v", i, got, w)
		}
		if r, _ := changes[i]["remote"].(string); !strings.HasPrefix(r, "127.0.0.1:") {
			t.Errorf("change %d: remote %q, want the client's address", i, r)
		}
		if _, err := time.Parse(time.RFC3339Nano, changes[i]["time"].(string)); err != nil {
			t.Errorf("change %d: time: %v", i, err)
		}
	}
}

// TestAuditRecordsAuthenticationFailures: a wrong password, an unknown
// user, a refused bearer or application token, a wrong password to change
// one's password and a wrong MFA code each leave one record with the
// channel, the username given, the address and the reason.
func TestAuditRecordsAuthenticationFailures(t *testing.T) {
	t.Parallel()
	m, trail := auditEnv(t)
	m.must("POST", "/api/users", map[string]any{"username": "operator", "password": "Operator-pass-1"}, http.StatusCreated, nil)
	for _, c := range []struct{ user, password string }{{"operator", "Wrong-pass-1"}, {"nobody", "Wrong-pass-1"}} {
		if code, _ := m.do("POST", "/api/login", "", map[string]any{"username": c.user, "password": c.password}); code != http.StatusForbidden {
			t.Fatalf("login %s: %d", c.user, code)
		}
	}
	if code, _ := m.do("GET", "/api/session", "not-a-token", nil); code != http.StatusUnauthorized {
		t.Fatalf("bad token: %d", code)
	}
	if code, _ := m.do("GET", "/api/session", "", nil); code != http.StatusUnauthorized {
		t.Fatalf("no token: %d", code)
	}
	if code, _ := m.do("POST", "/api/v1/authenticate", "", map[string]any{"application_token": "not-a-token"}); code != http.StatusUnauthorized {
		t.Fatalf("bad application token: %d", code)
	}
	op := m.login("operator", "Operator-pass-1")
	m.mustAs(op, "PUT", "/api/users/change-password", map[string]any{"password": "Wrong-pass-1", "newPassword": "Operator-pass-2"}, http.StatusForbidden, nil)
	m.mEnroll(op, "operator")
	secret := m.mChallenge("operator", "Operator-pass-1")
	m.mRefused("operator", secret, mOTP("000000"), http.StatusUnauthorized)

	failures := findRecords(auditRecords(t, trail), map[string]any{"event": "auth.failure"})
	want := []map[string]any{
		{"channel": "http-login", "user": "operator", "reason": "wrong password"},
		{"channel": "http-login", "user": "nobody", "reason": "unknown user"},
		{"channel": "http-token", "user": "", "reason": "invalid, expired or revoked token"},
		{"channel": "http-token", "user": "", "reason": "invalid, expired or revoked application token"},
		{"channel": "http-login", "user": "operator", "reason": "wrong password (change-password)"},
		{"channel": "mfa", "user": "operator", "reason": "wrong code"},
	}
	if len(failures) != len(want) {
		t.Fatalf("%d failure records, want %d (a request without a token is no attempt):\n%s", len(failures), len(want), trail)
	}
	for i, w := range want {
		if len(findRecords(failures[i:i+1], w)) != 1 {
			got, _ := json.Marshal(failures[i])
			t.Errorf("failure %d = %s, want %v", i, got, w)
		}
		if r, _ := failures[i]["remote"].(string); !strings.HasPrefix(r, "127.0.0.1:") {
			t.Errorf("failure %d: remote %q", i, r)
		}
	}
}

// TestAuditNeverHoldsSecrets runs the flows that carry secrets (create a
// user with a password, log in, enroll MFA, log in with a code and a
// backup code, fail codes, change a password, create an application
// token, revoke a token by value, register a trusted certificate's CA)
// and checks that no password, token, TOTP secret or code, backup code,
// MFA login secret or PEM reaches the audit trail.
func TestAuditNeverHoldsSecrets(t *testing.T) {
	t.Parallel()
	m, trail := auditEnv(t)
	secrets := []string{adminPassword, m.admin}
	const pw1, pw2 = "Operator-pass-1", "Operator-pass-2"
	secrets = append(secrets, pw1, pw2, "Wrong-pass-1")

	m.must("POST", "/api/users", map[string]any{"username": "operator", "password": pw1}, http.StatusCreated, nil)
	m.do("POST", "/api/login", "", map[string]any{"username": "operator", "password": "Wrong-pass-1"})
	op := m.login("operator", pw1)
	secrets = append(secrets, op)

	totp, backup := m.mEnroll(op, "operator")
	secrets = append(secrets, totp)
	secrets = append(secrets, backup...)
	challenge := m.mChallenge("operator", pw1)
	secrets = append(secrets, challenge)
	m.mRefused("operator", challenge, mBackup("AAAA-AAAA-AAAA-AAAA"), http.StatusUnauthorized)
	code := m.mCode(totp)
	secrets = append(secrets, code)
	op2 := m.mToken("operator", challenge, mOTP(code))
	secrets = append(secrets, op2)
	m.clock.advance(30 * time.Second)
	challenge2 := m.mChallenge("operator", pw1)
	op3 := m.mToken("operator", challenge2, mBackup(backup[0]))
	secrets = append(secrets, challenge2, op3)

	m.mustAs(op2, "PUT", "/api/users/change-password", map[string]any{"password": pw1, "newPassword": pw2}, http.StatusNoContent, nil)
	var app map[string]any
	// The change kept op2, the session that made it, and revoked op3.
	m.mustAs(op2, "POST", "/api/v1/application_token", map[string]any{"description": "ci"}, http.StatusCreated, &app)
	for _, v := range app {
		if s, ok := v.(string); ok && len(s) > 40 {
			secrets = append(secrets, s) // the token, whatever its field is called
		}
	}
	m.do("DELETE", "/api/oauth2/"+op3, "", nil)
	m.do("POST", "/api/logout", "", map[string]any{"token": op2})
	m.do("GET", "/api/session", op2, nil) // a revoked token is a refused one

	out := trail.String()
	if !strings.Contains(out, `"event":"admin.change"`) || !strings.Contains(out, `"event":"auth.failure"`) {
		t.Fatalf("the flows left no change or no failure record:\n%s", out)
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(out, s) {
			t.Errorf("audit trail contains a secret %q:\n%s", s, out)
		}
	}
	for _, s := range []string{"BEGIN", "otpauth", "Bearer", "newPassword", "backupCode"} {
		if strings.Contains(out, s) {
			t.Errorf("audit trail contains %q:\n%s", s, out)
		}
	}
}
