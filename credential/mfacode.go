package credential

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/warden-mqtt/warden/store"
)

// codeMatch is what a code matched on the user record as read: the key
// and time step of a TOTP code, or the hash of a backup code. The
// expensive part (decrypting, HMACs) runs once, there; the update then
// only checks that what matched is still unused.
type codeMatch struct {
	keyID, backupHash string
	step              uint64
	// reason says why nothing matched, for the log.
	reason string
}

// match checks code against u's MFA state as read.
func (s *MFAService) match(u store.User, code MFACode, now time.Time) codeMatch {
	c := codeMatch{reason: "wrong code"}
	switch {
	case u.MFA == nil:
	case code.OTP != "":
		c = s.matchOTP(u, code.OTP, now)
	default:
		c.reason = "wrong backup code"
		if i := MatchBackupCode(u.MFA.BackupCodes, code.BackupCode); i >= 0 {
			c.backupHash = u.MFA.BackupCodes[i]
		}
	}
	return c
}

// matchOTP finds the active key of u whose current code otp is.
func (s *MFAService) matchOTP(u store.User, otp string, now time.Time) codeMatch {
	c := codeMatch{reason: "wrong code"}
	for _, k := range u.MFA.Keys {
		if k.Status != store.MFAStatusActive {
			continue
		}
		step, err := s.mfa.Check(u.ID, k, otp, now)
		switch {
		case err == nil:
			return codeMatch{keyID: k.ID, step: step}
		case errors.Is(err, ErrCodeReplayed):
			c.reason = "replayed code"
		case errors.Is(err, ErrSecretUnreadable):
			s.log.Error("mfa key cannot be decrypted: was the store restored with another encryption key?", "user", u.Username, "key_id", k.ID)
		}
	}
	return c
}

// spend consumes on m, as stored now, what c matched: the key's step or
// the backup code. It is false when nothing matched, or what did was
// used meanwhile.
func (c codeMatch) spend(m *store.MFAState) bool {
	switch {
	case c.keyID != "":
		i := slices.IndexFunc(m.Keys, func(k store.MFAKey) bool { return k.ID == c.keyID && k.Status == store.MFAStatusActive })
		if i < 0 || m.Keys[i].LastStep >= c.step {
			return false
		}
		m.Keys[i].LastStep = c.step
		return true
	case c.backupHash != "":
		i := slices.Index(m.BackupCodes, c.backupHash)
		if i < 0 {
			return false
		}
		m.BackupCodes = slices.Delete(m.BackupCodes, i, i+1)
		return true
	}
	return false
}

// useCode checks a TOTP or backup code of u and, in the same atomic
// update, consumes it (the key's step, or the backup code) and applies
// then. guard, when set, runs first on the stored state; its error
// refuses without counting a failure (a wrong login secret must not let
// anyone lock an account). A wrong code counts towards the lock: after
// MaxFailures of them within Backoff, the pending login is void and the
// account locked for Backoff (ErrMFALocked). Every refusal is logged and
// returned as an *MFARefusal.
func (s *MFAService) useCode(ctx context.Context, u store.User, code MFACode, guard func(*store.MFAState) error, then func(*store.User)) error {
	now := s.o.Now().UTC()
	c := s.match(u, code, now)
	var refusal error
	var why string
	err := s.update(ctx, u.ID, func(x *store.User) error {
		var write bool
		refusal, why, write = s.spend(x.MFA, c, guard, now)
		switch {
		case refusal == nil:
			x.MFA.FailedCodes, x.MFA.FailedSince = 0, time.Time{}
			if then != nil {
				then(x)
			}
		case !write:
			return errUnchanged
		}
		return nil // a success, or the failure count, is written
	})
	if err != nil || refusal == nil {
		return err
	}
	if errors.Is(refusal, ErrMFALocked) && s.o.Lockout != nil {
		// As too many wrong passwords would, from every address.
		s.o.Lockout.Lock(u.Username)
	}
	return s.refuse("mfa code refused", u.Username, refusal, why)
}

// spend checks c against m, as stored now, and consumes it: it returns
// nil, or the refusal and why; write says that m changed all the same (a
// failure was counted).
func (s *MFAService) spend(m *store.MFAState, c codeMatch, guard func(*store.MFAState) error, now time.Time) (refusal error, why string, write bool) {
	switch {
	case !MFAActive(m):
		return ErrMFARefused, "not enrolled", false
	case now.Before(m.LockedUntil):
		return ErrMFALocked, "locked", false
	}
	if guard != nil {
		if err := guard(m); errors.Is(err, ErrMFARefused) {
			return err, "no valid login challenge", false // the login's guard
		} else if err != nil {
			return err, err.Error(), false // others name their refusal
		}
	}
	if c.spend(m) {
		return nil, "", false
	}
	why = c.reason
	if c.keyID != "" || c.backupHash != "" {
		why = "code used concurrently"
	}
	if refusal = s.countFailure(m, now); errors.Is(refusal, ErrMFALocked) {
		why += "; too many failures, locked"
	}
	return refusal, why, true
}

// countFailure records a wrong code on m and says how to answer it.
func (s *MFAService) countFailure(m *store.MFAState, now time.Time) error {
	if m.FailedSince.IsZero() || now.Sub(m.FailedSince) > s.o.Backoff {
		m.FailedCodes, m.FailedSince = 0, now
	}
	m.FailedCodes++
	limit, lock := s.o.MaxFailures, true
	if limit < 0 { // lock switched off: still void the challenge
		limit, lock = DefaultMFAMaxFailures, false
	}
	if m.FailedCodes < limit {
		return ErrMFARefused
	}
	m.Challenge = nil
	m.FailedCodes, m.FailedSince = 0, time.Time{}
	if !lock {
		return ErrMFARefused
	}
	m.LockedUntil = now.Add(s.o.Backoff)
	return ErrMFALocked
}
