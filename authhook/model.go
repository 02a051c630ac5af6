package authhook

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/store"
)

// entry is what a node knows about one user: the record and the compiled
// union of its roles' mqtt permissions. Entries are immutable; a change
// builds a new one.
type entry struct {
	user    store.User
	matcher *acl.Matcher
	perms   []acl.Permission // what matcher was compiled from (every context), for Decide
	epoch   uint64           // feed epoch when loading began: older entries never replace newer ones
}

// model caches users (by username) and roles, as read from the store and
// kept current by the change feed. A cached user can connect while the
// store is unreachable.
type model struct {
	st store.Store

	mu    sync.Mutex
	users map[string]*entry // username -> entry
	ids   map[string]string // user ID -> username
	roles map[string]store.Role
}

func newModel(st store.Store) *model {
	return &model{st: st, users: map[string]*entry{}, ids: map[string]string{}, roles: map[string]store.Role{}}
}

// cached returns the entry for username, if any.
func (m *model) cached(username string) *entry {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.users[username]
}

// cachedID returns the entry for a user ID, if any.
func (m *model) cachedID(id string) *entry {
	m.mu.Lock()
	defer m.mu.Unlock()
	if name, ok := m.ids[id]; ok {
		return m.users[name]
	}
	return nil
}

// role returns a role from the cache or the store.
func (m *model) role(ctx context.Context, id string) (store.Role, error) {
	m.mu.Lock()
	r, ok := m.roles[id]
	m.mu.Unlock()
	if ok {
		return r, nil
	}
	r, err := m.st.Role(ctx, id)
	if err != nil {
		return r, err
	}
	m.mu.Lock()
	m.roles[id] = r
	m.mu.Unlock()
	return r, nil
}

// build compiles the user's mqtt permissions from its roles, those given
// by hand and those the directory gave (EffectiveRoles). A role that
// no longer exists grants nothing; any other store error fails the build
// (never a decision from a store error).
func (m *model) build(ctx context.Context, u store.User, epoch uint64) (*entry, error) {
	var perms []acl.Permission
	for _, id := range u.EffectiveRoles() {
		r, err := m.role(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		perms = append(perms, r.Permissions...)
	}
	mt, err := acl.Compile(acl.ContextMQTT, perms)
	if err != nil {
		// The store validates permissions; a broken one here means the data
		// was edited behind warden's back. Deny everything for this user.
		return nil, fmt.Errorf("%w: user %s: %v", errBrokenModel, u.Username, err)
	}
	return &entry{user: u, matcher: mt, perms: perms, epoch: epoch}, nil
}

var errBrokenModel = errors.New("authhook: stored permissions do not compile")

// load reads a user by username from the store and caches it.
func (m *model) load(ctx context.Context, username string, epoch uint64) (*entry, error) {
	u, err := m.st.UserByUsername(ctx, username)
	return m.keep(ctx, u, err, epoch)
}

// loadID reads a user by ID from the store and caches it, as load does by
// username.
func (m *model) loadID(ctx context.Context, id string, epoch uint64) (*entry, error) {
	u, err := m.st.User(ctx, id)
	return m.keep(ctx, u, err, epoch)
}

// keep compiles a user just read (unless the read failed) and caches it.
func (m *model) keep(ctx context.Context, u store.User, err error, epoch uint64) (*entry, error) {
	if err != nil {
		return nil, err
	}
	e, err := m.build(ctx, u, epoch)
	if err != nil {
		return nil, err
	}
	return m.put(e), nil
}

// put caches e unless a newer entry is already there, and returns the
// entry that is cached afterwards.
func (m *model) put(e *entry) *entry {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.users[e.user.Username]; ok && old.epoch > e.epoch {
		return old
	}
	if oldName, ok := m.ids[e.user.ID]; ok && oldName != e.user.Username {
		delete(m.users, oldName)
	}
	m.users[e.user.Username] = e
	m.ids[e.user.ID] = e.user.Username
	return e
}

// drop forgets a user.
func (m *model) drop(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if name, ok := m.ids[id]; ok {
		delete(m.users, name)
		delete(m.ids, id)
	}
}

// setRole replaces (or with ok=false removes) a cached role and returns
// the IDs of cached users that hold it.
func (m *model) setRole(id string, r store.Role, ok bool) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ok {
		m.roles[id] = r
	} else {
		delete(m.roles, id)
	}
	var holders []string
	for _, e := range m.users {
		for _, rid := range e.user.EffectiveRoles() {
			if rid == id {
				holders = append(holders, e.user.ID)
				break
			}
		}
	}
	return holders
}

// userIDs returns every cached user ID.
func (m *model) userIDs() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	ids := make([]string, 0, len(m.ids))
	for id := range m.ids {
		ids = append(ids, id)
	}
	return ids
}

// clearRoles empties the role cache (after a reset).
func (m *model) clearRoles() {
	m.mu.Lock()
	m.roles = map[string]store.Role{}
	m.mu.Unlock()
}
