package account

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/store"
)

// What a password change does beyond the hash, for a user's change of
// its own password (ChangePassword) and an admin's (UpdateUser with a
// password) alike.

// PasswordChange is a user's change of its own password. Its JSON names
// are the API's (PUT /api/users/change-password).
type PasswordChange struct {
	// Password is the current password.
	Password    string `json:"password"`
	NewPassword string `json:"newPassword"`
	// RevokeApplicationTokens revokes the user's application tokens too.
	RevokeApplicationTokens bool `json:"revokeApplicationTokens"`
}

// ChangePassword sets a's own password. The current one is required:
// while the login lockout blocks a's user from a.Remote the change is
// refused with ErrLocked, and a wrong one (ErrWrongPassword) counts
// towards the lockout like a failed login. The new one must meet the
// policy (*credential.PolicyError). a's other login tokens are revoked
// (endSessions); the one that made the change stays.
func (s *Service) ChangePassword(ctx context.Context, a Actor, req PasswordChange) error {
	if req.Password == "" || req.NewPassword == "" {
		return errorf(ErrInvalid, "password and newPassword are required")
	}
	if err := s.checkCurrent(ctx, a, req.Password); err != nil {
		return err
	}
	hash, err := s.hashPassword(ctx, req.NewPassword)
	if err != nil {
		return err
	}
	u, err := s.st.UpdateUser(ctx, a.User.ID, func(u *store.User) error {
		setPassword(u, hash)
		return nil
	})
	if err != nil {
		return err
	}
	if err := s.endSessions(ctx, u, req.RevokeApplicationTokens, ownLoginToken(a, u.ID)); err != nil {
		return err
	}
	s.log.Info("password changed", "user", a.User.Username)
	return nil
}

// checkCurrent verifies a's current password pw on the worker pool
// (credential.ErrBusy when no worker is free: not a verdict, nothing
// counts).
func (s *Service) checkCurrent(ctx context.Context, a Actor, pw string) error {
	name := a.User.Username
	if b, _ := s.lockout.Check(name, a.Remote); b != credential.NotBlocked {
		return ErrLocked
	}
	wait, cancel := context.WithTimeout(ctx, s.verifyWait)
	defer cancel()
	ok, err := s.verifier.Check(wait, pw, a.User.PasswordHash)
	if errors.Is(err, credential.ErrBusy) {
		return fmt.Errorf("account: check the current password: %w", err)
	}
	if a.User.PasswordHash == "" || err != nil || !ok {
		s.lockout.Fail(name, a.Remote)
		return ErrWrongPassword
	}
	return nil
}

// hashPassword checks the policy (*credential.PolicyError) and hashes;
// "" stays "" (a user without a password, e.g. certificate only).
func (s *Service) hashPassword(ctx context.Context, pw string) (string, error) {
	if pw == "" {
		return "", nil
	}
	if err := s.policy.Check(pw); err != nil {
		return "", err
	}
	// On the login pool: a hash costs what a verification does, and an
	// actor looping over password changes must not get around the bound.
	wait, cancel := context.WithTimeout(ctx, s.verifyWait)
	defer cancel()
	h, err := s.verifier.Hash(wait, pw, s.params)
	if errors.Is(err, credential.ErrBusy) {
		return "", fmt.Errorf("account: hash the new password: %w", err)
	}
	return h, err
}

// setPassword stores hash as u's password, inside the UpdateUser that
// changes it. A pending MFA login goes too: its first step checked the
// old password. Trusted devices stay: they stand in for the second
// factor, not for the password, and the user manages them itself.
func setPassword(u *store.User, hash string) {
	u.PasswordHash = hash
	if u.MFA != nil {
		u.MFA.Challenge = nil
	}
}

// endSessions runs once u's password changed (u as stored after the
// change): it revokes, in one store transaction, every login token of u
// not issued for the current password, and, when apps is set, every
// application token of u with the tokens exchanged for them. keep, the
// actor's own login token when it changed its own password, stays, as
// Django, GitHub and Google keep the session that made the change, and
// is bound to the new password (rebind). Each revoked record disconnects
// the MQTT clients that used it, on every node. Application tokens stay
// unless asked: services hold them, and a password change is not a
// reason to break them.
//
// The password is changed when this runs, so a client that goes away
// must not stop it (the context is detached from the request's), and a
// store error is tried once more. Should both fail, the login tokens
// left behind are still refused: the API and the broker check a login
// token's password version against the user's.
//
// Logins racing the change cannot add a token bound to the old password
// afterwards: the store refuses a token whose password version is stale.
func (s *Service) endSessions(ctx context.Context, u store.User, apps bool, keep string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), endSessionsTimeout)
	defer cancel()
	match := func(t store.Token) bool {
		switch {
		case t.ID == keep:
			return false
		case t.Kind == credential.KindLogin:
			return t.PasswordVersion != u.PasswordVersion
		case t.Kind == credential.KindApplication:
			return apps
		}
		return false
	}
	n, err := s.st.DeleteUserTokensWhere(ctx, u.ID, match)
	if err != nil {
		n, err = s.st.DeleteUserTokensWhere(ctx, u.ID, match)
	}
	if err != nil {
		s.log.Error("password changed but its user's tokens were not revoked; they are refused by their password version", "user", u.Username, "err", err)
		return err
	}
	s.log.Info("tokens revoked after a password change", "user", u.Username, "count", n, "application_tokens", apps)
	if keep != "" {
		s.rebind(ctx, u, keep)
	}
	return nil
}

// endSessionsTimeout bounds endSessions once detached from its request.
const endSessionsTimeout = 30 * time.Second

// rebind binds the login token keep of u, recorded for the password u
// had, to u's current one, so that the session that changed the password
// goes on (a login token of an older password is refused). The store has
// no update of a token record: it is deleted and recorded again under
// the same ID, which disconnects an MQTT client using it (it may connect
// again with it). A token revoked meanwhile (the delete finds nothing)
// stays revoked; should recording fail, the session ends, as every other
// one of the old password did.
func (s *Service) rebind(ctx context.Context, u store.User, keep string) {
	rec, err := s.st.Token(ctx, keep)
	if err != nil || rec.UserID != u.ID || rec.PasswordVersion == 0 || rec.PasswordVersion == u.PasswordVersion {
		return
	}
	if err := s.st.DeleteToken(ctx, keep); err != nil {
		return
	}
	rec.PasswordVersion = u.PasswordVersion
	if _, err := s.st.CreateToken(ctx, rec); err != nil {
		s.log.Warn("the session that changed the password could not be kept: log in again", "user", u.Username, "err", err)
	}
}

// ownLoginToken is a's token if a is the user uid and the token is a
// login token: the session a password change keeps.
func ownLoginToken(a Actor, uid string) string {
	if a.User.ID != uid || a.Token.Kind != credential.KindLogin {
		return ""
	}
	return a.Token.TokenID
}
