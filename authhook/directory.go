package authhook

import (
	"context"
	"errors"

	"github.com/warden-mqtt/warden/directory"
	"github.com/warden-mqtt/warden/store"
)

// Directory decides the password of directory users (directory.Service):
// a CONNECT naming a user unknown to the store, or a user whose identity
// provider is the directory, is checked by Login instead of the argon2id
// hash. Login returns the user as provisioned (created at its first login,
// its directory roles updated), or an error matching
// directory.ErrInvalidCredentials, directory.ErrShadowed or
// directory.ErrUnavailable; any other error is the store's.
type Directory interface {
	Login(ctx context.Context, username, password string) (store.User, error)
}

// directoryLogin checks l's password against the directory and, on
// success, puts the user Login returned (with its current directory roles)
// into the cache as l.entry. It is called for an unknown user from
// resolveUser and for a directory user from checkPassword; the proof it
// records (proof.directory) ends the session when the user stops being a
// directory user (Recheck found it gone).
func (h *Hook) directoryLogin(ctx context.Context, l *login) refusal {
	if l.proof.directory {
		return refusal{} // already checked while resolving the user
	}
	u, err := h.opts.Directory.Login(ctx, l.username, l.password)
	switch {
	case errors.Is(err, directory.ErrUnavailable):
		h.log.Warn("mqtt connect: directory unavailable", "user", l.username, "error", err)
		return refusal{kind: refuseUnavailable, reason: "ldap: directory unavailable"}
	case errors.Is(err, directory.ErrShadowed):
		return refusal{kind: refuseBadCredentials, reason: "ldap: local user shadows directory user", count: countOnRefusal}
	case errors.Is(err, directory.ErrInvalidCredentials):
		return refusal{kind: refuseBadCredentials, reason: "ldap: invalid credentials", count: countOnRefusal}
	case err != nil:
		h.log.Warn("mqtt connect: directory login failed", "user", l.username, "error", err)
		return refusal{kind: refuseUnavailable, reason: "store unavailable"}
	}
	e, err := h.model.build(ctx, u, h.epoch.Load())
	if errors.Is(err, errBrokenModel) {
		h.log.Error("mqtt connect: user's permissions do not compile", "user", l.username, "error", err)
		return refusal{kind: refuseNotAuthorized, reason: "broken permissions"}
	} else if err != nil {
		return refusal{kind: refuseUnavailable, reason: "store unavailable"}
	}
	l.entry, l.fromCache = h.model.put(e), false
	l.proof.byPassword, l.proof.pwVersion, l.proof.directory = true, u.PasswordVersion, true
	return refusal{}
}

// usesDirectory says whether u's password is the directory's to check.
func (h *Hook) usesDirectory(u store.User) bool {
	return h.opts.Directory != nil && directory.IsDirectoryUser(u)
}
