package credential

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/warden-mqtt/warden/store"
)

// ErrMFADeviceNotFound: the user has no such trusted device (or it
// expired).
var ErrMFADeviceNotFound = errors.New("trusted device not found")

// Challenge starts the second step of a login of u, whose password was
// right: it returns a secret for Login, stored hashed on u with what the
// login asked for its token (label, ttl), so the second step may reach
// any node.
func (s *MFAService) Challenge(ctx context.Context, u store.User, label string, ttl time.Duration) (string, error) {
	secret, hash, err := NewSecret()
	if err != nil {
		return "", err
	}
	ch := &store.MFAChallenge{SecretHash: hash, ExpiresAt: s.o.Now().UTC().Add(MFAChallengeTTL), TokenTTL: ttl, Label: label}
	_, err = s.o.Store.UpdateUser(ctx, u.ID, func(x *store.User) error {
		if !MFAActive(x.MFA) {
			return ErrMFANotEnrolled // its MFA changed since the password check
		}
		x.MFA.Challenge = ch
		return nil
	})
	if err != nil {
		return "", err
	}
	return secret, nil
}

// MFALogin is the second step of a login.
type MFALogin struct {
	// Username names the user (normalised here, as NormalizeUsername).
	Username string
	// Secret is the first step's (Challenge).
	Secret string
	Code   MFACode
	// Remote is the client's address, for the password lockout and the
	// log.
	Remote string
	// TrustDevice asks for a device token that skips this step on later
	// logins (TrustedDevice); DeviceName names the device in the list.
	TrustDevice bool
	DeviceName  string
}

// MFALoginResult is an accepted second step: the user, and what the
// first step asked for its token.
type MFALoginResult struct {
	User     store.User
	Label    string
	TokenTTL time.Duration
	// Device is the device trusted, when asked, and DeviceToken its
	// token, to give the client once (only its hash is stored).
	Device      *store.TrustedDevice
	DeviceToken string
}

// Login checks the second step of a login: the first step's secret and a
// code of the user. It spends the code and the challenge (one token per
// challenge) and, when asked, trusts the device, all in one atomic
// update. Every refusal tells as little as the first step did: an
// unknown or suspended user, a wrong or expired secret and a wrong code
// are all ErrMFARefused; a username or address blocked by the password
// lockout, or a user locked by wrong codes, is ErrMFALocked. Refusals
// are *MFARefusal.
func (s *MFAService) Login(ctx context.Context, in MFALogin) (MFALoginResult, error) {
	var res MFALoginResult
	switch {
	case !s.o.Enabled:
		return res, ErrMFADisabled
	case !in.Code.Valid():
		return res, ErrMFACodeChoice
	}
	in.Username = NormalizeUsername(in.Username)
	// Made before any check, so a failure to make it spends no code.
	if in.TrustDevice {
		d, token, err := s.newDevice(in.DeviceName)
		if err != nil {
			return res, err
		}
		res.Device, res.DeviceToken = &d, token
	}
	guard := challenge(in.Secret, s.o.Now().UTC())
	u, err := s.loginUser(ctx, in, guard)
	if err != nil {
		return res, err
	}
	var ch store.MFAChallenge
	err = s.useCode(ctx, u, in.Code, guard, func(x *store.User) {
		ch = *x.MFA.Challenge
		x.MFA.Challenge = nil // one token per challenge
		if res.Device != nil {
			s.trustDevice(x.MFA, *res.Device)
		}
	})
	if err != nil {
		return res, err
	}
	if s.o.Lockout != nil {
		s.o.Lockout.Succeed(u.Username, in.Remote)
	}
	res.User, res.Label, res.TokenTTL = u, ch.Label, ch.TokenTTL
	return res, nil
}

// challenge returns the guard of a login's second step: a pending login
// whose secret is secret and which has not expired at now, else
// ErrMFARefused.
func challenge(secret string, now time.Time) func(*store.MFAState) error {
	return func(m *store.MFAState) error {
		c := m.Challenge
		if c == nil || !now.Before(c.ExpiresAt) || !SecretMatches(c.SecretHash, secret) {
			return ErrMFARefused
		}
		return nil
	}
}

// loginUser finds the user of a login's second step and checks, on the
// record as read, that the step may go on. It runs before the atomic
// check (useCode, which checks again), so a wrong secret costs what an
// unknown user does: one read, no transaction.
func (s *MFAService) loginUser(ctx context.Context, in MFALogin, guard func(*store.MFAState) error) (store.User, error) {
	refuse := func(err error, reason string) (store.User, error) {
		return store.User{}, s.refuse("mfa login refused", in.Username, err, reason, "remote", in.Remote)
	}
	if s.o.Lockout != nil {
		if b, _ := s.o.Lockout.Check(in.Username, in.Remote); b != NotBlocked {
			return refuse(ErrMFALocked, "locked")
		}
	}
	u, err := s.o.Store.UserByUsername(ctx, in.Username)
	switch {
	case errors.Is(err, store.ErrNotFound) || (err == nil && u.Suspended):
		return refuse(ErrMFARefused, "unknown or suspended user")
	case err != nil:
		return store.User{}, err
	case s.Locked(u):
		return refuse(ErrMFALocked, "mfa locked")
	case !MFAActive(u.MFA) || guard(u.MFA) != nil:
		return refuse(ErrMFARefused, "no valid login challenge")
	}
	return u, nil
}

// newDevice prepares the record and the token of a device trusted at the
// end of a login. The token is returned once; the record keeps its hash.
func (s *MFAService) newDevice(name string) (store.TrustedDevice, string, error) {
	token, hash, err := NewSecret()
	if err != nil {
		return store.TrustedDevice{}, "", err
	}
	now := s.o.Now().UTC()
	return store.TrustedDevice{ID: store.NewID(), Name: name, TokenHash: hash, CreatedAt: now, ExpiresAt: now.Add(s.o.TrustedDeviceTTL)}, token, nil
}

// trustDevice adds d to m, forgetting expired devices and, when the list
// is full, the one that expires first.
func (s *MFAService) trustDevice(m *store.MFAState, d store.TrustedDevice) {
	now := s.o.Now()
	m.TrustedDevices = slices.DeleteFunc(m.TrustedDevices, func(x store.TrustedDevice) bool { return !now.Before(x.ExpiresAt) })
	for len(m.TrustedDevices) >= MaxTrustedDevices {
		first := slices.MinFunc(m.TrustedDevices, func(a, b store.TrustedDevice) int { return a.ExpiresAt.Compare(b.ExpiresAt) })
		m.TrustedDevices = slices.DeleteFunc(m.TrustedDevices, func(x store.TrustedDevice) bool { return x.ID == first.ID })
	}
	m.TrustedDevices = append(m.TrustedDevices, d)
}

// TrustedDevice returns the id of u's device whose token token is, if it
// has not expired: its login may skip the MFA step. Every device is
// compared, in constant time, so the time taken tells nothing; a token
// of another user, or a deleted one, matches nothing here.
func (s *MFAService) TrustedDevice(u store.User, token string) (id string, ok bool) {
	if token == "" || u.MFA == nil {
		return "", false
	}
	now := s.o.Now()
	for _, d := range u.MFA.TrustedDevices {
		if SecretMatches(d.TokenHash, token) && now.Before(d.ExpiresAt) {
			id = d.ID
		}
	}
	return id, id != ""
}

// TrustedDevices returns u's trusted devices that have not expired (an
// expired one skips nothing any more).
func (s *MFAService) TrustedDevices(u store.User) []store.TrustedDevice {
	if u.MFA == nil {
		return nil
	}
	now := s.o.Now()
	return slices.DeleteFunc(slices.Clone(u.MFA.TrustedDevices), func(d store.TrustedDevice) bool { return !now.Before(d.ExpiresAt) })
}

// DeleteTrustedDevice forgets u's trusted device deviceID: its token no
// longer skips the MFA step. An expired device counts as gone
// (ErrMFADeviceNotFound), as in TrustedDevices; expired ones go with it.
func (s *MFAService) DeleteTrustedDevice(ctx context.Context, u store.User, deviceID string) error {
	now := s.o.Now()
	_, err := s.o.Store.UpdateUser(ctx, u.ID, func(x *store.User) error {
		if x.MFA == nil || !slices.ContainsFunc(x.MFA.TrustedDevices, func(d store.TrustedDevice) bool { return d.ID == deviceID && now.Before(d.ExpiresAt) }) {
			return ErrMFADeviceNotFound
		}
		x.MFA.TrustedDevices = slices.DeleteFunc(x.MFA.TrustedDevices, func(d store.TrustedDevice) bool { return d.ID == deviceID || !now.Before(d.ExpiresAt) })
		return nil
	})
	return err
}
