package account

import (
	"context"
	"errors"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/store"
)

// roleReader reads roles by ID and by name: a store.Tx, or the store
// through storeRoles.
type roleReader interface {
	Role(id string) (store.Role, error)
	RoleByName(name string) (store.Role, error)
}

// storeRoles reads roles from the store outside a transaction.
type storeRoles struct {
	ctx context.Context
	st  store.Store
}

func (s storeRoles) Role(id string) (store.Role, error) {
	return s.st.Role(s.ctx, id)
}

func (s storeRoles) RoleByName(name string) (store.Role, error) {
	return s.st.RoleByName(s.ctx, name)
}

// readsRoles reports whether a may read roles (GET /api/roles, the
// http permission every surface's role listing goes by), and so learn a
// role's ID from an error. Asked only when a role is missing, so the
// compiled matcher is built on the error path alone.
func (a Actor) readsRoles() bool {
	m, err := acl.Compile(acl.ContextHTTP, a.Permissions)
	return err == nil && m.Bind(a.User.Username, "").Allows("/api/roles", acl.OpRead)
}

// missingRole answers a role ID (of field, "roles" or "roleId") that
// names no role with plain, unless it is the name of a role and the actor
// may read roles: then the error says that the field takes IDs and gives
// that role's, the mistake Connectware's "(Must be roleId, not role
// name.)" warns of. The kind is plain's either way, so it tells an actor
// that may not read roles nothing about which names exist.
func missingRole(roles roleReader, a Actor, field, value string, plain *Error) error {
	if !a.readsRoles() {
		return plain
	}
	ro, err := roles.RoleByName(value)
	if errors.Is(err, store.ErrNotFound) {
		return plain
	}
	if err != nil {
		return err
	}
	what := "role IDs"
	if field == "roleId" {
		what = "a role ID"
	}
	return errorf(plain.Kind, "%s takes %s (see GET /api/roles); the role named %q has ID %s", field, what, ro.Name, ro.ID)
}
