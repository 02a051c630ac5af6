package credential

import (
	"bytes"
	"errors"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warden-mqtt/warden/store"
)

// svcEnv is an MFAService on two store clients of one backing store
// (two nodes of a cluster: sharedStores), with a fake clock and a
// password lockout.
type svcEnv struct {
	a, b    *MFAService
	st      store.Store // node a's
	clock   *fakeClock
	lockout *Lockout
}

// mfaServices runs fn on both stores. edit, when set, changes the
// options of both nodes (MFA on, 3 wrong codes lock for a minute,
// devices trusted for an hour, no log).
func mfaServices(t *testing.T, edit func(*MFAServiceOptions), fn func(t *testing.T, e *svcEnv)) {
	sharedStores(t, func(t *testing.T, a, b store.Store) {
		// 10 s into a step, so now and ±30 s are three distinct steps.
		clock := newFakeClock(mfaEpoch.Add(10 * time.Second))
		e := &svcEnv{st: a, clock: clock, lockout: NewLockout(LockoutOptions{Now: clock.now})}
		o := MFAServiceOptions{
			Enabled: true, MaxFailures: 3, Backoff: time.Minute, TrustedDeviceTTL: time.Hour, Lockout: e.lockout,
			Now: clock.now, Logger: slog.New(slog.DiscardHandler),
		}
		if edit != nil {
			edit(&o)
		}
		for _, n := range []struct {
			s   store.Store
			out **MFAService
		}{{a, &e.a}, {b, &e.b}} {
			o.Store = n.s
			svc, err := NewMFAService(t.Context(), o)
			if err != nil {
				t.Fatal(err)
			}
			*n.out = svc
		}
		fn(t, e)
	})
}

// user reads the user with id as stored.
func (e *svcEnv) user(t *testing.T, id string) store.User {
	t.Helper()
	u, err := e.st.User(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// code is oathtool's code for the base32 secret at the clock's now.
func (e *svcEnv) code(t *testing.T, secret string) string {
	t.Helper()
	return oathCodeAt(t, secret, e.clock.now())
}

// secretOf returns the base32 secret of an otpauth URI.
func secretOf(t *testing.T, uri string) string {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil || u.Query().Get("secret") == "" {
		t.Fatalf("otpauth URI without a secret: %v", err)
	}
	return u.Query().Get("secret")
}

// enroll creates a user and enrolls it on node a; the clock then moves
// to the next step, whose codes are unused.
func (e *svcEnv) enroll(t *testing.T, name string) (u store.User, secret string, backup []string) {
	t.Helper()
	u, err := e.st.CreateUser(t.Context(), store.User{Username: name})
	if err != nil {
		t.Fatal(err)
	}
	uri, err := e.a.Enable(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	secret = secretOf(t, uri)
	if backup, err = e.a.Validate(t.Context(), e.user(t, u.ID), e.code(t, secret)); err != nil || len(backup) != BackupCodeCount {
		t.Fatalf("Validate = %d backup codes, %v", len(backup), err)
	}
	e.clock.advance(TOTPPeriod)
	return e.user(t, u.ID), secret, backup
}

// wantRefusal fails unless err is target, refused for reason.
func wantRefusal(t *testing.T, what string, err, target error, reason string) {
	t.Helper()
	var rf *MFARefusal
	if !errors.Is(err, target) || !errors.As(err, &rf) || rf.Reason != reason {
		t.Fatalf("%s: err = %v (%+v), want %v refused for %q", what, err, rf, target, reason)
	}
}

// TestMFAServiceEnrolmentAndLoginOnTwoNodes: a user enrolled on one node
// logs in through the other; the login's challenge and code are spent,
// so neither logs in twice.
func TestMFAServiceEnrolmentAndLoginOnTwoNodes(t *testing.T) {
	mfaServices(t, nil, func(t *testing.T, e *svcEnv) {
		u, secret, _ := e.enroll(t, "alice")
		if !e.b.Required(u) || e.b.EnrollmentDue(u) || e.b.Locked(u) {
			t.Fatalf("enrolled user: Required %v, EnrollmentDue %v, Locked %v", e.b.Required(u), e.b.EnrollmentDue(u), e.b.Locked(u))
		}
		ch, err := e.a.Challenge(t.Context(), u, "laptop", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		code := MFACode{OTP: e.code(t, secret)}
		res, err := e.b.Login(t.Context(), MFALogin{Username: "alice", Secret: ch, Code: code, Remote: "192.0.2.1:1000"})
		if err != nil || res.User.ID != u.ID || res.Label != "laptop" || res.TokenTTL != time.Hour || res.Device != nil {
			t.Fatalf("Login = %+v, %v", res, err)
		}
		_, err = e.a.Login(t.Context(), MFALogin{Username: "alice", Secret: ch, Code: code, Remote: "192.0.2.1:1000"})
		wantRefusal(t, "the same challenge again", err, ErrMFARefused, "no valid login challenge")
		ch, _ = e.a.Challenge(t.Context(), u, "", time.Hour)
		_, err = e.a.Login(t.Context(), MFALogin{Username: "alice", Secret: ch, Code: code, Remote: "192.0.2.1:1000"})
		wantRefusal(t, "the same code again", err, ErrMFARefused, "replayed code")
	})
}

// TestMFAServiceCodeAcceptedOnceAcrossNodes: one code sent to both nodes
// at once is accepted by one of them; a backup code spent on one node is
// refused on the other, though that node read the user before.
func TestMFAServiceCodeAcceptedOnceAcrossNodes(t *testing.T) {
	mfaServices(t, nil, func(t *testing.T, e *svcEnv) {
		u, secret, backup := e.enroll(t, "alice")
		code := MFACode{OTP: e.code(t, secret)}
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i, node := range []*MFAService{e.a, e.b} {
			wg.Go(func() { _, errs[i] = node.RegenerateBackupCodes(t.Context(), u, code) })
		}
		wg.Wait()
		if (errs[0] == nil) == (errs[1] == nil) || !errors.Is(errors.Join(errs...), ErrMFARefused) {
			t.Fatalf("one code on two nodes: %v; want one success and one ErrMFARefused", errs)
		}

		u, _, backup = e.enroll(t, "bob")
		stale := u
		if _, _, err := e.a.CreateKey(t.Context(), u, MFACode{BackupCode: backup[0]}); err != nil {
			t.Fatal(err)
		}
		_, _, err := e.b.CreateKey(t.Context(), stale, MFACode{BackupCode: backup[0]})
		wantRefusal(t, "a spent backup code on the other node", err, ErrMFARefused, "code used concurrently")
		if got := e.user(t, u.ID).MFA; len(got.Keys) != 2 || len(got.BackupCodes) != BackupCodeCount-1 || got.FailedCodes != 1 {
			t.Errorf("stored: %d keys, %d backup codes, %d failures; want 2, %d, 1", len(got.Keys), len(got.BackupCodes), got.FailedCodes, BackupCodeCount-1)
		}
	})
}

// TestMFAServiceWrongCodesLock: MaxFailures wrong codes void the pending
// login and lock the user (stored, so every node) and its username in
// the password lockout, for Backoff; with the lock switched off they
// still void the login.
func TestMFAServiceWrongCodesLock(t *testing.T) {
	mfaServices(t, nil, func(t *testing.T, e *svcEnv) {
		u, secret, _ := e.enroll(t, "alice")
		ch, _ := e.a.Challenge(t.Context(), u, "", time.Hour)
		wrong := MFALogin{Username: "alice", Secret: ch, Code: MFACode{OTP: "000000"}, Remote: "192.0.2.1:1000"}
		for range 2 {
			_, err := e.a.Login(t.Context(), wrong)
			wantRefusal(t, "a wrong code", err, ErrMFARefused, "wrong code")
		}
		_, err := e.b.Login(t.Context(), wrong)
		wantRefusal(t, "the third wrong code", err, ErrMFALocked, "wrong code; too many failures, locked")
		u = e.user(t, u.ID)
		if u.MFA.Challenge != nil || !u.MFA.LockedUntil.Equal(e.clock.now().UTC().Add(time.Minute)) || !e.a.Locked(u) {
			t.Fatalf("after the lock: challenge %v, locked until %v", u.MFA.Challenge, u.MFA.LockedUntil)
		}
		if b, _ := e.lockout.Check("alice", "198.51.100.1:1"); b != BlockedUser {
			t.Errorf("password lockout of alice from another address = %v, want BlockedUser", b)
		}
		right := MFALogin{Username: "alice", Secret: ch, Code: MFACode{OTP: e.code(t, secret)}, Remote: "192.0.2.1:1000"}
		_, err = e.a.Login(t.Context(), right)
		wantRefusal(t, "a right code while locked", err, ErrMFALocked, "locked")
		e.clock.advance(time.Minute + time.Second)
		if e.a.Locked(e.user(t, u.ID)) {
			t.Error("still locked after Backoff")
		}
	})
	mfaServices(t, func(o *MFAServiceOptions) { o.MaxFailures = -1 }, func(t *testing.T, e *svcEnv) {
		u, _, _ := e.enroll(t, "alice")
		ch, _ := e.a.Challenge(t.Context(), u, "", time.Hour)
		for range DefaultMFAMaxFailures {
			_, err := e.a.Login(t.Context(), MFALogin{Username: "alice", Secret: ch, Code: MFACode{BackupCode: "AAAA-AAAA-AAAA-AAAA"}})
			if !errors.Is(err, ErrMFARefused) {
				t.Fatalf("a wrong code with the lock off: %v", err)
			}
		}
		if u = e.user(t, u.ID); u.MFA.Challenge != nil || e.a.Locked(u) {
			t.Errorf("lock off, %d wrong codes: challenge %v, locked %v; want the challenge void, no lock", DefaultMFAMaxFailures, u.MFA.Challenge, e.a.Locked(u))
		}
	})
}

// TestMFAServiceLoginRefusalsLookAlike: an unknown or suspended user, a
// wrong or expired secret and a wrong code are all ErrMFARefused; only
// the wrong code counts towards the lock, and the log gives each reason
// without the secret or the code.
func TestMFAServiceLoginRefusalsLookAlike(t *testing.T) {
	var logs bytes.Buffer // one goroutine logs here
	debug := func(o *MFAServiceOptions) {
		o.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	mfaServices(t, debug, func(t *testing.T, e *svcEnv) {
		logs.Reset()
		u, _, backup := e.enroll(t, "alice")
		ch, _ := e.a.Challenge(t.Context(), u, "", time.Hour)
		susp, _, _ := e.enroll(t, "mallory")
		if _, err := e.st.UpdateUser(t.Context(), susp.ID, func(x *store.User) error { x.Suspended = true; return nil }); err != nil {
			t.Fatal(err)
		}
		good := MFACode{BackupCode: backup[0]}
		for _, c := range []struct {
			name, user, secret string
			code               MFACode
			advance            time.Duration
			reason             string
		}{
			{"an unknown user", "nobody", ch, good, 0, "unknown or suspended user"},
			{"a suspended user", "mallory", ch, good, 0, "unknown or suspended user"},
			{"a wrong secret", "alice", ch + "x", good, 0, "no valid login challenge"},
			{"a wrong backup code", "alice", ch, MFACode{BackupCode: "AAAA-AAAA-AAAA-AAAA"}, 0, "wrong backup code"},
			{"an expired secret", "alice", ch, good, MFAChallengeTTL, "no valid login challenge"},
		} {
			e.clock.advance(c.advance)
			_, err := e.a.Login(t.Context(), MFALogin{Username: c.user, Secret: c.secret, Code: c.code, Remote: "192.0.2.1:1000"})
			wantRefusal(t, c.name, err, ErrMFARefused, c.reason)
		}
		if got := e.user(t, u.ID).MFA; got.FailedCodes != 1 || len(got.BackupCodes) != BackupCodeCount {
			t.Errorf("stored: %d failures, %d backup codes; want 1 (the wrong code only), %d", got.FailedCodes, len(got.BackupCodes), BackupCodeCount)
		}
		for _, secret := range []string{ch, backup[0]} {
			if strings.Contains(logs.String(), secret) {
				t.Errorf("the log holds a secret (%.6s...)", secret)
			}
		}
		if !strings.Contains(logs.String(), `msg="mfa login refused" user=nobody remote=192.0.2.1:1000 reason="unknown or suspended user"`) {
			t.Errorf("log does not say why the unknown user was refused:\n%s", logs.String())
		}
	})
}

// TestMFAServiceEnrolment: Enable replaces a pending key; Validate needs
// one and a current code of it, enrols once and hands out the backup
// codes; Disable needs the user enrolled and a code, and removes it all.
func TestMFAServiceEnrolment(t *testing.T) {
	mfaServices(t, nil, func(t *testing.T, e *svcEnv) {
		u, _ := e.st.CreateUser(t.Context(), store.User{Username: "alice"})
		if _, err := e.a.Validate(t.Context(), u, "000000"); !errors.Is(err, ErrMFAKeyNotFound) {
			t.Fatalf("Validate before Enable: %v, want ErrMFAKeyNotFound", err)
		}
		if err := e.a.Disable(t.Context(), u, MFACode{OTP: "000000"}); !errors.Is(err, ErrMFANotEnrolled) {
			t.Fatalf("Disable before enrolment: %v, want ErrMFANotEnrolled", err)
		}
		e.a.Enable(t.Context(), u)
		uri, err := e.b.Enable(t.Context(), e.user(t, u.ID))
		if u = e.user(t, u.ID); err != nil || len(u.MFA.Keys) != 1 {
			t.Fatalf("Enable twice: %v, %d keys; want the second to replace the first", err, len(u.MFA.Keys))
		}
		secret := secretOf(t, uri)
		_, err = e.a.Validate(t.Context(), u, "000000")
		wantRefusal(t, "Validate with a wrong code", err, ErrMFARefused, "enrollment: wrong code")
		if codes, err := e.a.Validate(t.Context(), u, e.code(t, secret)); err != nil || len(codes) != BackupCodeCount {
			t.Fatalf("Validate = %d codes, %v", len(codes), err)
		}
		if _, err := e.b.Enable(t.Context(), e.user(t, u.ID)); !errors.Is(err, ErrMFAEnrolled) {
			t.Fatalf("Enable once enrolled: %v, want ErrMFAEnrolled", err)
		}
		e.clock.advance(TOTPPeriod)
		if err := e.b.Disable(t.Context(), e.user(t, u.ID), MFACode{OTP: e.code(t, secret), BackupCode: "x"}); !errors.Is(err, ErrMFACodeChoice) {
			t.Fatalf("Disable with two codes: %v, want ErrMFACodeChoice", err)
		}
		if err := e.b.Disable(t.Context(), e.user(t, u.ID), MFACode{OTP: e.code(t, secret)}); err != nil || e.user(t, u.ID).MFA != nil {
			t.Fatalf("Disable: %v", err)
		}
	})
}

// TestMFAServiceKeys: keys are added up to MaxMFAKeys before enrolment;
// once enrolled, a key is added only with a code, and activating it
// returns no backup codes; a user deletes its own last active key only
// with a code, which resets its MFA, while an admin's deletion needs
// none.
func TestMFAServiceKeys(t *testing.T) {
	mfaServices(t, nil, func(t *testing.T, e *svcEnv) {
		u, _ := e.st.CreateUser(t.Context(), store.User{Username: "bob"})
		for range MaxMFAKeys {
			if _, _, err := e.a.CreateKey(t.Context(), u, MFACode{}); err != nil {
				t.Fatal(err)
			}
		}
		if _, _, err := e.a.CreateKey(t.Context(), u, MFACode{}); !errors.Is(err, ErrMFAKeysFull) {
			t.Fatalf("key %d: %v, want ErrMFAKeysFull", MaxMFAKeys+1, err)
		}

		u, secret, backup := e.enroll(t, "alice")
		first := u.MFA.Keys[0].ID
		if _, _, err := e.a.CreateKey(t.Context(), u, MFACode{}); !errors.Is(err, ErrMFACodeChoice) {
			t.Fatalf("a key without a code once enrolled: %v, want ErrMFACodeChoice", err)
		}
		k, uri, err := e.a.CreateKey(t.Context(), u, MFACode{OTP: e.code(t, secret)})
		if err != nil {
			t.Fatal(err)
		}
		if codes, err := e.b.ActivateKey(t.Context(), e.user(t, u.ID), k.ID, e.code(t, secretOf(t, uri))); err != nil || codes != nil {
			t.Fatalf("ActivateKey of a second key = %v, %v; want no backup codes", codes, err)
		}
		u = e.user(t, u.ID)
		if used, err := e.a.DeleteOwnKey(t.Context(), u, first, MFACode{}); err != nil || used {
			t.Fatalf("DeleteOwnKey of one of two active keys = %v, %v; want no code needed", used, err)
		}
		u = e.user(t, u.ID)
		if _, err := e.a.DeleteOwnKey(t.Context(), u, k.ID, MFACode{}); !errors.Is(err, ErrMFALastKey) {
			t.Fatalf("DeleteOwnKey of the last key without a code: %v, want ErrMFALastKey", err)
		}
		if used, err := e.a.DeleteOwnKey(t.Context(), u, k.ID, MFACode{BackupCode: backup[0]}); err != nil || !used {
			t.Fatalf("DeleteOwnKey of the last key with a backup code = %v, %v", used, err)
		}
		if u = e.user(t, u.ID); MFAActive(u.MFA) || (u.MFA != nil && len(u.MFA.BackupCodes) != 0) {
			t.Errorf("after the last key: %+v; want no keys and no backup codes", u.MFA)
		}

		u, _, _ = e.enroll(t, "carol")
		if err := e.b.DeleteKey(t.Context(), u, u.MFA.Keys[0].ID); err != nil || MFAActive(e.user(t, u.ID).MFA) {
			t.Errorf("an admin's DeleteKey of the last key: %v", err)
		}
	})
}

// TestMFAServiceTrustedDevices: a login may trust its device; its token
// then names the device until it expires, and a deleted or expired
// device is gone.
func TestMFAServiceTrustedDevices(t *testing.T) {
	mfaServices(t, nil, func(t *testing.T, e *svcEnv) {
		u, secret, _ := e.enroll(t, "alice")
		ch, _ := e.a.Challenge(t.Context(), u, "", time.Hour)
		res, err := e.a.Login(t.Context(), MFALogin{Username: "alice", Secret: ch, Code: MFACode{OTP: e.code(t, secret)}, TrustDevice: true, DeviceName: "laptop"})
		if err != nil || res.Device == nil || res.Device.Name != "laptop" || res.DeviceToken == "" {
			t.Fatalf("Login trusting the device = %+v, %v", res, err)
		}
		u = e.user(t, u.ID)
		if id, ok := e.b.TrustedDevice(u, res.DeviceToken); !ok || id != res.Device.ID {
			t.Errorf("TrustedDevice(its token) = %q, %v", id, ok)
		}
		if _, ok := e.b.TrustedDevice(u, res.DeviceToken+"x"); ok {
			t.Error("another token is trusted")
		}
		if got := e.b.TrustedDevices(u); len(got) != 1 || got[0].ID != res.Device.ID {
			t.Errorf("TrustedDevices = %+v", got)
		}
		e.clock.advance(time.Hour)
		if _, ok := e.b.TrustedDevice(u, res.DeviceToken); ok || len(e.b.TrustedDevices(u)) != 0 {
			t.Error("an expired device is still trusted or listed")
		}
		if err := e.a.DeleteTrustedDevice(t.Context(), u, res.Device.ID); !errors.Is(err, ErrMFADeviceNotFound) {
			t.Errorf("DeleteTrustedDevice of an expired device: %v, want ErrMFADeviceNotFound", err)
		}
	})
}

// TestMFAServiceSwitchedOff: with MFA off, nothing is required, due or
// locked, and the operations that change the state are refused; the
// stored state stays.
func TestMFAServiceSwitchedOff(t *testing.T) {
	mfaServices(t, nil, func(t *testing.T, e *svcEnv) {
		u, _, _ := e.enroll(t, "alice")
		if _, err := e.st.UpdateUser(t.Context(), u.ID, func(x *store.User) error {
			x.EnforceMFAEnrollment, x.MFA.LockedUntil = true, e.clock.now().Add(time.Hour)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		off, err := NewMFAService(t.Context(), MFAServiceOptions{Store: e.st, Now: e.clock.now})
		if err != nil {
			t.Fatal(err)
		}
		u = e.user(t, u.ID)
		due, _ := e.st.CreateUser(t.Context(), store.User{Username: "bob", EnforceMFAEnrollment: true})
		if off.Enabled() || off.Required(u) || off.Locked(u) || off.EnrollmentDue(due) || !e.a.EnrollmentDue(due) {
			t.Errorf("MFA off: Required %v, Locked %v, EnrollmentDue %v (on: %v)", off.Required(u), off.Locked(u), off.EnrollmentDue(due), e.a.EnrollmentDue(due))
		}
		if _, err := off.Enable(t.Context(), u); !errors.Is(err, ErrMFADisabled) {
			t.Errorf("Enable with MFA off: %v", err)
		}
		if _, err := off.Login(t.Context(), MFALogin{Username: "alice", Secret: "x", Code: MFACode{OTP: "000000"}}); !errors.Is(err, ErrMFADisabled) {
			t.Errorf("Login with MFA off: %v", err)
		}
		if !e.a.Required(u) {
			t.Error("the stored state is gone")
		}
	})
}
