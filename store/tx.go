package store

import (
	"context"

	"github.com/warden-mqtt/warden/acl"
)

// Tx is the model inside one transaction of Store.Atomic. Reads see the
// transaction's own writes; all writes commit together or not at all;
// each method keeps the invariants its Store namesake keeps (unique
// names, existing roles, the own role renamed with its user). A Tx is
// valid only until the function it was given to returns.
type Tx interface {
	// User returns the user with the ID.
	User(id string) (User, error)
	// UserByUsername returns the user with the username (as
	// Store.UserByUsername).
	UserByUsername(username string) (User, error)
	// Users returns all users ordered by username.
	Users() ([]User, error)
	// CreateUser stores a new user, as Store.CreateUser.
	CreateUser(u User) (User, error)
	// CreateUserWithRole stores u with its own role holding perms, as the
	// package function CreateUserWithRole.
	CreateUserWithRole(u User, perms []acl.Permission) (User, error)
	// UpdateUser applies fn to the user, as Store.UpdateUser.
	UpdateUser(id string, fn func(*User) error) (User, error)
	// DeleteUser removes the user, its tokens and its own roles.
	DeleteUser(id string) error
	// Role returns the role with the ID.
	Role(id string) (Role, error)
	// RoleByName returns the role with the name.
	RoleByName(name string) (Role, error)
	// Roles returns all roles ordered by name.
	Roles() ([]Role, error)
	// CreateRole stores a new role, as Store.CreateRole.
	CreateRole(r Role) (Role, error)
	// UpdateRole applies fn to the role, as Store.UpdateRole.
	UpdateRole(id string, fn func(*Role) error) (Role, error)
}

// modelTx is a Tx over one backend transaction.
type modelTx struct {
	m  *model
	tx txn
}

func (t modelTx) User(id string) (User, error) { return t.m.user(t.tx, id) }
func (t modelTx) UserByUsername(username string) (User, error) {
	return t.m.userByUsername(t.tx, username)
}
func (t modelTx) Users() ([]User, error)          { return t.m.users(t.tx) }
func (t modelTx) CreateUser(u User) (User, error) { return t.m.createUser(t.tx, u) }
func (t modelTx) CreateUserWithRole(u User, perms []acl.Permission) (User, error) {
	return t.m.createUserWithRole(t.tx, u, perms)
}
func (t modelTx) UpdateUser(id string, fn func(*User) error) (User, error) {
	return t.m.updateUser(t.tx, id, fn)
}
func (t modelTx) DeleteUser(id string) error           { return t.m.deleteUser(t.tx, id) }
func (t modelTx) Role(id string) (Role, error)         { return t.m.role(t.tx, id) }
func (t modelTx) RoleByName(name string) (Role, error) { return t.m.roleByName(t.tx, name) }
func (t modelTx) Roles() ([]Role, error)               { return t.m.roles(t.tx) }
func (t modelTx) CreateRole(r Role) (Role, error)      { return t.m.createRole(t.tx, r) }
func (t modelTx) UpdateRole(id string, fn func(*Role) error) (Role, error) {
	return t.m.updateRole(t.tx, id, fn)
}

// Atomic runs fn in one read-write transaction. On Redis the transaction
// is optimistic: fn reruns when a concurrent commit changed what it read
// (a whole list, such as Users, counts as read), so fn must have no side
// effects beyond tx and must not keep tx.
func (m *model) Atomic(ctx context.Context, fn func(Tx) error) error {
	if err := m.foldReady(ctx); err != nil {
		return err
	}
	return m.be.update(ctx, func(tx txn) error { return fn(modelTx{m: m, tx: tx}) })
}
