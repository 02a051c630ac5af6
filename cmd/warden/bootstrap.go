package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"time"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/admin"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/store"
)

// Names of the built-in records (Connectware's defaults, notes/connectware.md §1-2).
const (
	roleAdmin     = admin.RoleAdmin
	roleMinimum   = admin.RoleMinimum
	adminUsername = "admin"
	// bootstrapSetting marks a store whose first start has completed.
	bootstrapSetting = "bootstrap"
	// passwordAlphabet is what generated passwords are drawn from: letters
	// and digits without the look-alikes l, 1, I, O and 0, and '_'
	// (generatePassword says why no other symbol).
	passwordAlphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789_"
	// generatedPasswordLength gives 25*log2(58) = 146 bits of entropy, no
	// less than the 24 characters over 66 (145 bits) generated before the
	// alphabet became shell-safe; short enough to type once.
	generatedPasswordLength = 25
)

// builtinRoles are the shared roles every warden store starts with.
//
// connectware-admin: everything, over HTTP and MQTT (DESIGN.md).
//
// minimum-access: DESIGN.md says it "lets a user log in and read its own
// session"; Connectware documents only that it "can log into the Admin-UI"
// with limited pages, not its permission list. We give it exactly read on
// /api/session (the seed's "Return the session of the current user"). The
// admin API lets every user read its own session anyway, so the role grants
// nothing beyond that floor: it is the explicit, least-privilege marker for
// "may log in", and operators can add to it.
func builtinRoles() []store.Role {
	return []store.Role{
		{
			Name:     roleAdmin,
			IsShared: true,
			Permissions: []acl.Permission{
				{Resource: "/#", Operation: acl.OpReadWrite, Context: acl.ContextHTTP},
				{Resource: "#", Operation: acl.OpReadWrite, Context: acl.ContextMQTT},
			},
		},
		{
			Name:     roleMinimum,
			IsShared: true,
			Permissions: []acl.Permission{
				{Resource: "/api/session", Operation: acl.OpRead, Context: acl.ContextHTTP},
			},
		},
	}
}

// bootstrapRecord is stored under bootstrapSetting; it is informational
// (its presence is what matters).
type bootstrapRecord struct {
	CompletedAt time.Time `json:"completedAt"`
	AdminUserID string    `json:"adminUserId,omitempty"`
}

// bootstrap initialises a new store: the built-in roles and the admin user
// holding connectware-admin, with adminPassword or, when it is empty, a
// generated password that is logged once at WARN. Every later start logs
// at WARN how to get a password while that one is not known to be in use
// (adminhint.go).
//
// It never overwrites: existing roles and an existing admin are left as
// they are (a changed adminPassword does not reset the admin's password).
// Once it has completed it records so in the store and does nothing on
// later starts, so records an operator deleted on purpose (even the admin)
// are not resurrected.
//
// Several nodes may run it at once against one Redis store: creates are
// conditional, and a node that loses a race (store.ErrConflict) uses the
// winner's record; only the node whose create of the admin succeeded logs
// a generated password.
func bootstrap(ctx context.Context, s store.Store, adminPassword string, log *slog.Logger) error {
	done, err := bootstrapped(ctx, s)
	if err != nil {
		return err
	}
	if done {
		if adminPassword != "" {
			log.Info("admin password setting ignored: the store was initialised before, change the password through the API instead",
				"user", adminUsername)
		}
		return remindAdminPassword(ctx, s, log)
	}

	roleIDs := map[string]string{}
	for _, r := range builtinRoles() {
		got, err := ensureRole(ctx, s, r, log)
		if err != nil {
			return err
		}
		roleIDs[r.Name] = got.ID
	}

	admin, err := ensureAdmin(ctx, s, roleIDs[roleAdmin], adminPassword, log)
	if err != nil {
		return err
	}

	rec, err := json.Marshal(bootstrapRecord{CompletedAt: time.Now().UTC(), AdminUserID: admin.ID})
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if err := s.CreateSetting(ctx, bootstrapSetting, rec); err != nil && !errors.Is(err, store.ErrConflict) {
		// ErrConflict: another node finished first; same outcome.
		return fmt.Errorf("bootstrap: record completion: %w", err)
	}
	return nil
}

// bootstrapped reports whether a previous start completed the bootstrap.
func bootstrapped(ctx context.Context, s store.Store) (bool, error) {
	_, err := s.Setting(ctx, bootstrapSetting)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, store.ErrNotFound):
		return false, nil
	}
	return false, fmt.Errorf("bootstrap: %w", err)
}

// ensureRole returns the role named r.Name, creating it from r when it
// does not exist. An existing role is returned untouched, even if its
// permissions differ from r's: an operator may have changed it.
func ensureRole(ctx context.Context, s store.Store, r store.Role, log *slog.Logger) (store.Role, error) {
	got, err := s.RoleByName(ctx, r.Name)
	if err == nil {
		return got, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return store.Role{}, fmt.Errorf("bootstrap: role %s: %w", r.Name, err)
	}
	got, err = s.CreateRole(ctx, r)
	switch {
	case err == nil:
		log.Info("created built-in role", "role", r.Name)
		return got, nil
	case errors.Is(err, store.ErrConflict):
		// Another node created it between our read and our create.
		got, err = s.RoleByName(ctx, r.Name)
		if err == nil {
			return got, nil
		}
	}
	return store.Role{}, fmt.Errorf("bootstrap: role %s: %w", r.Name, err)
}

// ensureAdmin returns the admin user, creating it with password (or a
// generated one) when it does not exist.
func ensureAdmin(ctx context.Context, s store.Store, adminRoleID, password string, log *slog.Logger) (store.User, error) {
	u, err := s.UserByUsername(ctx, adminUsername)
	if err == nil {
		if password != "" {
			log.Info("admin password setting ignored: the admin user exists", "user", adminUsername)
		}
		// An earlier start created the admin and failed before it recorded
		// the bootstrap as complete.
		return u, remindAdminPassword(ctx, s, log)
	}
	if !errors.Is(err, store.ErrNotFound) {
		return store.User{}, fmt.Errorf("bootstrap: admin user: %w", err)
	}

	generated := password == ""
	if generated {
		password, err = generatePassword()
		if err != nil {
			return store.User{}, fmt.Errorf("bootstrap: generate admin password: %w", err)
		}
	}
	hash, err := credential.Hash(password, credential.DefaultParams)
	if err != nil {
		return store.User{}, fmt.Errorf("bootstrap: hash admin password: %w", err)
	}
	u, err = s.CreateUser(ctx, store.User{
		Username:         adminUsername,
		PasswordHash:     hash,
		IdentityProvider: "local",
		GrantTypes:       []store.GrantType{{Method: store.GrantPassword}},
		Roles:            []string{adminRoleID},
	})
	switch {
	case err == nil:
	case errors.Is(err, store.ErrConflict):
		// Another node created the admin first. Its password is the one
		// that counts; ours was never stored, so it must not be logged.
		u, err = s.UserByUsername(ctx, adminUsername)
		if err != nil {
			return store.User{}, fmt.Errorf("bootstrap: admin user: %w", err)
		}
		return u, nil
	default:
		return store.User{}, fmt.Errorf("bootstrap: create admin user: %w", err)
	}

	if generated {
		// Recorded before it is shown, so that every later start reminds
		// the operator how to get a password until this one is used, in
		// case this start fails and the line is lost. Shown even if that
		// fails: the admin exists with this password.
		rerr := recordGeneratedPassword(ctx, s, u)
		// The one place a secret is logged, on purpose: the operator has no
		// other way to learn it. It goes in the message, not in an
		// attribute, so a handler that drops sensitive keys keeps it.
		log.Warn(generatedPasswordMsg+password, "user", adminUsername)
		if rerr != nil {
			return store.User{}, rerr
		}
	} else {
		log.Info("created admin user with the configured admin password", "user", adminUsername)
	}
	return u, nil
}

// generatePassword returns a random password for the admin (bootstrap)
// and for `warden user add`, drawn from crypto/rand over passwordAlphabet,
// and checked against the default policy.
//
// The alphabet is shell-safe: an operator pastes the password into
// PW="..." in an interactive bash, where '!' is history expansion even
// inside double quotes, and '$', '`', '\' and '"' are special too. It is
// also printed verbatim by slog (no '"' or '\' to escape), needs no
// escaping in a URL, and is selected whole by a double click in common
// terminals (no '-' or '.', which some treat as word breaks). The shorter
// alphabet is made up for by length: see generatedPasswordLength.
func generatePassword() (string, error) {
	policy := credential.DefaultPolicy()
	buf := make([]byte, generatedPasswordLength)
	limit := big.NewInt(int64(len(passwordAlphabet)))
	// The default policy asks only for a length, so the first draw passes;
	// a policy with class counts (the underscore is a symbol) is met by
	// drawing again.
	for range 64 {
		for i := range buf {
			n, err := rand.Int(rand.Reader, limit)
			if err != nil {
				return "", fmt.Errorf("random password: %w", err)
			}
			buf[i] = passwordAlphabet[n.Int64()]
		}
		if policy.Check(string(buf)) == nil {
			return string(buf), nil
		}
	}
	return "", errors.New("random password: no draw satisfied the password policy")
}

// generatedPasswordMsg starts the one log line that carries the generated
// admin password.
const generatedPasswordMsg = "generated admin password; change it after the first login: "
