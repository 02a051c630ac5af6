package account

import (
	"context"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/store"
)

// Limits on names.
const (
	// MaxNameLen bounds a role name (and the names and labels a surface
	// checks with ValidText).
	MaxNameLen   = 256
	maxPrefixLen = 1024
)

// validUsername applies credential.ValidUsername (ErrInvalid here; the
// client registry refuses it as a policy violation, as its contract
// says).
func validUsername(name string) error {
	if err := credential.ValidUsername(name); err != nil {
		return errorf(ErrInvalid, "%s", strings.TrimPrefix(err.Error(), credential.ErrUsername.Error()+": "))
	}
	return nil
}

// validRoleName: not empty, at most MaxNameLen bytes, printable, and
// without the format and other invisible characters usernames may not
// hold either (zero-width, bidi controls), so two roles that look alike
// in a list are the same role.
func validRoleName(name string) error {
	if name == "" {
		return errorf(ErrInvalid, "name is required")
	}
	if len(name) > MaxNameLen {
		return errorf(ErrInvalid, "name must be at most %d bytes", MaxNameLen)
	}
	if err := ValidText("name", name); err != nil {
		return err
	}
	for _, r := range name {
		if unicode.In(r, unicode.Cf, unicode.Variation_Selector, unicode.Other_Default_Ignorable_Code_Point) {
			return errorf(ErrInvalid, "name must not contain format or invisible characters (zero-width, bidi controls)")
		}
	}
	return nil
}

// ValidText is the rule for a name or label a person reads in a list
// (a role name, a device name, a token description): valid UTF-8, no
// white space around it, no control characters. field names it in the
// ErrInvalid refusal.
func ValidText(field, s string) error {
	if !utf8.ValidString(s) {
		return errorf(ErrInvalid, "%s is not valid UTF-8", field)
	}
	if strings.TrimSpace(s) != s {
		return errorf(ErrInvalid, "%s must not start or end with white space", field)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return errorf(ErrInvalid, "%s must not contain control characters", field)
		}
	}
	return nil
}

// validPrefix: the publish prefix is concatenated to topics, so it must be
// valid topic text without wildcards, and may not reach into $ topics.
func validPrefix(p string) error {
	switch {
	case len(p) > maxPrefixLen:
		return errorf(ErrInvalid, "mqttPublishPrefix must be at most %d bytes", maxPrefixLen)
	case strings.ContainsAny(p, "+#\x00"):
		return errorf(ErrInvalid, "mqttPublishPrefix must not contain '+', '#' or NUL")
	case strings.HasPrefix(p, "$"):
		return errorf(ErrInvalid, "mqttPublishPrefix must not start with '$'")
	case !utf8.ValidString(p):
		return errorf(ErrInvalid, "mqttPublishPrefix is not valid UTF-8")
	}
	return nil
}

// validIdentityProvider accepts "local" (or empty, meaning local): other
// providers (LDAP) do not exist yet.
func validIdentityProvider(p string) error {
	if p != "" && p != "local" {
		return errorf(ErrInvalid, "identityProvider must be \"local\"")
	}
	return nil
}

// validGrantTypes: known methods, each at most once.
func validGrantTypes(gts []store.GrantType) error {
	seen := map[string]bool{}
	for _, g := range gts {
		if g.Method != store.GrantPassword && g.Method != store.GrantCertificate {
			return errorf(ErrInvalid, "grantTypes: method must be %q or %q", store.GrantPassword, store.GrantCertificate)
		}
		if seen[g.Method] {
			return errorf(ErrInvalid, "grantTypes: method %q listed twice", g.Method)
		}
		seen[g.Method] = true
	}
	return nil
}

// normalizeFingerprint accepts a SHA-256 fingerprint as 64 hex digits,
// with or without ':' separators, in either case; it returns lowercase hex.
func normalizeFingerprint(fp string) (string, error) {
	f := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(fp), ":", ""))
	if b, err := hex.DecodeString(f); err != nil || len(b) != 32 {
		return "", errorf(ErrInvalid, "fingerprint must be a SHA-256 fingerprint: 64 hex digits, optionally ':'-separated")
	}
	return f, nil
}

// checkPermissions validates each permission (ErrInvalid) and refuses one
// declared twice, by resource, operation and context (ErrConflict).
func checkPermissions(perms []acl.Permission) error {
	seen := map[[3]string]bool{}
	for i, p := range perms {
		if err := p.Validate(); err != nil {
			return errorf(ErrInvalid, "permission %d: %v", i, err)
		}
		k := [3]string{p.Resource, string(p.Operation), string(p.Context)}
		if seen[k] {
			return errorf(ErrConflict, "permission %s %s %s is declared twice", p.Context, p.Operation, p.Resource)
		}
		seen[k] = true
	}
	return nil
}

// withoutIDs drops client-sent permission IDs: the store assigns them, so
// a client cannot make two permissions share one.
func withoutIDs(perms []acl.Permission) []acl.Permission {
	out := make([]acl.Permission, len(perms))
	for i, p := range perms {
		p.ID = ""
		out[i] = p
	}
	return out
}

// UniqueIDs drops empty and repeated values of a list of IDs, keeping
// the first order: how a request's list of roles or users is read.
func UniqueIDs(in []string) []string {
	out := []string{}
	for _, v := range in {
		if v != "" && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// firstError returns the first non-nil error of errs.
func firstError(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// adminRoleID returns the ID of RoleAdmin ("" if missing).
func (s *Service) adminRoleID(ctx context.Context) (string, error) {
	r, err := s.st.RoleByName(ctx, RoleAdmin)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil
	}
	return r.ID, err
}

// atomicKeepingAdmin runs change, which changes the users ids (and
// nothing else that bears on who is an admin), in one store transaction
// and refuses it (ErrLastAdmin) when it leaves no active user holding the
// admin role while there was one. Only a change that touches an active
// admin can do that, so only then are the other users read, up to the
// first active admin among them: a change of any other user reads the
// users it changes and nothing more (on Redis, concurrent writes of other
// users do not make it run again). The check and the change commit
// together, so two requests removing the last two admins at once cannot
// both succeed, on any node.
func (s *Service) atomicKeepingAdmin(ctx context.Context, ids []string, change func(tx store.Tx) error) error {
	return s.st.Atomic(ctx, func(tx store.Tx) error {
		ro, err := tx.RoleByName(RoleAdmin)
		if errors.Is(err, store.ErrNotFound) {
			return change(tx)
		}
		if err != nil {
			return err
		}
		admins := func() ([]store.User, error) { return usersOf(tx, ids) }
		before, err := admins()
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(before, func(u store.User) bool { return ActiveAdmin(u, ro.ID) }) {
			return change(tx)
		}
		if err := change(tx); err != nil {
			return err
		}
		after, err := admins()
		if err != nil {
			return err
		}
		if slices.ContainsFunc(after, func(u store.User) bool { return ActiveAdmin(u, ro.ID) }) {
			return nil
		}
		users, err := tx.Users()
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(users, func(u store.User) bool { return ActiveAdmin(u, ro.ID) }) {
			return ErrLastAdmin
		}
		return nil
	})
}

// usersOf reads the users ids in tx; missing ones are skipped (the change
// reports them).
func usersOf(tx store.Tx, ids []string) ([]store.User, error) {
	return existing(ids, tx.User)
}

// ActiveAdmin reports whether u holds the admin role (adminRole, its ID)
// and is not suspended (a suspended user cannot log in, so cannot
// administer). The one rule of who counts as an administrator, for
// changes and for a restore (admin.CheckRestorable). Only RoleAdmin given
// by hand counts: the directory may take its grant away at the user's
// next login, so it cannot be what keeps warden administrable.
func ActiveAdmin(u store.User, adminRole string) bool {
	return !u.Suspended && slices.Contains(u.Roles, adminRole)
}
