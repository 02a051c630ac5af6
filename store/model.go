package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warden-mqtt/warden/acl"
)

// model implements Store over a backend. All invariants live here, once,
// for every backend.
type model struct {
	be   backend
	feed *feed
	now  func() time.Time

	// foldRepaired is set once the username fold index has been checked
	// against the users in this process (username.go).
	foldRepaired atomic.Bool
	foldMu       sync.Mutex
}

func newModel(be backend, f *feed) *model {
	return &model{be: be, feed: f, now: func() time.Time { return time.Now().UTC() }}
}

// collectors are the backend's own metrics (the Redis change feed's
// errors), which Instrument registers; none for bbolt.
func (m *model) collectors() []prometheus.Collector {
	if c, ok := m.be.(interface{ collectors() []prometheus.Collector }); ok {
		return c.collectors()
	}
	return nil
}

// NewID returns a random identifier in UUID v4 form.
func NewID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("store: crypto/rand failed: " + err.Error())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// maxNameBytes bounds every stored name and key.
const maxNameBytes = 1024

// validName rejects names that cannot be stored as keys or shown safely.
func validName(what, name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: %s is empty", invalid, what)
	case len(name) > maxNameBytes:
		return fmt.Errorf("%w: %s is longer than %d bytes", invalid, what, maxNameBytes)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: %s is not valid UTF-8", invalid, what)
	case strings.ContainsRune(name, 0):
		return fmt.Errorf("%w: %s contains NUL", invalid, what)
	}
	return nil
}

func validPermissions(perms []acl.Permission) error {
	for i, p := range perms {
		if err := p.Validate(); err != nil {
			return fmt.Errorf("%w: permission %d: %w", invalid, i, err)
		}
	}
	return nil
}

// ---- users ----

func (m *model) CreateUser(ctx context.Context, u User) (User, error) {
	if err := m.foldReady(ctx); err != nil {
		return User{}, err
	}
	var out User
	err := m.be.update(ctx, func(tx txn) (err error) {
		out, err = m.createUser(tx, u)
		return err
	})
	return out, err
}

// createUser stores a new user (NFC username, unique also under case
// folding) in tx; errors carry the operation.
func (m *model) createUser(tx txn, u User) (User, error) {
	u.Username = NormalizeUsername(u.Username)
	if err := validName("username", u.Username); err != nil {
		return User{}, fmt.Errorf("create user %q: %w", u.Username, err)
	}
	now := m.now()
	if u.ID == "" {
		u.ID = NewID()
	}
	if u.CreatedAt.IsZero() {
		u.CreatedAt = now
	}
	u.UpdatedAt = now
	if u.PasswordHash != "" && u.PasswordVersion == 0 {
		u.PasswordVersion = 1
	}
	err := func() error {
		if err := m.checkUser(tx, u, ""); err != nil {
			return err
		}
		if raw, err := tx.get(bucketUsers, u.ID); err != nil {
			return err
		} else if raw != nil {
			return fmt.Errorf("%w: user id %q exists", conflict, u.ID)
		}
		return m.writeUser(tx, u, "")
	}()
	if err != nil {
		return User{}, fmt.Errorf("create user %q: %w", u.Username, err)
	}
	return u, nil
}

// checkUser enforces the username's uniqueness, exact and under case
// folding, and that roles exist. oldUsername is "" for a new user.
func (m *model) checkUser(tx txn, u User, oldUsername string) error {
	if u.Username != oldUsername {
		id, err := tx.get(bucketUsernames, u.Username)
		if err != nil {
			return err
		}
		if id != nil {
			return fmt.Errorf("%w: username %q is taken", conflict, u.Username)
		}
		if err := checkFoldFree(tx, u.Username, u.ID); err != nil {
			return err
		}
	}
	for _, rid := range slices.Concat(u.Roles, u.LdapRoles) {
		raw, err := tx.get(bucketRoles, rid)
		if err != nil {
			return err
		}
		if raw == nil {
			return fmt.Errorf("%w: role %q", ErrNotFound, rid)
		}
	}
	return nil
}

func (m *model) writeUser(tx txn, u User, oldUsername string) error {
	if oldUsername != u.Username {
		if oldUsername != "" {
			if err := tx.del(bucketUsernames, oldUsername); err != nil {
				return err
			}
			if err := foldRemove(tx, oldUsername, u.ID); err != nil {
				return err
			}
		}
		if err := foldAdd(tx, u.Username, u.ID); err != nil {
			return err
		}
	}
	if err := tx.put(bucketUsernames, u.Username, []byte(u.ID)); err != nil {
		return err
	}
	if err := putJSON(tx, bucketUsers, u.ID, u); err != nil {
		return err
	}
	tx.emit(Event{Kind: KindUser, Op: OpPut, ID: u.ID})
	return nil
}

func (m *model) User(ctx context.Context, id string) (User, error) {
	var u User
	err := m.be.view(ctx, func(tx txn) (err error) {
		u, err = m.user(tx, id)
		return err
	})
	return u, err
}

func (m *model) user(tx txn, id string) (User, error) {
	var u User
	if err := getJSON(tx, bucketUsers, id, &u); err != nil {
		return User{}, fmt.Errorf("user %q: %w", id, err)
	}
	return u, nil
}

func (m *model) UserByUsername(ctx context.Context, username string) (User, error) {
	if !isASCII(username) && len(username) <= maxNameBytes {
		// A name stored decomposed by an older release is found through
		// the fold index, which older data gets on first use: build it
		// before the first such lookup, not only before the first write.
		// Best effort: without it, exact lookups still work.
		_ = m.foldReady(ctx)
	}
	var u User
	err := m.be.view(ctx, func(tx txn) (err error) {
		u, err = m.userByUsername(tx, username)
		return err
	})
	return u, err
}

// userByUsername finds the user stored under username exactly, else the
// one whose name is the same text in another Unicode normalisation form
// (an NFD spelling finds the NFC name every new user has; an NFC
// spelling finds a name stored decomposed before names were
// normalised). Case still matters: "Admin" does not find "admin".
func (m *model) userByUsername(tx txn, username string) (User, error) {
	var u User
	err := func() error {
		id, err := tx.get(bucketUsernames, username)
		if err != nil {
			return err
		}
		if id != nil {
			return getJSON(tx, bucketUsers, string(id), &u)
		}
		if isASCII(username) || len(username) > maxNameBytes {
			// One spelling only; or longer than any stored name: an
			// unauthenticated CONNECT must not buy normalisation work.
			return ErrNotFound
		}
		nfc := NormalizeUsername(username)
		if nfc != username {
			if id, err = tx.get(bucketUsernames, nfc); err != nil {
				return err
			}
			if id != nil {
				return getJSON(tx, bucketUsers, string(id), &u)
			}
		}
		others, err := foldHolders(tx, username, "")
		if err != nil {
			return err
		}
		for _, o := range others {
			if NormalizeUsername(o.Username) == nfc {
				u = o
				return nil
			}
		}
		return ErrNotFound
	}()
	if err != nil {
		return User{}, fmt.Errorf("user %q: %w", username, err)
	}
	return u, nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func (m *model) Users(ctx context.Context) ([]User, error) {
	var users []User
	err := m.be.view(ctx, func(tx txn) (err error) {
		users, err = m.users(tx)
		return err
	})
	return users, err
}

func (m *model) users(tx txn) ([]User, error) {
	users, err := listJSON[User](tx, bucketUsers)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	sort.Slice(users, func(i, j int) bool { return users[i].Username < users[j].Username })
	return users, nil
}

func (m *model) UpdateUser(ctx context.Context, id string, fn func(*User) error) (User, error) {
	if err := m.foldReady(ctx); err != nil {
		return User{}, err
	}
	var out User
	err := m.be.update(ctx, func(tx txn) (err error) {
		out, err = m.updateUser(tx, id, fn)
		return err
	})
	return out, err
}

// updateUser applies fn to the user in tx. A new username is stored in
// NFC, must be free (also under case folding), and renames the user's
// own auto-generated role with it, in the same transaction.
func (m *model) updateUser(tx txn, id string, fn func(*User) error) (User, error) {
	var out User
	err := func() error {
		var old User
		if err := getJSON(tx, bucketUsers, id, &old); err != nil {
			return err
		}
		u := cloneUser(old)
		if err := fn(&u); err != nil {
			return err
		}
		u.ID, u.CreatedAt = old.ID, old.CreatedAt
		if u.Username != old.Username {
			u.Username = NormalizeUsername(u.Username)
		}
		if err := validName("username", u.Username); err != nil {
			return err
		}
		// The version is the store's, like ID: a caller setting it could
		// make it repeat, and a cache keyed by it would then accept a
		// verification of an old password.
		u.PasswordVersion = old.PasswordVersion
		if u.PasswordHash != old.PasswordHash {
			u.PasswordVersion++
		}
		u.UpdatedAt = m.now()
		if err := m.checkUser(tx, u, old.Username); err != nil {
			return err
		}
		out = u
		if err := m.writeUser(tx, u, old.Username); err != nil {
			return err
		}
		if u.Username != old.Username {
			return m.renameOwnRoles(tx, u)
		}
		return nil
	}()
	if err != nil {
		return User{}, fmt.Errorf("update user %q: %w", id, err)
	}
	return out, nil
}

func (m *model) RehashPassword(ctx context.Context, id, oldHash, newHash string) error {
	err := m.be.update(ctx, func(tx txn) error {
		if oldHash == "" || newHash == "" {
			return fmt.Errorf("%w: empty password hash", invalid)
		}
		var u User
		if err := getJSON(tx, bucketUsers, id, &u); err != nil {
			return err
		}
		if u.PasswordHash != oldHash {
			return fmt.Errorf("%w: the password hash changed since it was read", conflict)
		}
		u.PasswordHash = newHash // PasswordVersion and UpdatedAt stay: the password is the same
		if err := putJSON(tx, bucketUsers, u.ID, u); err != nil {
			return err
		}
		tx.emit(Event{Kind: KindUser, Op: OpPut, ID: u.ID})
		return nil
	})
	if err != nil {
		return fmt.Errorf("rehash password of user %q: %w", id, err)
	}
	return nil
}

// renameOwnRoles names u's own auto-generated roles after u, so a rename
// never leaves a user's role under its old name (which a new user of that
// name would then collide with).
func (m *model) renameOwnRoles(tx txn, u User) error {
	for _, rid := range u.Roles {
		var r Role
		if err := getJSON(tx, bucketRoles, rid, &r); err != nil {
			return err
		}
		if !r.AutoGenerated || r.OwnerID != u.ID || r.Name == u.Username {
			continue
		}
		old := r.Name
		r.Name, r.UpdatedAt = u.Username, m.now()
		if err := m.writeRole(tx, r, old); err != nil {
			return err
		}
	}
	return nil
}

// cloneUser deep-copies the slices so fn cannot alias the stored record
// across retries.
func cloneUser(u User) User {
	u.GrantTypes = append([]GrantType(nil), u.GrantTypes...)
	u.Certificates = append([]Certificate(nil), u.Certificates...)
	u.Roles = append([]string(nil), u.Roles...)
	u.LdapRoles = slices.Clone(u.LdapRoles)
	if u.MFA != nil {
		m := *u.MFA
		m.Keys = slices.Clone(m.Keys)
		m.BackupCodes = slices.Clone(m.BackupCodes)
		m.TrustedDevices = slices.Clone(m.TrustedDevices)
		if m.Challenge != nil {
			c := *m.Challenge
			m.Challenge = &c
		}
		u.MFA = &m
	}
	return u
}

func (m *model) DeleteUser(ctx context.Context, id string) error {
	return m.be.update(ctx, func(tx txn) error { return m.deleteUser(tx, id) })
}

func (m *model) deleteUser(tx txn, id string) error {
	err := func() error {
		var u User
		if err := getJSON(tx, bucketUsers, id, &u); err != nil {
			return err
		}
		if err := tx.del(bucketUsers, id); err != nil {
			return err
		}
		if err := tx.del(bucketUsernames, u.Username); err != nil {
			return err
		}
		if err := foldRemove(tx, u.Username, id); err != nil {
			return err
		}
		if _, err := m.deleteUserTokens(tx, id); err != nil {
			return err
		}
		for _, rid := range u.Roles {
			var r Role
			if err := getJSON(tx, bucketRoles, rid, &r); errors.Is(err, ErrNotFound) {
				continue
			} else if err != nil {
				return err
			}
			if r.AutoGenerated && r.OwnerID == id {
				if err := m.revokeRole(tx, r.ID); err != nil {
					return err
				}
				if err := m.deleteRole(tx, r); err != nil {
					return err
				}
			}
		}
		tx.emit(Event{Kind: KindUser, Op: OpDelete, ID: id})
		return nil
	}()
	if err != nil {
		return fmt.Errorf("delete user %q: %w", id, err)
	}
	return nil
}

// revokeRole removes the role from every user holding it, so deleting the
// role leaves no user holding a role that does not exist (which every
// write and Restore refuse).
func (m *model) revokeRole(tx txn, rid string) error {
	users, err := listJSON[User](tx, bucketUsers)
	if err != nil {
		return err
	}
	for _, u := range users {
		if !slices.Contains(u.Roles, rid) && !slices.Contains(u.LdapRoles, rid) {
			continue
		}
		u.Roles = slices.DeleteFunc(u.Roles, func(id string) bool { return id == rid })
		u.LdapRoles = slices.DeleteFunc(u.LdapRoles, func(id string) bool { return id == rid })
		u.UpdatedAt = m.now()
		if err := m.writeUser(tx, u, u.Username); err != nil {
			return err
		}
	}
	return nil
}

// ---- roles ----

func (m *model) CreateRole(ctx context.Context, r Role) (Role, error) {
	var out Role
	err := m.be.update(ctx, func(tx txn) (err error) {
		out, err = m.createRole(tx, r)
		return err
	})
	return out, err
}

func (m *model) createRole(tx txn, r Role) (Role, error) {
	if err := validName("role name", r.Name); err != nil {
		return Role{}, fmt.Errorf("create role %q: %w", r.Name, err)
	}
	if err := validPermissions(r.Permissions); err != nil {
		return Role{}, fmt.Errorf("create role %q: %w", r.Name, err)
	}
	if err := ValidLdapGroups(r.LdapGroups); err != nil {
		return Role{}, fmt.Errorf("create role %q: %w", r.Name, err)
	}
	now := m.now()
	if r.ID == "" {
		r.ID = NewID()
	}
	if r.CreatedAt.IsZero() {
		r.CreatedAt = now
	}
	r.UpdatedAt = now
	r.Permissions = withPermissionIDs(r.Permissions)
	err := func() error {
		if raw, err := tx.get(bucketRoles, r.ID); err != nil {
			return err
		} else if raw != nil {
			return fmt.Errorf("%w: role id %q exists", conflict, r.ID)
		}
		return m.writeRole(tx, r, "")
	}()
	if err != nil {
		return Role{}, fmt.Errorf("create role %q: %w", r.Name, err)
	}
	return r, nil
}

// withPermissionIDs gives every permission without an ID a new one.
func withPermissionIDs(perms []acl.Permission) []acl.Permission {
	out := append([]acl.Permission(nil), perms...)
	for i := range out {
		if out[i].ID == "" {
			out[i].ID = NewID()
		}
	}
	return out
}

func (m *model) writeRole(tx txn, r Role, oldName string) error {
	if r.Name != oldName {
		id, err := tx.get(bucketRoleNames, r.Name)
		if err != nil {
			return err
		}
		if id != nil {
			return fmt.Errorf("%w: role name %q is taken", conflict, r.Name)
		}
		if oldName != "" {
			if err := tx.del(bucketRoleNames, oldName); err != nil {
				return err
			}
		}
		if err := tx.put(bucketRoleNames, r.Name, []byte(r.ID)); err != nil {
			return err
		}
	}
	if err := putJSON(tx, bucketRoles, r.ID, r); err != nil {
		return err
	}
	tx.emit(Event{Kind: KindRole, Op: OpPut, ID: r.ID})
	return nil
}

func (m *model) Role(ctx context.Context, id string) (Role, error) {
	var r Role
	err := m.be.view(ctx, func(tx txn) (err error) {
		r, err = m.role(tx, id)
		return err
	})
	return r, err
}

func (m *model) role(tx txn, id string) (Role, error) {
	var r Role
	if err := getJSON(tx, bucketRoles, id, &r); err != nil {
		return Role{}, fmt.Errorf("role %q: %w", id, err)
	}
	return r, nil
}

func (m *model) RoleByName(ctx context.Context, name string) (Role, error) {
	var r Role
	err := m.be.view(ctx, func(tx txn) (err error) {
		r, err = m.roleByName(tx, name)
		return err
	})
	return r, err
}

func (m *model) roleByName(tx txn, name string) (Role, error) {
	var r Role
	err := func() error {
		id, err := tx.get(bucketRoleNames, name)
		if err != nil {
			return err
		}
		if id == nil {
			return ErrNotFound
		}
		return getJSON(tx, bucketRoles, string(id), &r)
	}()
	if err != nil {
		return Role{}, fmt.Errorf("role %q: %w", name, err)
	}
	return r, nil
}

func (m *model) Roles(ctx context.Context) ([]Role, error) {
	var roles []Role
	err := m.be.view(ctx, func(tx txn) (err error) {
		roles, err = m.roles(tx)
		return err
	})
	return roles, err
}

func (m *model) roles(tx txn) ([]Role, error) {
	roles, err := listJSON[Role](tx, bucketRoles)
	if err != nil {
		return nil, fmt.Errorf("list roles: %w", err)
	}
	sort.Slice(roles, func(i, j int) bool { return roles[i].Name < roles[j].Name })
	return roles, nil
}

func (m *model) UpdateRole(ctx context.Context, id string, fn func(*Role) error) (Role, error) {
	var out Role
	err := m.be.update(ctx, func(tx txn) (err error) {
		out, err = m.updateRole(tx, id, fn)
		return err
	})
	return out, err
}

func (m *model) updateRole(tx txn, id string, fn func(*Role) error) (Role, error) {
	var out Role
	err := func() error {
		var old Role
		if err := getJSON(tx, bucketRoles, id, &old); err != nil {
			return err
		}
		r := old
		r.Permissions = append([]acl.Permission(nil), old.Permissions...)
		r.LdapGroups = slices.Clone(old.LdapGroups)
		if err := fn(&r); err != nil {
			return err
		}
		r.ID, r.CreatedAt = old.ID, old.CreatedAt
		if err := validName("role name", r.Name); err != nil {
			return err
		}
		if err := validPermissions(r.Permissions); err != nil {
			return err
		}
		if err := ValidLdapGroups(r.LdapGroups); err != nil {
			return err
		}
		r.Permissions = withPermissionIDs(r.Permissions)
		r.UpdatedAt = m.now()
		out = r
		return m.writeRole(tx, r, old.Name)
	}()
	if err != nil {
		return Role{}, fmt.Errorf("update role %q: %w", id, err)
	}
	return out, nil
}

func (m *model) DeleteRole(ctx context.Context, id string) error {
	err := m.be.update(ctx, func(tx txn) error {
		var r Role
		if err := getJSON(tx, bucketRoles, id, &r); err != nil {
			return err
		}
		// Scanning users inside the transaction makes the check atomic with
		// the delete: a concurrent grant of this role retries or fails.
		holders := 0
		err := tx.forEach(bucketUsers, func(_ string, val []byte) error {
			if strings.Contains(string(val), `"`+id+`"`) {
				holders++
			}
			return nil
		})
		if err != nil {
			return err
		}
		if holders > 0 {
			users, err := listJSON[User](tx, bucketUsers)
			if err != nil {
				return err
			}
			for _, u := range users {
				for _, rid := range u.Roles {
					if rid == id {
						return fmt.Errorf("%w: role %q is held by user %q", conflict, r.Name, u.Username)
					}
				}
			}
			// Held only through the directory: the next login would sync
			// it away anyway, so the role goes from those users with it.
			if err := m.revokeRole(tx, id); err != nil {
				return err
			}
		}
		return m.deleteRole(tx, r)
	})
	if err != nil {
		return fmt.Errorf("delete role %q: %w", id, err)
	}
	return nil
}

func (m *model) deleteRole(tx txn, r Role) error {
	if err := tx.del(bucketRoles, r.ID); err != nil {
		return err
	}
	if err := tx.del(bucketRoleNames, r.Name); err != nil {
		return err
	}
	tx.emit(Event{Kind: KindRole, Op: OpDelete, ID: r.ID})
	return nil
}

// ---- tokens ----

func (m *model) CreateToken(ctx context.Context, t Token) (Token, error) {
	if err := validName("token id", t.ID); err != nil {
		return Token{}, err
	}
	if t.ParentID == t.ID {
		return Token{}, fmt.Errorf("%w: token is its own parent", invalid)
	}
	if t.CreatedAt.IsZero() {
		t.CreatedAt = m.now()
	}
	err := m.be.update(ctx, func(tx txn) error {
		var u User
		if err := getJSON(tx, bucketUsers, t.UserID, &u); errors.Is(err, ErrNotFound) {
			return fmt.Errorf("%w: user %q", ErrNotFound, t.UserID)
		} else if err != nil {
			return err
		}
		if t.PasswordVersion != 0 && t.PasswordVersion != u.PasswordVersion {
			return fmt.Errorf("%w: the user's password changed since the token was asked for", conflict)
		}
		if raw, err := tx.get(bucketTokens, t.ID); err != nil {
			return err
		} else if raw != nil {
			return fmt.Errorf("%w: token exists", conflict)
		}
		if t.ParentID != "" {
			// Read in the transaction: a parent revoked concurrently makes
			// this commit retry and fail, so no child outlives its parent.
			var p Token
			if err := getJSON(tx, bucketTokens, t.ParentID, &p); errors.Is(err, ErrNotFound) {
				return fmt.Errorf("%w: parent token", ErrNotFound)
			} else if err != nil {
				return err
			}
			if p.UserID != t.UserID {
				return fmt.Errorf("%w: parent token belongs to another user", invalid)
			}
			if err := tx.put(tokenChildrenBucket(t.ParentID), t.ID, []byte{1}); err != nil {
				return err
			}
		}
		if err := putJSON(tx, bucketTokens, t.ID, t); err != nil {
			return err
		}
		if err := tx.put(userTokensBucket(t.UserID), t.ID, []byte{1}); err != nil {
			return err
		}
		tx.emit(Event{Kind: KindToken, Op: OpPut, ID: t.ID})
		return nil
	})
	if err != nil {
		return Token{}, fmt.Errorf("create token: %w", err)
	}
	return t, nil
}

func (m *model) Token(ctx context.Context, id string) (Token, error) {
	var t Token
	err := m.be.view(ctx, func(tx txn) error { return getJSON(tx, bucketTokens, id, &t) })
	if err != nil {
		return Token{}, fmt.Errorf("token: %w", err)
	}
	return t, nil
}

func (m *model) UserTokens(ctx context.Context, userID string) ([]Token, error) {
	var out []Token
	err := m.be.view(ctx, func(tx txn) (err error) {
		out, err = m.userTokens(tx, userID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("tokens of user %q: %w", userID, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out, nil
}

// userTokens reads the records of the user's token index.
func (m *model) userTokens(tx txn, userID string) ([]Token, error) {
	var out []Token
	err := tx.forEach(userTokensBucket(userID), func(id string, _ []byte) error {
		var t Token
		if err := getJSON(tx, bucketTokens, id, &t); errors.Is(err, ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		out = append(out, t)
		return nil
	})
	return out, err
}

func (m *model) DeleteToken(ctx context.Context, id string) error {
	err := m.be.update(ctx, func(tx txn) error {
		var t Token
		if err := getJSON(tx, bucketTokens, id, &t); err != nil {
			return err
		}
		_, err := m.revokeToken(tx, t, map[string]bool{})
		return err
	})
	if err != nil {
		return fmt.Errorf("delete token: %w", err)
	}
	return nil
}

// revokeToken unlinks t from its parent's children and deletes it with
// the tokens obtained with it (deleteTokenTree); it returns how many went.
func (m *model) revokeToken(tx txn, t Token, seen map[string]bool) (int, error) {
	if seen[t.ID] {
		return 0, nil
	}
	if t.ParentID != "" {
		if err := tx.del(tokenChildrenBucket(t.ParentID), t.ID); err != nil {
			return 0, err
		}
	}
	return m.deleteTokenTree(tx, t, seen)
}

// deleteTokenTree deletes t, then the tokens obtained with it, and theirs,
// with an event for each, and returns how many went. seen guards against
// a cycle that only a hand-made record could hold.
func (m *model) deleteTokenTree(tx txn, t Token, seen map[string]bool) (int, error) {
	if seen[t.ID] {
		return 0, nil
	}
	seen[t.ID] = true
	if err := tx.del(bucketTokens, t.ID); err != nil {
		return 0, err
	}
	if err := tx.del(userTokensBucket(t.UserID), t.ID); err != nil {
		return 0, err
	}
	tx.emit(Event{Kind: KindToken, Op: OpDelete, ID: t.ID})
	var kids []string
	if err := tx.forEach(tokenChildrenBucket(t.ID), func(id string, _ []byte) error {
		kids = append(kids, id)
		return nil
	}); err != nil {
		return 0, err
	}
	n := 1
	for _, id := range kids {
		var c Token
		if err := getJSON(tx, bucketTokens, id, &c); errors.Is(err, ErrNotFound) {
			continue
		} else if err != nil {
			return 0, err
		}
		k, err := m.deleteTokenTree(tx, c, seen)
		if err != nil {
			return 0, err
		}
		n += k
	}
	if len(kids) > 0 {
		if err := tx.drop(tokenChildrenBucket(t.ID)); err != nil {
			return 0, err
		}
	}
	return n, nil
}

func (m *model) DeleteUserTokens(ctx context.Context, userID string) (int, error) {
	var n int
	err := m.be.update(ctx, func(tx txn) (err error) {
		n, err = m.deleteUserTokens(tx, userID)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("delete tokens of user %q: %w", userID, err)
	}
	return n, nil
}

func (m *model) deleteUserTokens(tx txn, userID string) (int, error) {
	var ids []string
	err := tx.forEach(userTokensBucket(userID), func(id string, _ []byte) error {
		ids = append(ids, id)
		return nil
	})
	if err != nil {
		return 0, err
	}
	// A token's children are its user's tokens too, so they go in the loop
	// below; only the indexes of them are left to drop. The records are
	// read to find the parents, so that no index is dropped blindly (a
	// Redis drop leaves a revision key behind).
	parents := map[string]bool{}
	for _, id := range ids {
		var t Token
		if err := getJSON(tx, bucketTokens, id, &t); errors.Is(err, ErrNotFound) {
			continue
		} else if err != nil {
			return 0, err
		}
		if t.ParentID != "" {
			parents[t.ParentID] = true
		}
	}
	for _, id := range ids {
		if err := tx.del(bucketTokens, id); err != nil {
			return 0, err
		}
		tx.emit(Event{Kind: KindToken, Op: OpDelete, ID: id})
	}
	for p := range parents {
		if err := tx.drop(tokenChildrenBucket(p)); err != nil {
			return 0, err
		}
	}
	if len(ids) > 0 {
		if err := tx.drop(userTokensBucket(userID)); err != nil {
			return 0, err
		}
	}
	return len(ids), nil
}

func (m *model) DeleteUserTokensWhere(ctx context.Context, userID string, match func(Token) bool) (int, error) {
	var n int
	err := m.be.update(ctx, func(tx txn) error {
		n = 0
		toks, err := m.userTokens(tx, userID)
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, t := range toks {
			if match(t) {
				k, err := m.revokeToken(tx, t, seen)
				if err != nil {
					return err
				}
				n += k
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("delete tokens of user %q: %w", userID, err)
	}
	return n, nil
}

// ---- registry requests ----

func (m *model) CreateRegistryRequest(ctx context.Context, r RegistryRequest) (RegistryRequest, error) {
	// Keyed like the user it may become (NFC), so every spelling of the
	// name finds it.
	r.Username = NormalizeUsername(r.Username)
	if err := validName("username", r.Username); err != nil {
		return RegistryRequest{}, err
	}
	if err := validPermissions(r.Permissions); err != nil {
		return RegistryRequest{}, err
	}
	if r.Timestamp.IsZero() {
		r.Timestamp = m.now()
	}
	err := m.be.update(ctx, func(tx txn) error {
		if raw, err := tx.get(bucketRegistry, r.Username); err != nil {
			return err
		} else if raw != nil {
			return fmt.Errorf("%w: a request for %q is pending", conflict, r.Username)
		}
		return m.writeRegistryRequest(tx, r)
	})
	if err != nil {
		return RegistryRequest{}, fmt.Errorf("create registry request: %w", err)
	}
	return r, nil
}

func (m *model) writeRegistryRequest(tx txn, r RegistryRequest) error {
	if err := putJSON(tx, bucketRegistry, r.Username, r); err != nil {
		return err
	}
	tx.emit(Event{Kind: KindRegistry, Op: OpPut, ID: r.Username})
	return nil
}

func (m *model) RegistryRequest(ctx context.Context, username string) (RegistryRequest, error) {
	var r RegistryRequest
	err := m.be.view(ctx, func(tx txn) error {
		key, err := registryKey(tx, username)
		if err != nil {
			return err
		}
		return getJSON(tx, bucketRegistry, key, &r)
	})
	if err != nil {
		return RegistryRequest{}, fmt.Errorf("registry request %q: %w", username, err)
	}
	return r, nil
}

// registryKey returns the key of the request for username: the name as
// given when a request is stored under it (one from before requests were
// keyed in NFC), else its NFC form.
func registryKey(tx txn, username string) (string, error) {
	nfc := NormalizeUsername(username)
	if nfc == username {
		return username, nil
	}
	raw, err := tx.get(bucketRegistry, username)
	if err != nil || raw != nil {
		return username, err
	}
	return nfc, nil
}

func (m *model) RegistryRequests(ctx context.Context) ([]RegistryRequest, error) {
	var out []RegistryRequest
	err := m.be.view(ctx, func(tx txn) (err error) {
		out, err = listJSON[RegistryRequest](tx, bucketRegistry)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list registry requests: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Timestamp.Before(out[j].Timestamp) })
	return out, nil
}

func (m *model) UpdateRegistryRequest(ctx context.Context, username string, fn func(*RegistryRequest) error) (RegistryRequest, error) {
	var out RegistryRequest
	err := m.be.update(ctx, func(tx txn) error {
		key, err := registryKey(tx, username)
		if err != nil {
			return err
		}
		var old RegistryRequest
		if err := getJSON(tx, bucketRegistry, key, &old); err != nil {
			return err
		}
		r := old
		r.Roles = append([]string(nil), old.Roles...)
		r.Permissions = append([]acl.Permission(nil), old.Permissions...)
		if err := fn(&r); err != nil {
			return err
		}
		r.Username = old.Username
		if err := validPermissions(r.Permissions); err != nil {
			return err
		}
		out = r
		return m.writeRegistryRequest(tx, r)
	})
	if err != nil {
		return RegistryRequest{}, fmt.Errorf("update registry request %q: %w", username, err)
	}
	return out, nil
}

func (m *model) DeleteRegistryRequest(ctx context.Context, username string) error {
	err := m.be.update(ctx, func(tx txn) error {
		key, err := registryKey(tx, username)
		if err != nil {
			return err
		}
		if raw, err := tx.get(bucketRegistry, key); err != nil {
			return err
		} else if raw == nil {
			return ErrNotFound
		}
		if err := tx.del(bucketRegistry, key); err != nil {
			return err
		}
		tx.emit(Event{Kind: KindRegistry, Op: OpDelete, ID: key})
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete registry request %q: %w", username, err)
	}
	return nil
}

func (m *model) ClearRegistryRequests(ctx context.Context) error {
	err := m.be.update(ctx, func(tx txn) error {
		var names []string
		if err := tx.forEach(bucketRegistry, func(k string, _ []byte) error {
			names = append(names, k)
			return nil
		}); err != nil {
			return err
		}
		if len(names) == 0 {
			return nil
		}
		for _, n := range names {
			tx.emit(Event{Kind: KindRegistry, Op: OpDelete, ID: n})
		}
		return tx.drop(bucketRegistry)
	})
	if err != nil {
		return fmt.Errorf("clear registry requests: %w", err)
	}
	return nil
}

// ---- settings ----

func (m *model) Setting(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	err := m.be.view(ctx, func(tx txn) error {
		raw, err := tx.get(bucketSettings, key)
		if err != nil {
			return err
		}
		if raw == nil {
			return ErrNotFound
		}
		v = raw
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("setting %q: %w", key, err)
	}
	return v, nil
}

func (m *model) PutSetting(ctx context.Context, key string, value []byte) error {
	return m.putSetting(ctx, key, value, false)
}

func (m *model) CreateSetting(ctx context.Context, key string, value []byte) error {
	return m.putSetting(ctx, key, value, true)
}

func (m *model) putSetting(ctx context.Context, key string, value []byte, create bool) error {
	if err := validName("setting key", key); err != nil {
		return err
	}
	err := m.be.update(ctx, func(tx txn) error {
		if create {
			if raw, err := tx.get(bucketSettings, key); err != nil {
				return err
			} else if raw != nil {
				return ErrConflict
			}
		}
		if err := tx.put(bucketSettings, key, value); err != nil {
			return err
		}
		tx.emit(Event{Kind: KindSetting, Op: OpPut, ID: key})
		return nil
	})
	if err != nil {
		return fmt.Errorf("put setting %q: %w", key, err)
	}
	return nil
}

func (m *model) DeleteSetting(ctx context.Context, key string) error {
	err := m.be.update(ctx, func(tx txn) error {
		if raw, err := tx.get(bucketSettings, key); err != nil {
			return err
		} else if raw == nil {
			return ErrNotFound
		}
		if err := tx.del(bucketSettings, key); err != nil {
			return err
		}
		tx.emit(Event{Kind: KindSetting, Op: OpDelete, ID: key})
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete setting %q: %w", key, err)
	}
	return nil
}

func (m *model) SettingKeys(ctx context.Context, prefix string) ([]string, error) {
	var keys []string
	err := m.be.view(ctx, func(tx txn) error {
		var err error
		keys, err = tx.keys(bucketSettings, prefix)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("setting keys %q: %w", prefix, err)
	}
	return keys, nil
}

// ---- feed, snapshot ----

func (m *model) Watch(ctx context.Context) (<-chan Event, error) { return m.feed.subscribe(ctx) }

func (m *model) Version(ctx context.Context) (uint64, error) { return m.be.version(ctx) }

func (m *model) Snapshot(ctx context.Context) (Snapshot, error) {
	data, ver, err := m.be.dump(ctx)
	if err != nil {
		return Snapshot{}, fmt.Errorf("snapshot: %w", err)
	}
	s := Snapshot{Version: ver, Settings: map[string][]byte{}}
	if err := decodeBucket(data[bucketUsers], &s.Users); err != nil {
		return Snapshot{}, err
	}
	if err := decodeBucket(data[bucketRoles], &s.Roles); err != nil {
		return Snapshot{}, err
	}
	if err := decodeBucket(data[bucketTokens], &s.Tokens); err != nil {
		return Snapshot{}, err
	}
	if err := decodeBucket(data[bucketRegistry], &s.RegistryRequests); err != nil {
		return Snapshot{}, err
	}
	for k, v := range data[bucketSettings] {
		s.Settings[k] = v
	}
	sort.Slice(s.Users, func(i, j int) bool { return s.Users[i].Username < s.Users[j].Username })
	sort.Slice(s.Roles, func(i, j int) bool { return s.Roles[i].Name < s.Roles[j].Name })
	sort.Slice(s.Tokens, func(i, j int) bool { return s.Tokens[i].ID < s.Tokens[j].ID })
	sort.Slice(s.RegistryRequests, func(i, j int) bool {
		return s.RegistryRequests[i].Username < s.RegistryRequests[j].Username
	})
	return s, nil
}

// Restore validates the whole snapshot first, so a bad one changes nothing.
func (m *model) Restore(ctx context.Context, s Snapshot) error {
	return m.RestoreKeeping(ctx, s, nil)
}

func (m *model) RestoreKeeping(ctx context.Context, s Snapshot, keep []string) error {
	for _, k := range keep {
		if k == "" || k == "/" {
			return fmt.Errorf("restore: %w: empty keep pattern", invalid)
		}
	}
	data, err := snapshotBuckets(s)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	// The store's values of kept settings win; the snapshot's are dropped
	// here so the backends never have two values to choose from.
	for k := range data[bucketSettings] {
		if keepsSetting(keep, k) {
			delete(data[bucketSettings], k)
		}
	}
	if err := m.be.load(ctx, data, keep); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	return nil
}

// keepsSetting reports whether one of the patterns selects key: a pattern
// ending in "/" selects every key it prefixes, any other pattern the key
// equal to it. The Redis load script implements the same rule in Lua.
func keepsSetting(keep []string, key string) bool {
	for _, p := range keep {
		if strings.HasSuffix(p, "/") && strings.HasPrefix(key, p) || p == key {
			return true
		}
	}
	return false
}

func (m *model) Ping(ctx context.Context) error { return m.be.ping(ctx) }

func (m *model) Close() error {
	m.feed.close()
	return m.be.close()
}
