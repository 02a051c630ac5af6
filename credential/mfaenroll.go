package credential

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/warden-mqtt/warden/store"
)

// Enable starts u's enrollment: a new pending key replaces any pending
// one. It returns the key's otpauth URI, which holds the secret in the
// clear: show it once, never log it.
func (s *MFAService) Enable(ctx context.Context, u store.User) (string, error) {
	if !s.o.Enabled {
		return "", ErrMFADisabled
	}
	if MFAActive(u.MFA) {
		return "", ErrMFAEnrolled
	}
	_, uri, err := s.addKey(ctx, u, func(m *store.MFAState) error {
		if MFAActive(m) {
			return ErrMFAEnrolled
		}
		m.Keys = slices.DeleteFunc(m.Keys, pending)
		return nil
	})
	return uri, err
}

// Validate completes u's enrollment: a current code of its pending key
// activates it. It returns fresh backup codes, to show once.
func (s *MFAService) Validate(ctx context.Context, u store.User, otp string) ([]string, error) {
	if !s.o.Enabled {
		return nil, ErrMFADisabled
	}
	if MFAActive(u.MFA) {
		return nil, ErrMFAEnrolled
	}
	var key store.MFAKey
	if u.MFA != nil {
		for _, k := range u.MFA.Keys {
			if pending(k) {
				key = k
			}
		}
	}
	if key.ID == "" {
		return nil, ErrMFAKeyNotFound
	}
	return s.activateKey(ctx, u, key, otp, func(m *store.MFAState) error {
		if MFAActive(m) {
			return ErrMFAEnrolled
		}
		return nil
	})
}

// The refusals of an enrollment step or a key operation.
var (
	// ErrMFAEnrolled: the user holds an active key already (a key added
	// without a code found it enrolled meanwhile).
	ErrMFAEnrolled = errors.New("user is already enrolled")
	// ErrMFANotEnrolled: the user holds no active key (any more).
	ErrMFANotEnrolled = errors.New("user is not enrolled")
	// ErrMFAKeyNotFound: the user has no such key (Validate: no pending
	// key, Enable first).
	ErrMFAKeyNotFound = errors.New("MFA key not found")
	// ErrMFAKeyActive: the key is active already.
	ErrMFAKeyActive = errors.New("MFA key is already active")
	// ErrMFAKeysFull: the user holds MaxMFAKeys keys.
	ErrMFAKeysFull = fmt.Errorf("at most %d MFA keys per user: delete one first", MaxMFAKeys)
)

// ActivateKey confirms u's pending key keyID with a current code of it.
// The first active key enrols u and returns fresh backup codes, to show
// once; a later key returns none.
func (s *MFAService) ActivateKey(ctx context.Context, u store.User, keyID, otp string) ([]string, error) {
	if !s.o.Enabled {
		return nil, ErrMFADisabled
	}
	var key store.MFAKey
	if u.MFA != nil {
		if i := slices.IndexFunc(u.MFA.Keys, func(k store.MFAKey) bool { return k.ID == keyID }); i >= 0 {
			key = u.MFA.Keys[i]
		}
	}
	switch {
	case key.ID == "":
		return nil, ErrMFAKeyNotFound
	case key.Status == store.MFAStatusActive:
		return nil, ErrMFAKeyActive
	}
	return s.activateKey(ctx, u, key, otp, nil)
}

// pending: k awaits its activation.
func pending(k store.MFAKey) bool { return k.Status == store.MFAStatusPending }

// activateKey confirms u's pending key with a current code of it and, in
// one atomic update, marks it active and consumes the code's step, so
// the code cannot log in afterwards. guard, when set, runs first on the
// stored state; its error refuses. The user's first active key enrols
// it: fresh backup codes replace any old ones and are returned, to show
// once; codes is nil when the user was enrolled already. Enrolling also
// drops the user's other pending keys: they were created without a code
// of an active key (there was none), and once enrolled a key is added
// only with one (CreateKey). A wrong or replayed code is an *MFARefusal;
// a key deleted or replaced meanwhile, or a code just used, is
// ErrMFARefused.
func (s *MFAService) activateKey(ctx context.Context, u store.User, key store.MFAKey, otp string, guard func(*store.MFAState) error) (codes []string, err error) {
	now := s.o.Now().UTC()
	step, err := s.mfa.Check(u.ID, key, otp, now)
	if err != nil {
		return nil, s.enrollmentRefused(u.Username, err)
	}
	codes, hashes, err := NewBackupCodes()
	if err != nil {
		return nil, err
	}
	var enrols bool
	_, err = s.o.Store.UpdateUser(ctx, u.ID, func(x *store.User) error {
		if guard != nil {
			if err := guard(x.MFA); err != nil {
				return err
			}
		}
		i := -1
		if x.MFA != nil {
			i = slices.IndexFunc(x.MFA.Keys, func(k store.MFAKey) bool { return k.ID == key.ID && pending(k) })
		}
		if i < 0 || x.MFA.Keys[i].LastStep >= step {
			return ErrMFARefused // replaced or deleted, or the code was just used
		}
		enrols = !MFAActive(x.MFA)
		k := &x.MFA.Keys[i]
		k.Status, k.ActivatedAt, k.LastStep = store.MFAStatusActive, now, step
		if enrols {
			x.MFA.BackupCodes = hashes
			x.MFA.FailedCodes, x.MFA.FailedSince = 0, time.Time{}
			x.MFA.Keys = slices.DeleteFunc(x.MFA.Keys, pending)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !enrols {
		s.log.Info("mfa key activated", "user", u.Username, "key_id", key.ID)
		return nil, nil
	}
	s.log.Info("mfa enrolled", "user", u.Username, "key_id", key.ID)
	return codes, nil
}

// enrollmentRefused logs a code refused at an activation and returns the
// refusal, whose reason says so.
func (s *MFAService) enrollmentRefused(username string, err error) error {
	reason := "wrong code"
	switch {
	case errors.Is(err, ErrCodeReplayed):
		reason = "replayed code"
	case errors.Is(err, ErrSecretUnreadable):
		reason = "key cannot be decrypted"
	}
	r := s.refuse("mfa code refused", username, ErrMFARefused, reason, "during", "enrollment")
	r.Reason = "enrollment: " + reason
	return r
}

// CreateKey adds a pending TOTP key for u and returns it with its
// otpauth URI, which holds the secret in the clear: show it once. Once u
// is enrolled, code (of u's MFA) is needed: it is checked and spent in
// the update that adds the key, so a wrong code adds nothing and counts
// towards the MFA lock, and a stolen session cannot add a factor of its
// own. Before, code is not looked at.
func (s *MFAService) CreateKey(ctx context.Context, u store.User, code MFACode) (store.MFAKey, string, error) {
	switch {
	case !s.o.Enabled:
		return store.MFAKey{}, "", ErrMFADisabled
	case MFAActive(u.MFA) && !code.Valid():
		return store.MFAKey{}, "", ErrMFACodeChoice
	case MFAActive(u.MFA):
		return s.addKeyWithCode(ctx, u, code)
	}
	return s.addKey(ctx, u, func(m *store.MFAState) error {
		if MFAActive(m) {
			return ErrMFAEnrolled
		}
		return keysFull(m)
	})
}

// keysFull refuses a key beyond MaxMFAKeys.
func keysFull(m *store.MFAState) error {
	if len(m.Keys) >= MaxMFAKeys {
		return ErrMFAKeysFull
	}
	return nil
}

// addKey creates a pending TOTP key for u and stores it. prepare runs
// first on the stored state (never nil), in the same atomic update: its
// error refuses, and it may make room. It returns the stored key and its
// otpauth URI.
func (s *MFAService) addKey(ctx context.Context, u store.User, prepare func(*store.MFAState) error) (store.MFAKey, string, error) {
	key, uri, err := s.mfa.NewKey(u.ID, u.Username, s.o.Now().UTC())
	if err != nil {
		return store.MFAKey{}, "", err
	}
	_, err = s.o.Store.UpdateUser(ctx, u.ID, func(x *store.User) error {
		if x.MFA == nil {
			x.MFA = &store.MFAState{}
		}
		if err := prepare(x.MFA); err != nil {
			return err
		}
		x.MFA.Keys = append(x.MFA.Keys, key)
		return nil
	})
	if err != nil {
		return store.MFAKey{}, "", err
	}
	return key, uri, nil
}

// addKeyWithCode is addKey for an enrolled user: code is checked and
// spent by useCode in the update that adds the key.
func (s *MFAService) addKeyWithCode(ctx context.Context, u store.User, code MFACode) (store.MFAKey, string, error) {
	key, uri, err := s.mfa.NewKey(u.ID, u.Username, s.o.Now().UTC())
	if err != nil {
		return store.MFAKey{}, "", err
	}
	if err := s.useCode(ctx, u, code, keysFull, func(x *store.User) { x.MFA.Keys = append(x.MFA.Keys, key) }); err != nil {
		return store.MFAKey{}, "", err
	}
	return key, uri, nil
}

// Disable removes u's MFA (keys, backup codes, trusted devices, a pending
// login, a lock) after a valid code.
func (s *MFAService) Disable(ctx context.Context, u store.User, code MFACode) error {
	if err := s.enrolledCode(u, code); err != nil {
		return err
	}
	return s.useCode(ctx, u, code, nil, func(x *store.User) { x.MFA = nil })
}

// RegenerateBackupCodes replaces u's backup codes after a valid code (a
// backup code used for it is spent like any other) and returns the new
// ones, to show once.
func (s *MFAService) RegenerateBackupCodes(ctx context.Context, u store.User, code MFACode) ([]string, error) {
	if err := s.enrolledCode(u, code); err != nil {
		return nil, err
	}
	codes, hashes, err := NewBackupCodes()
	if err != nil {
		return nil, err
	}
	if err := s.useCode(ctx, u, code, nil, func(x *store.User) { x.MFA.BackupCodes = hashes }); err != nil {
		return nil, err
	}
	return codes, nil
}

// enrolledCode checks what Disable and RegenerateBackupCodes need: MFA
// on, one code, u enrolled.
func (s *MFAService) enrolledCode(u store.User, code MFACode) error {
	switch {
	case !s.o.Enabled:
		return ErrMFADisabled
	case !code.Valid():
		return ErrMFACodeChoice
	case !MFAActive(u.MFA):
		return ErrMFANotEnrolled
	}
	return nil
}

// ErrMFALastKey: a user deletes its own last active key only with a code
// (DeleteOwnKey), so a session alone cannot switch MFA off.
var ErrMFALastKey = errors.New("last active MFA key: a current code or a backup code is required to delete it")

// DeleteOwnKey deletes u's key keyID at u's own request. Its last active
// key goes only with a current code or a backup code (ErrMFALastKey
// without), checked, spent and counted as Disable does: otherwise a
// session alone could switch MFA off. codeUsed says whether a code was
// spent. When no active key is left, u is no longer enrolled and its
// backup codes, trusted devices and pending login go too.
func (s *MFAService) DeleteOwnKey(ctx context.Context, u store.User, keyID string, code MFACode) (codeUsed bool, err error) {
	switch {
	case !s.o.Enabled:
		return false, ErrMFADisabled
	case !lastActiveKey(u.MFA, keyID):
		return false, s.deleteKey(ctx, u.ID, keyID, true)
	case code.Empty():
		return false, ErrMFALastKey
	case !code.Valid():
		return false, ErrMFACodeChoice
	}
	exists := func(m *store.MFAState) error {
		if !hasKey(m, keyID) {
			return ErrMFAKeyNotFound
		}
		return nil
	}
	if err := s.useCode(ctx, u, code, exists, func(x *store.User) { removeKey(x.MFA, keyID) }); err != nil {
		return false, err
	}
	return true, nil
}

// DeleteKey deletes u's key keyID at another user's request (an admin's,
// for a lost phone): no code is needed, and removing the last active key
// resets u's second factor as DeleteOwnKey would.
func (s *MFAService) DeleteKey(ctx context.Context, u store.User, keyID string) error {
	if !s.o.Enabled {
		return ErrMFADisabled
	}
	return s.deleteKey(ctx, u.ID, keyID, false)
}

// deleteKey deletes key keyID of user userID; own refuses the last
// active key (it became the last one meanwhile).
func (s *MFAService) deleteKey(ctx context.Context, userID, keyID string, own bool) error {
	_, err := s.o.Store.UpdateUser(ctx, userID, func(x *store.User) error {
		if !hasKey(x.MFA, keyID) {
			return ErrMFAKeyNotFound
		}
		if own && lastActiveKey(x.MFA, keyID) {
			return ErrMFALastKey
		}
		removeKey(x.MFA, keyID)
		return nil
	})
	return err
}

// hasKey: m holds key id.
func hasKey(m *store.MFAState, id string) bool {
	return m != nil && slices.ContainsFunc(m.Keys, func(k store.MFAKey) bool { return k.ID == id })
}

// lastActiveKey: id is the only active key of m.
func lastActiveKey(m *store.MFAState, id string) bool {
	if m == nil {
		return false
	}
	active, hit := 0, false
	for _, k := range m.Keys {
		if k.Status == store.MFAStatusActive {
			active++
			hit = hit || k.ID == id
		}
	}
	return hit && active == 1
}

// removeKey deletes key id from m; when no active key is left, the user
// is no longer enrolled and its backup codes, trusted devices and pending
// login go too, as with a reset.
func removeKey(m *store.MFAState, id string) {
	m.Keys = slices.DeleteFunc(m.Keys, func(k store.MFAKey) bool { return k.ID == id })
	if !MFAActive(m) {
		m.BackupCodes, m.TrustedDevices, m.Challenge = nil, nil, nil
	}
}
