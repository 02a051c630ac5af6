package admin

import (
	"context"
	"time"

	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/store"
)

// What a password change does beyond the hash, for the self-service
// change (PUT /api/users/change-password) and an admin's (PUT
// /api/users/{id} with password) alike.

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
// caller's own login token when it changed its own password, stays, as
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
// token's password version against the user's (staleLoginToken).
//
// Logins racing the change cannot add a token bound to the old password
// afterwards: the store refuses a token whose password version is stale.
func (s *Server) endSessions(ctx context.Context, u store.User, apps bool, keep string) error {
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
// goes on (staleLoginToken refuses login tokens of an older password).
// The store has no update of a token record: it is deleted and recorded
// again under the same ID, which disconnects an MQTT client using it (it
// may connect again with it). A token revoked meanwhile (the delete
// finds nothing) stays revoked; should recording fail, the session ends,
// as every other one of the old password did.
func (s *Server) rebind(ctx context.Context, u store.User, keep string) {
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

// ownLoginToken is the caller's token if the caller is the user uid and
// the token is a login token: the session a password change keeps.
func ownLoginToken(c *caller, uid string) string {
	if c.user.ID != uid || c.claims.Kind != credential.KindLogin {
		return ""
	}
	return c.claims.TokenID
}
