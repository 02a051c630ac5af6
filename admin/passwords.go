package admin

import (
	"context"

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
// Django, GitHub and Google keep the session that made the change. Each
// revoked record disconnects the MQTT clients that used it, on every
// node. Application tokens stay unless asked: services hold them, and a
// password change is not a reason to break them.
//
// Logins racing the change cannot add a token bound to the old password
// afterwards: the store refuses a token whose password version is stale.
func (s *Server) endSessions(ctx context.Context, u store.User, apps bool, keep string) error {
	n, err := s.st.DeleteUserTokensWhere(ctx, u.ID, func(t store.Token) bool {
		switch {
		case t.ID == keep:
			return false
		case t.Kind == credential.KindLogin:
			return t.PasswordVersion != u.PasswordVersion
		case t.Kind == credential.KindApplication:
			return apps
		}
		return false
	})
	if err != nil {
		s.log.Error("password changed but its user's tokens were not revoked", "user", u.Username, "err", err)
		return err
	}
	s.log.Info("tokens revoked after a password change", "user", u.Username, "count", n, "application_tokens", apps)
	return nil
}

// ownLoginToken is the caller's token if the caller is the user uid and
// the token is a login token: the session a password change keeps.
func ownLoginToken(c *caller, uid string) string {
	if c.user.ID != uid || c.claims.Kind != credential.KindLogin {
		return ""
	}
	return c.claims.TokenID
}
