package admin

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/warden-mqtt/warden/audit"
	"github.com/warden-mqtt/warden/directory"
	"github.com/warden-mqtt/warden/store"
)

// Directory decides the password of directory users at the password
// logins (directory.Service): Login returns the user as provisioned, or an
// error matching directory.ErrInvalidCredentials, directory.ErrShadowed or
// directory.ErrUnavailable; any other error is the store's.
type Directory interface {
	Login(ctx context.Context, username, password string) (store.User, error)
}

// errDirectoryDown answers a directory login the directory could not
// decide: a fault of the server, never a verdict on the password.
var errDirectoryDown = retryLater(http.StatusServiceUnavailable, 5*time.Second, "the directory is unavailable; retry later")

// usesDirectory: the login of username (u, when found) is the directory's
// to check: a directory user, or a name the store does not know.
func (s *Server) usesDirectory(u store.User, lookup error) bool {
	return s.opts.Directory != nil && (errors.Is(lookup, store.ErrNotFound) || directory.IsDirectoryUser(u))
}

// directoryPassword is checkPassword for a directory user or an unknown
// name: the directory checks the password (no argon2id worker is used);
// a refusal counts towards the lockout and is audited as a wrong
// password's is, and the answer is the same errLogin. found says the
// store has u.
func (s *Server) directoryPassword(r *http.Request, username, password string, u store.User, found bool) (store.User, error) {
	ctx := r.Context()
	refuse := func(why string) (store.User, error) {
		s.lockout.Fail(username, r.RemoteAddr)
		s.log.Info("http login refused", "user", username, "remote", r.RemoteAddr, "reason", why)
		s.auditAuth(ctx, audit.ChannelFor(audit.ChannelHTTPLogin, why), username, why)
		return store.User{}, errLogin
	}
	if found {
		switch {
		case u.Suspended:
			return refuse("suspended")
		case !passwordGrant(u):
			return refuse("password grant not allowed")
		case s.mfaLocked(u):
			return refuse("mfa locked")
		}
	}
	got, err := s.opts.Directory.Login(ctx, username, password)
	switch {
	case errors.Is(err, directory.ErrUnavailable):
		s.log.Warn("http login: directory unavailable", "user", username, "error", err)
		return store.User{}, errDirectoryDown
	case errors.Is(err, directory.ErrShadowed):
		return refuse("ldap: local user shadows directory user")
	case errors.Is(err, directory.ErrInvalidCredentials):
		return refuse("ldap: invalid credentials")
	case err != nil:
		return store.User{}, err
	case got.Suspended:
		return refuse("suspended")
	}
	s.lockout.Succeed(username, r.RemoteAddr)
	return got, nil
}
