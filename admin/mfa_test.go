package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warden-mqtt/warden/admin"
	"github.com/warden-mqtt/warden/internal/logbuf"
)

// mEpoch is where the MFA tests' clock starts: 10 s into a TOTP step, so
// "now" and ±30 s are three distinct, unambiguous steps.
var mEpoch = time.Date(2030, 1, 1, 0, 0, 10, 0, time.UTC)

// mClock is the clock injected into the server (Options.Now), so codes,
// challenge expiry and locks are tested without sleeping.
type mClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *mClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *mClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// mLog collects the server's log output (goroutine-safe).
type mLog = logbuf.Buffer

// mEnv is an admin server with MFA on, a fake clock and a debug log, on
// the store of a (the admin's harness); admin is logged in on it.
type mEnv struct {
	*api
	clock *mClock
	logs  *mLog
}

// mBackends runs fn on both stores with MFA switched on.
func mBackends(t *testing.T, fn func(t *testing.T, m *mEnv)) {
	backends(t, func(t *testing.T, a *api) { fn(t, mNew(t, a, true, &mClock{t: mEpoch})) })
}

// mNew starts another server on a's store (another node, in effect) with
// MFA on or off and the given clock.
func mNew(t *testing.T, a *api, mfaEnabled bool, clock *mClock) *mEnv {
	t.Helper()
	return t2Node(t, a, clock, func(o *admin.Options) { o.MFAEnabled = mfaEnabled })
}

// mOath returns oathtool's TOTP code for the base32 secret at the instant:
// the codes our server accepts come from an independent implementation.
func mOath(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	if _, err := exec.LookPath("oathtool"); err != nil {
		t.Fatal("oathtool not found: install it (apt-get install oathtool, or make deps); the MFA tests check warden against it")
	}
	out, err := exec.Command("oathtool", "--totp", "-b", "--now", at.UTC().Format("2006-01-02 15:04:05 UTC"), secret).CombinedOutput()
	code := strings.TrimSpace(string(out))
	if err != nil || !regexp.MustCompile(`^[0-9]{6}$`).MatchString(code) {
		t.Fatalf("oathtool: %v: %q", err, out)
	}
	return code
}

// mCode is oathtool's code for the secret at the server's current time.
func (m *mEnv) mCode(secret string) string {
	m.t.Helper()
	return mOath(m.t.(*testing.T), secret, m.clock.now())
}

// mSecretOf checks an enrollment URI's shape and returns its secret.
func mSecretOf(t *testing.T, uri, username string) string {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatalf("uri %q: %v", uri, err)
	}
	q := u.Query()
	if u.Scheme != "otpauth" || u.Host != "totp" || u.Path != "/warden:"+username || q.Get("issuer") != "warden" ||
		q.Get("algorithm") != "SHA1" || q.Get("digits") != "6" || q.Get("period") != "30" {
		t.Fatalf("enrollment URI %s: want otpauth://totp/warden:%s?issuer=warden&algorithm=SHA1&digits=6&period=30", uri, username)
	}
	secret := q.Get("secret")
	if !regexp.MustCompile(`^[A-Z2-7]{32}$`).MatchString(secret) {
		t.Fatalf("secret %q: want 160 bits of base32", secret)
	}
	return secret
}

// mEnable starts an enrollment and returns the key's secret.
func (m *mEnv) mEnable(token, username string) string {
	m.t.Helper()
	var resp struct {
		URI string `json:"uri"`
	}
	m.mustAs(token, "POST", "/api/mfa/enable", nil, http.StatusOK, &resp)
	return mSecretOf(m.t.(*testing.T), resp.URI, username)
}

// mEnroll enrolls the user holding token (enable, oathtool code,
// validate) and returns the secret and the 10 backup codes. The clock
// then moves to the next step, so the caller's next code is fresh.
func (m *mEnv) mEnroll(token, username string) (string, []string) {
	m.t.Helper()
	secret := m.mEnable(token, username)
	var resp struct {
		BackupCodes []string `json:"backupCodes"`
	}
	m.mustAs(token, "POST", "/api/mfa/validate", map[string]string{"otp": m.mCode(secret)}, http.StatusOK, &resp)
	if len(resp.BackupCodes) != 10 {
		m.t.Fatalf("validate returned %d backup codes, want 10", len(resp.BackupCodes))
	}
	m.clock.advance(30 * time.Second)
	return secret, resp.BackupCodes
}

// mChallenge logs in with a password and returns the MFA secret of the
// answer, which must ask for the second step and hold no token.
func (m *mEnv) mChallenge(username, password string) string {
	m.t.Helper()
	var resp map[string]any
	m.mustAs("", "POST", "/api/login", map[string]any{"username": username, "password": password}, http.StatusOK, &resp)
	secret, _ := resp["secret"].(string)
	if resp["needsMfa"] != true || len(secret) < 40 || resp["token"] != nil {
		m.t.Fatalf("login of an enrolled user: %v; want needsMfa, a secret and no token", resp)
	}
	return secret
}

// mLogin runs POST /api/mfa/login and returns the status and body.
func (m *mEnv) mLogin(body map[string]any) (int, []byte) {
	m.t.Helper()
	return m.do("POST", "/api/mfa/login", "", body)
}

// mToken completes a login with a code and returns the token.
func (m *mEnv) mToken(username, secret string, code map[string]any) string {
	m.t.Helper()
	body := map[string]any{"username": username, "secret": secret}
	for k, v := range code {
		body[k] = v
	}
	var resp struct {
		Token    string `json:"token"`
		NeedsMFA bool   `json:"needsMfa"`
	}
	m.mustAs("", "POST", "/api/mfa/login", body, http.StatusOK, &resp)
	if resp.Token == "" || resp.NeedsMFA {
		m.t.Fatalf("mfa login answer %+v", resp)
	}
	return resp.Token
}

// mRefused checks an MFA-login refusal's status and returns its body.
func (m *mEnv) mRefused(username, secret string, code map[string]any, want int) []byte {
	m.t.Helper()
	body := map[string]any{"username": username, "secret": secret}
	for k, v := range code {
		body[k] = v
	}
	got, b := m.mLogin(body)
	if got != want || errorCode(m.t, b) != want {
		m.t.Fatalf("mfa login with %v: %d %s, want %d", code, got, b, want)
	}
	return b
}

func mOTP(code string) map[string]any    { return map[string]any{"otp": code} }
func mBackup(code string) map[string]any { return map[string]any{"backupCode": code} }

type mSession struct {
	Username string `json:"username"`
	MFA      struct {
		Enabled  bool `json:"enabled"`
		Enforced bool `json:"enforced"`
	} `json:"mfa"`
}

func (m *mEnv) mIsEnrolled(token string) bool {
	m.t.Helper()
	var resp struct {
		IsEnrolled *bool `json:"isEnrolled"`
	}
	m.mustAs(token, "GET", "/api/mfa/isenrolled", nil, http.StatusOK, &resp)
	if resp.IsEnrolled == nil {
		m.t.Fatal("isenrolled answer lacks isEnrolled")
	}
	return *resp.IsEnrolled
}

// TestMFAEnrollAndLogin: enable gives an otpauth URI, a code oathtool
// computes from it completes the enrollment with 10 backup codes, and from
// then on a login needs a code: needsMfa and a secret, then a token from
// /api/mfa/login with the options the login asked for.
func TestMFAEnrollAndLogin(t *testing.T) {
	t.Parallel()
	mBackends(t, func(t *testing.T, m *mEnv) {
		u := sCreateUser(t, m.api, "operator", "operator-pass-1", "minimum-access")
		tok := m.login("operator", "operator-pass-1")
		if m.mIsEnrolled(tok) {
			t.Fatal("isEnrolled before enrolling")
		}
		var sess mSession
		m.mustAs(tok, "GET", "/api/session", nil, 200, &sess)
		if sess.MFA.Enabled {
			t.Fatalf("session before enrolling: %+v", sess)
		}

		// validate without enable; enable twice: the second key replaces
		// the first, whose codes no longer validate.
		if code, b := m.do("POST", "/api/mfa/validate", tok, map[string]string{"otp": "123456"}); code != 400 {
			t.Fatalf("validate before enable: %d %s", code, b)
		}
		first := m.mEnable(tok, "operator")
		second := m.mEnable(tok, "operator")
		if first == second {
			t.Fatal("enable twice gave one secret")
		}
		if code, b := m.do("POST", "/api/mfa/validate", tok, map[string]string{"otp": m.mCode(first)}); code != 401 || errorCode(t, b) != 401 {
			t.Fatalf("validate with the replaced key's code: %d %s", code, b)
		}
		for _, body := range []any{`{}`, `{"otp":"1","x":1}`} {
			if code, _ := m.do("POST", "/api/mfa/validate", tok, body); code != 400 {
				t.Fatalf("validate %s: %d, want 400", body, code)
			}
		}
		var val struct {
			BackupCodes []string `json:"backupCodes"`
		}
		m.mustAs(tok, "POST", "/api/mfa/validate", map[string]string{"otp": m.mCode(second)}, 200, &val)
		seen := map[string]bool{}
		for _, c := range val.BackupCodes {
			seen[c] = true
		}
		if len(val.BackupCodes) != 10 || len(seen) != 10 {
			t.Fatalf("backup codes %v: want 10 distinct", val.BackupCodes)
		}
		if code, b := m.do("POST", "/api/mfa/enable", tok, nil); code != 409 || errorCode(t, b) != 409 {
			t.Fatalf("enable when enrolled: %d %s", code, b)
		}
		if code, _ := m.do("POST", "/api/mfa/validate", tok, map[string]string{"otp": m.mCode(second)}); code != 409 {
			t.Fatalf("validate when enrolled: %d, want 409", code)
		}
		if !m.mIsEnrolled(tok) {
			t.Fatal("isEnrolled false after validate")
		}
		m.mustAs(tok, "GET", "/api/session", nil, 200, &sess)
		if !sess.MFA.Enabled || sess.MFA.Enforced {
			t.Fatalf("session after enrolling: %+v", sess)
		}
		var view map[string]any
		m.must("GET", "/api/users/"+u.ID, nil, 200, &view)
		if view["mfa_is_enrolled"] != true {
			t.Fatalf("user view after enrolling: mfa_is_enrolled %v", view["mfa_is_enrolled"])
		}

		// The password alone no longer gives a token.
		m.clock.advance(30 * time.Second)
		secret := m.mChallenge("operator", "operator-pass-1")
		tok2 := m.mToken("operator", secret, mOTP(m.mCode(second)))
		m.mustAs(tok2, "GET", "/api/session", nil, 200, &sess)
		if sess.Username != "operator" {
			t.Fatalf("session of the MFA token: %+v", sess)
		}
		// A challenge gives one token.
		m.clock.advance(30 * time.Second)
		m.mRefused("operator", secret, mOTP(m.mCode(second)), 401)

		// expireTimeInHours and label of the login apply to the token.
		m.clock.advance(30 * time.Second)
		var ch map[string]any
		m.mustAs("", "POST", "/api/login", map[string]any{"username": "operator", "password": "operator-pass-1", "expireTimeInHours": 2, "label": "mfa-ci"}, 200, &ch)
		var out struct {
			Token     string    `json:"token"`
			ExpiresAt time.Time `json:"expiresAt"`
		}
		m.mustAs("", "POST", "/api/mfa/login", map[string]any{"username": "operator", "secret": ch["secret"], "otp": m.mCode(second)}, 200, &out)
		if d := time.Until(out.ExpiresAt); d < 119*time.Minute || d > 121*time.Minute {
			t.Fatalf("token of a 2 h login expires in %v", d)
		}
		toks, err := m.st.UserTokens(context.Background(), u.ID)
		labelled := 0
		for _, tk := range toks {
			if tk.Label == "mfa-ci" {
				labelled++
			}
		}
		if err != nil || labelled != 1 {
			t.Fatalf("tokens %+v, %v: want one labelled mfa-ci", toks, err)
		}

		// The admin, not enrolled, still logs in with a password only.
		m.login("admin", adminPassword)
	})
}

// TestMFAReplayIsRefused: a TOTP code is accepted once, also across
// enrollment and login, and stays refused while it is in the window.
func TestMFAReplayIsRefused(t *testing.T) {
	t.Parallel()
	mBackends(t, func(t *testing.T, m *mEnv) {
		sCreateUser(t, m.api, "operator", "operator-pass-1", "minimum-access")
		secret := m.mEnable(m.login("operator", "operator-pass-1"), "operator")
		used := m.mCode(secret)
		m.mustAs(m.login("operator", "operator-pass-1"), "POST", "/api/mfa/validate", map[string]string{"otp": used}, 200, nil)

		// The enrollment's code cannot log in.
		m.mRefused("operator", m.mChallenge("operator", "operator-pass-1"), mOTP(used), 401)
		m.clock.advance(30 * time.Second)
		code := m.mCode(secret)
		m.mToken("operator", m.mChallenge("operator", "operator-pass-1"), mOTP(code))
		m.mRefused("operator", m.mChallenge("operator", "operator-pass-1"), mOTP(code), 401)
		// Still in the window a step later, still refused; the new code works.
		m.clock.advance(30 * time.Second)
		m.mRefused("operator", m.mChallenge("operator", "operator-pass-1"), mOTP(code), 401)
		m.mToken("operator", m.mChallenge("operator", "operator-pass-1"), mOTP(m.mCode(secret)))
	})
}

// TestMFAWindowSkew: codes of the previous and the next step are accepted
// (clock drift), two steps away they are not.
func TestMFAWindowSkew(t *testing.T) {
	t.Parallel()
	mBackends(t, func(t *testing.T, m *mEnv) {
		sCreateUser(t, m.api, "operator", "operator-pass-1", "minimum-access")
		secret, _ := m.mEnroll(m.login("operator", "operator-pass-1"), "operator")
		m.clock.advance(time.Hour) // far from the enrollment's steps
		now := m.clock.now()
		at := func(d time.Duration) map[string]any { return mOTP(mOath(t, secret, now.Add(d))) }
		m.mRefused("operator", m.mChallenge("operator", "operator-pass-1"), at(-60*time.Second), 401)
		m.mRefused("operator", m.mChallenge("operator", "operator-pass-1"), at(60*time.Second), 401)
		// In step order, since an accepted step retires the earlier ones.
		for _, d := range []time.Duration{-30 * time.Second, 0, 30 * time.Second} {
			m.mToken("operator", m.mChallenge("operator", "operator-pass-1"), at(d))
		}
	})
}

// TestMFABackupCodeWorksOnce: each backup code logs in once; case and
// dashes do not matter; the request needs exactly one kind of code.
func TestMFABackupCodeWorksOnce(t *testing.T) {
	t.Parallel()
	mBackends(t, func(t *testing.T, m *mEnv) {
		sCreateUser(t, m.api, "operator", "operator-pass-1", "minimum-access")
		_, codes := m.mEnroll(m.login("operator", "operator-pass-1"), "operator")
		m.mToken("operator", m.mChallenge("operator", "operator-pass-1"), mBackup(codes[0]))
		m.mRefused("operator", m.mChallenge("operator", "operator-pass-1"), mBackup(codes[0]), 401)
		m.mToken("operator", m.mChallenge("operator", "operator-pass-1"), mBackup(strings.ToLower(strings.ReplaceAll(codes[1], "-", ""))))

		secret := m.mChallenge("operator", "operator-pass-1")
		for _, body := range []map[string]any{
			{"username": "operator", "secret": secret},
			{"username": "operator", "secret": secret, "otp": "123456", "backupCode": codes[2]},
			{"username": "operator", "backupCode": codes[2]},
			{"secret": secret, "backupCode": codes[2]},
			{"username": "operator", "secret": secret, "backupCode": codes[2], "password": "x"},
		} {
			if code, b := m.mLogin(body); code != 400 || errorCode(t, b) != 400 {
				t.Fatalf("mfa login %v: %d %s, want 400", body, code, b)
			}
		}
		// The malformed requests spent nothing: codes[2] still works.
		m.mToken("operator", secret, mBackup(codes[2]))
	})
}

// TestMFALockout: five wrong codes void the challenge and lock the
// account for the login back-off, on every node: a right code, and the
// right password, are refused until it has passed.
func TestMFALockout(t *testing.T) {
	t.Parallel()
	mBackends(t, func(t *testing.T, m *mEnv) {
		sCreateUser(t, m.api, "operator", "operator-pass-1", "minimum-access")
		secret, _ := m.mEnroll(m.login("operator", "operator-pass-1"), "operator")
		ch := m.mChallenge("operator", "operator-pass-1")
		var first []byte
		for i := range 4 {
			b := m.mRefused("operator", ch, mOTP("000000"), 401)
			if i == 0 {
				first = b
			} else if !bytes.Equal(b, first) {
				t.Fatalf("wrong code %d answered %s, the first %s", i, b, first)
			}
		}
		m.mRefused("operator", ch, mOTP("000000"), 403)
		m.mRefused("operator", ch, mOTP(m.mCode(secret)), 403)
		if code, b := m.do("POST", "/api/login", "", map[string]string{"username": "operator", "password": "operator-pass-1"}); code != 403 {
			t.Fatalf("login while locked: %d %s", code, b)
		}
		// Another node (same store, no in-memory lock) refuses too.
		other := mNew(t, m.api, true, m.clock)
		if code, b := other.do("POST", "/api/login", "", map[string]string{"username": "operator", "password": "operator-pass-1"}); code != 403 {
			t.Fatalf("login on another node while locked: %d %s", code, b)
		}
		other.mRefused("operator", ch, mOTP(m.mCode(secret)), 403)
		// Other accounts are not affected.
		m.login("admin", adminPassword)

		m.clock.advance(admin.DefaultLoginBackoff + time.Second)
		// The voided challenge stays void.
		m.mRefused("operator", ch, mOTP(m.mCode(secret)), 401)
		m.mToken("operator", m.mChallenge("operator", "operator-pass-1"), mOTP(m.mCode(secret)))
	})
}

// TestMFALockoutCountsAcrossChallenges: asking for a new challenge does
// not reset the count of wrong codes.
func TestMFALockoutCountsAcrossChallenges(t *testing.T) {
	t.Parallel()
	mBackends(t, func(t *testing.T, m *mEnv) {
		sCreateUser(t, m.api, "operator", "operator-pass-1", "minimum-access")
		m.mEnroll(m.login("operator", "operator-pass-1"), "operator")
		for range 4 {
			m.mRefused("operator", m.mChallenge("operator", "operator-pass-1"), mOTP("000000"), 401)
		}
		m.mRefused("operator", m.mChallenge("operator", "operator-pass-1"), mBackup("AAAA-AAAA-AAAA-AAAA"), 403)
	})
}

// TestMFALoginFailuresLookAlike: an unknown user, a wrong or expired
// secret and a wrong code get the same answer; wrong secrets do not count
// towards the lock (anyone could send them).
func TestMFALoginFailuresLookAlike(t *testing.T) {
	t.Parallel()
	mBackends(t, func(t *testing.T, m *mEnv) {
		sCreateUser(t, m.api, "operator", "operator-pass-1", "minimum-access")
		secret, _ := m.mEnroll(m.login("operator", "operator-pass-1"), "operator")
		ch := m.mChallenge("operator", "operator-pass-1")
		code := m.mCode(secret)
		wrongCode := m.mRefused("operator", ch, mOTP("000000"), 401)
		for _, c := range []struct {
			name, username, secret string
		}{
			{"unknown user", "nobody", ch},
			{"another user's name", "admin", ch},
			{"wrong secret", "operator", ch[:len(ch)-1] + "x"},
			{"short secret", "operator", "x"},
		} {
			for range 3 {
				if b := m.mRefused(c.username, c.secret, mOTP(code), 401); !bytes.Equal(b, wrongCode) {
					t.Fatalf("%s answered %s, a wrong code %s", c.name, b, wrongCode)
				}
			}
		}
		// Twelve refusals with wrong secrets, one wrong code: not locked.
		m.mToken("operator", ch, mOTP(code))

		// An expired challenge answers like the rest.
		ch = m.mChallenge("operator", "operator-pass-1")
		m.clock.advance(admin.MFAChallengeTTL + time.Second)
		if b := m.mRefused("operator", ch, mOTP(m.mCode(secret)), 401); !bytes.Equal(b, wrongCode) {
			t.Fatalf("expired challenge answered %s", b)
		}
		// Just before expiry it works.
		ch = m.mChallenge("operator", "operator-pass-1")
		m.clock.advance(admin.MFAChallengeTTL - time.Second)
		m.mToken("operator", ch, mOTP(m.mCode(secret)))
	})
}

// TestMFADisableAndRegenerateNeedACode: self-disable and new backup codes
// need a valid code; old backup codes die with the regeneration; after
// disabling, the password alone logs in again.
func TestMFADisableAndRegenerateNeedACode(t *testing.T) {
	t.Parallel()
	mBackends(t, func(t *testing.T, m *mEnv) {
		sCreateUser(t, m.api, "operator", "operator-pass-1", "minimum-access")
		tok := m.login("operator", "operator-pass-1")
		if code, _ := m.do("POST", "/api/mfa/disable", tok, map[string]string{"otp": "123456"}); code != 409 {
			t.Fatalf("disable when not enrolled: %d, want 409", code)
		}
		secret, codes := m.mEnroll(tok, "operator")
		for body, want := range map[string]int{`{}`: 400, `{"otp":"000000"}`: 401, `{"backupCode":"AAAA-AAAA-AAAA-AAAA"}`: 401} {
			for _, path := range []string{"/api/mfa/disable", "/api/mfa/regenerate/backupcodes"} {
				if code, b := m.do("POST", path, tok, body); code != want || errorCode(t, b) != want {
					t.Fatalf("%s %s: %d %s, want %d", path, body, code, b, want)
				}
			}
		}
		if !m.mIsEnrolled(tok) {
			t.Fatal("refused disables disabled MFA")
		}
		var regen struct {
			BackupCodes []string `json:"backupCodes"`
		}
		m.mustAs(tok, "POST", "/api/mfa/regenerate/backupcodes", mBackup(codes[0]), 200, &regen)
		if len(regen.BackupCodes) != 10 || regen.BackupCodes[0] == codes[0] {
			t.Fatalf("regenerated codes %v", regen.BackupCodes)
		}
		if code, _ := m.do("POST", "/api/mfa/disable", tok, mBackup(codes[1])); code != 401 {
			t.Fatalf("disable with a code from before the regeneration: %d, want 401", code)
		}
		m.mustAs(tok, "POST", "/api/mfa/regenerate/backupcodes", mOTP(m.mCode(secret)), 200, &regen)
		m.mustAs(tok, "POST", "/api/mfa/disable", mBackup(regen.BackupCodes[3]), 200, nil)
		if m.mIsEnrolled(tok) {
			t.Fatal("still enrolled after disable")
		}
		m.login("operator", "operator-pass-1") // a token at once
		// Enrolling again works and disabling with a TOTP code too.
		m.clock.advance(30 * time.Second)
		secret, _ = m.mEnroll(tok, "operator")
		m.mustAs(tok, "POST", "/api/mfa/disable", mOTP(m.mCode(secret)), 200, nil)
		m.login("operator", "operator-pass-1")
	})
}

// TestMFAAdminReset: disableMfa on PUT /api/users/{id} removes a user's
// MFA (an admin's reset for a lost phone); it needs the admin's permission.
func TestMFAAdminReset(t *testing.T) {
	t.Parallel()
	mBackends(t, func(t *testing.T, m *mEnv) {
		u := sCreateUser(t, m.api, "operator", "operator-pass-1", "minimum-access")
		tok := m.login("operator", "operator-pass-1")
		m.mEnroll(tok, "operator")
		if code, _ := m.do("PUT", "/api/users/"+u.ID, tok, map[string]any{"disableMfa": true}); code != 403 {
			t.Fatalf("disableMfa by the user itself: %d, want 403", code)
		}
		var view map[string]any
		m.must("PUT", "/api/users/"+u.ID, map[string]any{"disableMfa": false}, 200, &view)
		if view["mfa_is_enrolled"] != true {
			t.Fatalf("disableMfa false changed enrollment: %v", view)
		}
		m.must("PUT", "/api/users/"+u.ID, map[string]any{"disableMfa": true}, 200, &view)
		if view["mfa_is_enrolled"] != false {
			t.Fatalf("after reset: mfa_is_enrolled %v", view["mfa_is_enrolled"])
		}
		if got, _ := m.st.User(context.Background(), u.ID); got.MFA != nil {
			t.Fatalf("stored MFA state after reset: %+v", got.MFA)
		}
		m.login("operator", "operator-pass-1")
		if m.mIsEnrolled(tok) {
			t.Fatal("isEnrolled after the reset")
		}
	})
}

// TestMFAEnforcedEnrollment: a user whose enrollment is enforced gets a
// token that only enrolls until it has enrolled; then the same token works
// everywhere and logins need a code.
func TestMFAEnforcedEnrollment(t *testing.T) {
	t.Parallel()
	mBackends(t, func(t *testing.T, m *mEnv) {
		u := sCreateUser(t, m.api, "operator", "operator-pass-1", "minimum-access")
		var view map[string]any
		m.must("PUT", "/api/users/"+u.ID, map[string]any{"enforceMFAEnrollment": true}, 200, &view)
		if view["enforceMFAEnrollment"] != true {
			t.Fatalf("user view: %v", view)
		}
		var login map[string]any
		m.mustAs("", "POST", "/api/login", map[string]string{"username": "operator", "password": "operator-pass-1"}, 200, &login)
		tok, _ := login["token"].(string)
		if tok == "" || login["enforceMFAEnrollment"] != true || login["needsMfa"] != false {
			t.Fatalf("login of a user who must enroll: %v", login)
		}
		var sess mSession
		m.mustAs(tok, "GET", "/api/session", nil, 200, &sess)
		if !sess.MFA.Enforced || sess.MFA.Enabled {
			t.Fatalf("session: %+v", sess)
		}
		for _, c := range []struct{ method, path string }{
			{"GET", "/api/permissions"},
			{"PUT", "/api/users/change-password"},
			{"POST", "/api/mfa/disable"},
			{"POST", "/api/mfa/regenerate/backupcodes"},
			{"GET", "/api/listUsers"},
		} {
			code, b := m.do(c.method, c.path, tok, `{}`)
			if code != 403 || !strings.Contains(string(b), "enrollment required") {
				t.Fatalf("%s %s before enrolling: %d %s", c.method, c.path, code, b)
			}
		}
		m.mIsEnrolled(tok)
		secret, _ := m.mEnroll(tok, "operator")
		m.mustAs(tok, "GET", "/api/permissions", nil, 200, nil)
		m.mustAs(tok, "GET", "/api/session", nil, 200, &sess)
		if !sess.MFA.Enforced || !sess.MFA.Enabled {
			t.Fatalf("session after enrolling: %+v", sess)
		}
		m.mToken("operator", m.mChallenge("operator", "operator-pass-1"), mOTP(m.mCode(secret)))

		// A reset brings the restriction back for the tokens it holds.
		m.must("PUT", "/api/users/"+u.ID, map[string]any{"disableMfa": true}, 200, nil)
		if code, _ := m.do("GET", "/api/permissions", tok, nil); code != 403 {
			t.Fatalf("after the reset: %d, want 403", code)
		}
		// With MFA switched off, enforcement restricts nothing.
		off := mNew(t, m.api, false, m.clock)
		off.mustAs(tok, "GET", "/api/permissions", nil, 200, nil)
	})
}

// TestMFASwitchedOff: with MFA off, GET /api/auth/mfa says so, the MFA
// endpoints answer 403, and an enrolled user logs in with a password; the
// enrollment is kept and applies again when MFA is back on.
func TestMFASwitchedOff(t *testing.T) {
	t.Parallel()
	mBackends(t, func(t *testing.T, m *mEnv) {
		sCreateUser(t, m.api, "operator", "operator-pass-1", "minimum-access")
		secret, _ := m.mEnroll(m.login("operator", "operator-pass-1"), "operator")
		var cfg map[string]any
		m.must("GET", "/api/auth/mfa", nil, 200, &cfg)
		if cfg["enabled"] != true {
			t.Fatalf("GET /api/auth/mfa with MFA on: %v", cfg)
		}

		off := mNew(t, m.api, false, m.clock)
		off.must("GET", "/api/auth/mfa", nil, 200, &cfg)
		if cfg["enabled"] != false {
			t.Fatalf("GET /api/auth/mfa with MFA off: %v", cfg)
		}
		tok := off.login("operator", "operator-pass-1")
		for _, path := range []string{"/api/mfa/enable", "/api/mfa/validate", "/api/mfa/disable", "/api/mfa/regenerate/backupcodes", "/api/mfa/login"} {
			code, b := off.do("POST", path, tok, mOTP(m.mCode(secret)))
			if code != 403 || !strings.Contains(string(b), "MFA is disabled") {
				t.Fatalf("POST %s with MFA off: %d %s", path, code, b)
			}
		}
		if !off.mIsEnrolled(tok) {
			t.Fatal("isEnrolled with MFA off lost the enrollment")
		}
		m.mToken("operator", m.mChallenge("operator", "operator-pass-1"), mOTP(m.mCode(secret)))
	})
}

// TestMFASecretsNeverLeak: the TOTP secret, the login secret and backup
// codes appear in no log line (debug level) and in no user, user list or
// session answer; the store holds the TOTP secret only encrypted.
func TestMFASecretsNeverLeak(t *testing.T) {
	t.Parallel()
	mBackends(t, func(t *testing.T, m *mEnv) {
		u := sCreateUser(t, m.api, "operator", "operator-pass-1", "minimum-access")
		tok := m.login("operator", "operator-pass-1")
		secret, codes := m.mEnroll(tok, "operator")
		ch := m.mChallenge("operator", "operator-pass-1")
		m.mRefused("operator", ch, mOTP("000000"), 401)
		m.mRefused("operator", ch+"x", mOTP(m.mCode(secret)), 401)
		m.mToken("operator", ch, mBackup(codes[0]))
		m.clock.advance(30 * time.Second)
		var regen struct {
			BackupCodes []string `json:"backupCodes"`
		}
		m.mustAs(tok, "POST", "/api/mfa/regenerate/backupcodes", mOTP(m.mCode(secret)), 200, &regen)

		stored, err := m.st.User(context.Background(), u.ID)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(stored)
		sealed := stored.MFA.Keys[0].Secret
		for _, s := range append([]string{secret, ch}, append(codes, regen.BackupCodes...)...) {
			if strings.Contains(string(raw), s) || strings.Contains(string(raw), strings.ReplaceAll(s, "-", "")) {
				t.Fatalf("stored user holds a secret in the clear: %s", raw)
			}
		}

		_, list := m.do("GET", "/api/listUsers", m.admin, nil)
		_, one := m.do("GET", "/api/users/"+u.ID, m.admin, nil)
		_, sess := m.do("GET", "/api/session", tok, nil)
		secrets := append([]string{secret, ch, sealed}, append(codes, regen.BackupCodes...)...)
		for name, text := range map[string]string{"log": m.logs.String(), "GET /api/listUsers": string(list), "GET /api/users/{id}": string(one), "GET /api/session": string(sess)} {
			if !strings.Contains(text, "operator") {
				t.Fatalf("%s does not mention the user; nothing was checked: %s", name, text)
			}
			for _, s := range secrets {
				for _, form := range []string{s, strings.ReplaceAll(s, "-", "")} {
					if strings.Contains(text, form) {
						t.Errorf("%s holds a secret (%.6s...)", name, form)
					}
				}
			}
			for _, field := range []string{"backupCodes", "secretHash", "\"keys\""} {
				if name != "log" && strings.Contains(text, field) {
					t.Errorf("%s shows %s", name, field)
				}
			}
		}
		if !strings.Contains(m.logs.String(), "mfa code refused") {
			t.Error("the refused code was not logged")
		}
	})
}
