package credential

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/warden-mqtt/warden/store"
)

// MFAChallengeTTL is how long the secret of a login's first step may be
// used for its second step (MFAService.Login).
const MFAChallengeTTL = 5 * time.Minute

// Limits that keep a user record small: every key and device lives on it.
const (
	// MaxMFAKeys counts pending and active keys; beyond it a new key is
	// refused (ErrMFAKeysFull) until one is deleted.
	MaxMFAKeys = 10
	// MaxTrustedDevices: trusting one more device forgets the one that
	// expires first.
	MaxTrustedDevices = 20
)

// Defaults for MFAServiceOptions fields left zero.
const (
	DefaultMFAMaxFailures   = 5
	DefaultMFABackoff       = 5 * time.Minute
	DefaultTrustedDeviceTTL = 30 * 24 * time.Hour
)

// The answers to a second factor. The text of the MFAService's errors is
// written for clients, as ErrPolicy's: it names neither a secret nor
// anything a client did not send; callers may say more (which field,
// which route). Those about keys and devices are beside the operations.
var (
	// ErrMFADisabled: MFA is switched off (MFAServiceOptions.Enabled).
	ErrMFADisabled = errors.New("MFA is disabled")
	// ErrMFARefused is the one answer to a wrong, replayed or spent code
	// and, at a login's second step, to an unknown or suspended user or a
	// wrong or expired login secret, so that the second step tells
	// nothing the first one did not.
	ErrMFARefused = errors.New("invalid one-time code")
	// ErrMFALocked: too many wrong codes (or passwords) lock the account.
	ErrMFALocked = errors.New("too many failed login attempts")
	// ErrMFACodeChoice: exactly one of a TOTP code and a backup code must
	// be given.
	ErrMFACodeChoice = errors.New("exactly one of a TOTP code and a backup code is required")
)

// MFARefusal is a refused code or MFA login, returned for the audit
// trail: Err is the answer (ErrMFARefused, ErrMFALocked, or what a
// precondition of the step refused), Reason says why in words fit for a
// log, never with a secret. The service has logged it already.
type MFARefusal struct {
	User   string
	Reason string
	Err    error
}

func (r *MFARefusal) Error() string { return r.Err.Error() }

// Unwrap returns the answer, for errors.Is.
func (r *MFARefusal) Unwrap() error { return r.Err }

// MFACode is a second factor: a TOTP code of an active key, or a backup
// code. Exactly one is set.
type MFACode struct {
	OTP        string
	BackupCode string
}

// Valid reports whether exactly one of the two is set.
func (c MFACode) Valid() bool { return (c.OTP == "") != (c.BackupCode == "") }

// Empty reports whether neither is set.
func (c MFACode) Empty() bool { return c.OTP == "" && c.BackupCode == "" }

// MFAServiceOptions configure an MFAService.
type MFAServiceOptions struct {
	// Store holds the users, whose records carry their MFA state, and the
	// cluster's TOTP encryption key.
	Store store.Store
	// Enabled switches MFA on. Off, logins never need a second step,
	// enrollment is never due, nothing is locked, and the operations that
	// change the state answer ErrMFADisabled; the stored state is kept and
	// applies again when MFA is switched on.
	Enabled bool
	// MaxFailures wrong codes within Backoff void the pending login and
	// lock the account for Backoff, on every node; negative: no lock, but
	// DefaultMFAMaxFailures wrong codes still void the pending login.
	MaxFailures int
	Backoff     time.Duration
	// TrustedDeviceTTL is how long a device trusted at a login skips the
	// MFA step.
	TrustedDeviceTTL time.Duration
	// Lockout, when set, is the password lockout: an MFA lock locks the
	// username there too, a username or address it blocks is refused at
	// the MFA step, and a successful MFA login clears its failures.
	Lockout *Lockout
	// Now is the clock of codes, challenges, locks and devices; nil:
	// time.Now. Tests inject one.
	Now func() time.Time
	// Logger receives refusals (with their reason, never a secret) and
	// enrollments; nil: slog.Default().
	Logger *slog.Logger
}

// MFAService holds the rules of users' second factor over the store:
// enrollment, TOTP keys and backup codes, the two-step login with its
// lock, and trusted devices. The state lives on the user record, so
// every change is one atomic UpdateUser that checks and consumes a code
// at once: a code is accepted once, across nodes. Callers decide who may
// act on which user; the service decides what the act does.
type MFAService struct {
	o   MFAServiceOptions
	mfa *MFA
	log *slog.Logger
}

// NewMFAService loads (or creates) the cluster's TOTP encryption key and
// returns the service.
func NewMFAService(ctx context.Context, o MFAServiceOptions) (*MFAService, error) {
	if o.Store == nil {
		return nil, errors.New("credential: MFAServiceOptions.Store is required")
	}
	o.MaxFailures = cmp.Or(o.MaxFailures, DefaultMFAMaxFailures)
	o.Backoff = cmp.Or(max(o.Backoff, 0), DefaultMFABackoff)
	o.TrustedDeviceTTL = cmp.Or(max(o.TrustedDeviceTTL, 0), DefaultTrustedDeviceTTL)
	o.Logger = cmp.Or(o.Logger, slog.Default())
	if o.Now == nil {
		o.Now = time.Now
	}
	m, err := NewMFA(ctx, o.Store)
	if err != nil {
		return nil, err
	}
	return &MFAService{o: o, mfa: m, log: o.Logger}, nil
}

// Enabled reports whether MFA is switched on.
func (s *MFAService) Enabled() bool { return s.o.Enabled }

// Required reports whether a login of u needs its second step.
func (s *MFAService) Required(u store.User) bool { return s.o.Enabled && MFAActive(u.MFA) }

// EnrollmentDue reports whether u must enroll before anything else: its
// enrollment is enforced and it holds no active key.
func (s *MFAService) EnrollmentDue(u store.User) bool {
	return s.o.Enabled && u.EnforceMFAEnrollment && !MFAActive(u.MFA)
}

// Locked reports whether too many wrong codes lock u (on every node: the
// lock is stored).
func (s *MFAService) Locked(u store.User) bool {
	return s.o.Enabled && MFALocked(u.MFA, s.o.Now())
}

// errUnchanged aborts an update whose function decided to write nothing.
var errUnchanged = errors.New("unchanged")

// update is UpdateUser where fn may return errUnchanged to write nothing.
func (s *MFAService) update(ctx context.Context, id string, fn func(*store.User) error) error {
	_, err := s.o.Store.UpdateUser(ctx, id, fn)
	if errors.Is(err, errUnchanged) {
		return nil
	}
	return err
}

// refuse logs msg for a refusal of user's step, with attrs and the
// reason, and returns the refusal.
func (s *MFAService) refuse(msg, user string, err error, reason string, attrs ...any) *MFARefusal {
	args := append(append([]any{"user", user}, attrs...), "reason", reason)
	s.log.Info(msg, args...)
	return &MFARefusal{User: user, Reason: reason, Err: err}
}
