package admin

import (
	"context"
	"net/http"

	"github.com/warden-mqtt/warden/account"
	"github.com/warden-mqtt/warden/store"
)

// actor is c as the account rules see it; r, when set, is the request it
// sent (its remote address counts towards the login lockout).
func (c *caller) actor(r *http.Request) account.Actor {
	a := account.Actor{User: c.user, Permissions: c.perms, Token: c.claims}
	if r != nil {
		a.Remote = r.RemoteAddr
	}
	return a
}

// requireAdmin refuses (403) a caller that does not hold RoleAdmin the
// action named by what (account.Service.RequireAdmin).
func (s *Server) requireAdmin(ctx context.Context, c *caller, what string) error {
	return s.accounts.RequireAdmin(ctx, c.actor(nil), what)
}

// checkTakeoverOf refuses (403) a change of how target logs in unless c
// holds everything target holds (account.Service.CheckTakeover).
func (s *Server) checkTakeoverOf(ctx context.Context, c *caller, target store.User) error {
	return s.accounts.CheckTakeover(ctx, c.actor(nil), target)
}
