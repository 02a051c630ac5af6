package account

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/store"
)

// RoleAdmin is the built-in administrator role: holding it lifts the
// escalation rule, only its holders may grant it, it cannot be changed or
// deleted, and its last active holder cannot lose it.
const RoleAdmin = "connectware-admin"

// DefaultVerifyWait is how long a password operation waits for a worker
// of the verification pool before it gives up with credential.ErrBusy.
const DefaultVerifyWait = time.Second

// Options configure a Service.
type Options struct {
	// Store holds the users and roles; required.
	Store store.Store
	// Verifier runs the argon2id work (hashing new passwords, checking
	// the current one) on the pool shared with logins; required.
	Verifier *credential.Verifier
	// VerifyWait bounds the wait for a worker; 0: DefaultVerifyWait.
	VerifyWait time.Duration
	// Policy is the password policy new passwords meet; zero:
	// credential.DefaultPolicy.
	Policy credential.Policy
	// Params are the argon2id parameters of new hashes; zero:
	// credential.DefaultParams.
	Params credential.Params
	// Lockout counts the wrong current passwords of a password change as
	// failed logins; nil: a lockout with credential's defaults.
	Lockout *credential.Lockout
	// Logger records every change (never a password); nil: slog.Default.
	Logger *slog.Logger
	// Now stamps registered certificates; nil: time.Now.
	Now func() time.Time
}

// Service applies the rules for changing users and roles over the store.
// It is safe for concurrent use.
type Service struct {
	st         store.Store
	verifier   *credential.Verifier
	verifyWait time.Duration
	policy     credential.Policy
	params     credential.Params
	lockout    *credential.Lockout
	log        *slog.Logger
	now        func() time.Time
}

// New builds a Service, filling the defaults of o.
func New(o Options) (*Service, error) {
	if o.Store == nil || o.Verifier == nil {
		return nil, errors.New("account: Options.Store and Options.Verifier are required")
	}
	if o.VerifyWait <= 0 {
		o.VerifyWait = DefaultVerifyWait
	}
	if o.Policy == (credential.Policy{}) {
		o.Policy = credential.DefaultPolicy()
	}
	if o.Params == (credential.Params{}) {
		o.Params = credential.DefaultParams
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Lockout == nil {
		o.Lockout = credential.NewLockout(credential.LockoutOptions{Now: o.Now})
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Service{
		st: o.Store, verifier: o.Verifier, verifyWait: o.VerifyWait, policy: o.Policy, params: o.Params,
		lockout: o.Lockout, log: o.Logger, now: o.Now,
	}, nil
}

// Actor is who asks for a change, as its surface authenticated it.
type Actor struct {
	// User is the actor's user record.
	User store.User
	// Permissions are its effective permissions, in every context
	// (Service.Permissions).
	Permissions []acl.Permission
	// Token holds the claims of the token it authenticated with: a
	// password change keeps the actor's own login session.
	Token credential.Claims
	// Remote is the address the request came from: the login lockout
	// counts a wrong current password per user and address.
	Remote string
}

// Permissions returns u's effective permissions: the union of its roles'
// permissions, the roles given by hand and by the directory
// (store.User.EffectiveRoles); roles that no longer exist are skipped.
func (s *Service) Permissions(ctx context.Context, u store.User) ([]acl.Permission, error) {
	return permissionsOf(storeRoles{ctx, s.st}, u)
}

// HeldRoles returns the roles u holds, in the order of its effective
// roles (store.User.EffectiveRoles), those that no longer exist skipped:
// the roles Permissions unites.
func (s *Service) HeldRoles(ctx context.Context, u store.User) ([]store.Role, error) {
	return heldRoles(storeRoles{ctx, s.st}, u)
}

// permissionsOf is Permissions with the roles read by roles: from the
// store, or from a transaction, so that a check sees what the change it
// guards sees.
func permissionsOf(roles roleReader, u store.User) ([]acl.Permission, error) {
	held, err := heldRoles(roles, u)
	if err != nil {
		return nil, err
	}
	perms := []acl.Permission{}
	for _, r := range held {
		perms = append(perms, r.Permissions...)
	}
	return perms, nil
}

// heldRoles reads the roles u holds; roles that no longer exist are
// skipped (the store keeps references valid, a race may not). They are
// its effective roles: those given by hand and those its directory gave.
func heldRoles(roles roleReader, u store.User) ([]store.Role, error) {
	return existing(u.EffectiveRoles(), roles.Role)
}

// existing reads the records ids with read, skipping those that do not
// exist (any other error stops it).
func existing[T any](ids []string, read func(id string) (T, error)) ([]T, error) {
	out := make([]T, 0, len(ids))
	for _, id := range ids {
		v, err := read(id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// notFound replaces store.ErrNotFound with missing, the refusal that
// names what is missing.
func notFound(err, missing error) error {
	if errors.Is(err, store.ErrNotFound) {
		return missing
	}
	return err
}
