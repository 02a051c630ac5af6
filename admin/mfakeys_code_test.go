package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/warden-mqtt/warden/admin"
)

// Item 12 of issue 14: once a user is enrolled, adding an MFA key, and
// deleting its last active key, take a current code of its MFA (or a
// backup code), with /api/mfa/disable's answers and lock.

func mkCreateBody(password string, extra map[string]any) map[string]any {
	body := map[string]any{"type": map[string]any{"id": 1}, "password": password}
	for k, v := range extra {
		body[k] = v
	}
	return body
}

// TestMFAKeyAddNeedsACurrentCode: an attacker holding the victim's session
// and password, but not its phone, cannot add and activate a key of its
// own; wrong codes answer as on /api/mfa/disable and lock the account
// after as many; the victim adds a key with a current code or a backup
// code.
func TestMFAKeyAddNeedsACurrentCode(t *testing.T) {
	t.Parallel()
	mBackends(t, func(t *testing.T, m *mEnv) {
		sCreateUser(t, m.api, "operator", "operator-pass-1", "minimum-access")
		stolen := m.login("operator", "operator-pass-1")
		secret, backup := m.mEnroll(stolen, "operator")

		// The attack: create a key without a code, activate it with its own.
		code, b := m.do("POST", "/api/v1/user/mfa", stolen, mkCreateBody("operator-pass-1", nil))
		if code == http.StatusCreated {
			var k t2Key
			if err := json.Unmarshal(b, &k); err != nil {
				t.Fatal(err)
			}
			c, ab := m.t2Activate(stolen, k.ID, m.mCode(k.SecretKey))
			t.Fatalf("key added without a code of the enrolled MFA: create 201, activate %d %s", c, ab)
		}
		if code != http.StatusBadRequest || errorCode(t, b) != http.StatusBadRequest {
			t.Fatalf("create key without a code while enrolled: %d %s, want 400", code, b)
		}
		m.t2Status(stolen, "POST", "/api/v1/user/mfa", mkCreateBody("operator-pass-1", map[string]any{"code": "1", "backup_code": "x"}), http.StatusBadRequest)

		// Wrong codes: the answers of /api/mfa/disable, counted the same.
		wrong := m.t2Status(stolen, "POST", "/api/v1/user/mfa", mkCreateBody("operator-pass-1", map[string]any{"code": "000000"}), http.StatusUnauthorized)
		disable := m.t2Status(stolen, "POST", "/api/mfa/disable", mOTP("000000"), http.StatusUnauthorized)
		if !bytes.Equal(wrong, disable) {
			t.Fatalf("wrong code: %s here, %s on /api/mfa/disable", wrong, disable)
		}
		m.t2Status(stolen, "POST", "/api/v1/user/mfa", mkCreateBody("operator-pass-1", map[string]any{"backup_code": "AAAA-AAAA-AAAA-AAAA"}), http.StatusUnauthorized)
		m.t2Status(stolen, "POST", "/api/v1/user/mfa", mkCreateBody("operator-pass-1", map[string]any{"code": "111111"}), http.StatusUnauthorized)
		m.t2Status(stolen, "POST", "/api/v1/user/mfa", mkCreateBody("operator-pass-1", map[string]any{"code": "222222"}), http.StatusForbidden)
		// Locked: a right code no longer helps, and logins are refused.
		m.t2Status(stolen, "POST", "/api/mfa/disable", mOTP(m.mCode(secret)), http.StatusForbidden)
		m.t2Status("", "POST", "/api/login", map[string]any{"username": "operator", "password": "operator-pass-1"}, http.StatusForbidden)
		if keys := m.t2Keys(stolen, "my"); len(keys) != 1 {
			t.Fatalf("refused creations stored keys: %+v", keys)
		}

		// The owner, with its phone: a current code adds a key; that code is
		// spent (it cannot log in afterwards). A backup code does too.
		m.clock.advance(admin.DefaultLoginBackoff + time.Second)
		now := m.mCode(secret)
		second := m.t2Create(stolen, "operator", "operator-pass-1", map[string]any{"code": now})
		m.mRefused("operator", m.mChallenge("operator", "operator-pass-1"), mOTP(now), http.StatusUnauthorized)
		m.t2Status(stolen, "PATCH", "/api/v1/user/mfa/"+second.ID, map[string]any{"status": map[string]any{"id": 1}, "code": m.mCode(second.SecretKey)}, http.StatusNoContent)
		third := m.t2Create(stolen, "operator", "operator-pass-1", map[string]any{"backup_code": backup[0]})
		m.t2Status(stolen, "POST", "/api/v1/user/mfa", mkCreateBody("operator-pass-1", map[string]any{"backup_code": backup[0]}), http.StatusUnauthorized)
		if keys := m.t2Keys(stolen, "my"); len(keys) != 3 || keys[2].ID != third.ID || keys[2].Status != t2Pending {
			t.Fatalf("keys: %+v", keys)
		}
	})
}

// TestMFAKeyPendingBeforeEnrolmentDies: a key created while the user was
// not enrolled (no code could be asked) cannot be activated once the user
// enrolled with another: enrolling drops it.
func TestMFAKeyPendingBeforeEnrolmentDies(t *testing.T) {
	t.Parallel()
	mBackends(t, func(t *testing.T, m *mEnv) {
		sCreateUser(t, m.api, "operator", "operator-pass-1", "minimum-access")
		tok := m.login("operator", "operator-pass-1")
		planted := m.t2Create(tok, "operator", "operator-pass-1") // the attacker's, before the victim enrols
		m.t2Enroll(tok, "operator", "operator-pass-1")
		if code, b := m.t2Activate(tok, planted.ID, m.mCode(planted.SecretKey)); code != http.StatusNotFound {
			t.Fatalf("activating a key created before the enrolment: %d %s, want 404", code, b)
		}
		if keys := m.t2Keys(tok, "my"); len(keys) != 1 || keys[0].Status != t2Active {
			t.Fatalf("keys after enrolling: %+v, want the one active key", keys)
		}
	})
}

// TestMFALastKeyDeleteNeedsACode: a user deletes its last active key only
// with a current code or a backup code in the body (wrong ones answer and
// count as on /api/mfa/disable), and is then no longer enrolled; an admin
// needs none.
func TestMFALastKeyDeleteNeedsACode(t *testing.T) {
	t.Parallel()
	mBackends(t, func(t *testing.T, m *mEnv) {
		u := sCreateUser(t, m.api, "operator", "operator-pass-1", "minimum-access")
		tok := m.login("operator", "operator-pass-1")
		k, backup := m.t2Enroll(tok, "operator", "operator-pass-1")
		path := "/api/v1/user/my/mfa/" + k.ID

		m.t2Status(tok, "DELETE", path, nil, http.StatusConflict)
		m.t2Status(tok, "DELETE", path, map[string]any{"code": "1", "backup_code": "x"}, http.StatusBadRequest)
		wrong := m.t2Status(tok, "DELETE", path, map[string]any{"code": "000000"}, http.StatusUnauthorized)
		if disable := m.t2Status(tok, "POST", "/api/mfa/disable", mOTP("000000"), http.StatusUnauthorized); !bytes.Equal(wrong, disable) {
			t.Fatalf("wrong code: %s here, %s on /api/mfa/disable", wrong, disable)
		}
		m.t2Status(tok, "DELETE", "/api/v1/user/"+u.ID+"/mfa/"+k.ID, map[string]any{"backup_code": "AAAA-AAAA-AAAA-AAAA"}, http.StatusUnauthorized)
		m.t2Status(tok, "DELETE", path, map[string]any{"code": "111111"}, http.StatusUnauthorized)
		m.t2Status(tok, "DELETE", path, map[string]any{"code": "222222"}, http.StatusForbidden)
		m.t2Status(tok, "DELETE", path, map[string]any{"code": m.mCode(k.SecretKey)}, http.StatusForbidden) // locked
		if !m.mIsEnrolled(tok) {
			t.Fatal("refused deletions ended the enrollment")
		}

		m.clock.advance(admin.DefaultLoginBackoff + time.Second)
		m.t2Status(tok, "DELETE", path, map[string]any{"backup_code": backup[0]}, http.StatusNoContent)
		if m.mIsEnrolled(tok) || !m.t2LoginWithoutCode("operator", "operator-pass-1", "") {
			t.Fatal("still enrolled after deleting the last key")
		}
		got, err := m.st.User(context.Background(), u.ID)
		if err != nil || got.MFA == nil || len(got.MFA.Keys) != 0 || len(got.MFA.BackupCodes) != 0 {
			t.Fatalf("stored MFA state after the last key went: %+v, %v", got.MFA, err)
		}

		// With a TOTP code, and an admin without one.
		m.clock.advance(30 * time.Second)
		k, _ = m.t2Enroll(tok, "operator", "operator-pass-1")
		m.t2Status(tok, "DELETE", "/api/v1/user/my/mfa/"+k.ID, map[string]any{"code": m.mCode(k.SecretKey)}, http.StatusNoContent)
		m.clock.advance(30 * time.Second)
		k, _ = m.t2Enroll(tok, "operator", "operator-pass-1")
		m.t2Status(m.admin, "DELETE", "/api/v1/user/"+u.ID+"/mfa/"+k.ID, nil, http.StatusNoContent)
		if m.mIsEnrolled(tok) {
			t.Fatal("still enrolled after the admin deleted the last key")
		}
	})
}
