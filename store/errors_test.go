package store_test

import (
	"errors"
	"testing"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

// TestSentinelErrorsNameThePackage: every sentinel's text starts with
// "store: ", so a log line says where an error came from.
func TestSentinelErrorsNameThePackage(t *testing.T) {
	texts := map[error]string{
		store.ErrNotFound:    "store: not found",
		store.ErrConflict:    "store: conflict",
		store.ErrInvalid:     "store: invalid record",
		store.ErrUnavailable: "store: unavailable",
		store.ErrClosed:      "store: closed",
		store.ErrInUse:       "store: the file is in use by another warden process",
		store.ErrModelLost:   "store: unavailable: Redis lost warden's data",
	}
	for err, want := range texts {
		if got := err.Error(); got != want {
			t.Errorf("error text %q, want %q", got, want)
		}
	}
}

// TestDetailedErrorsKeepTheirClientText: a conflict or an invalid record
// with a detail, whose text the admin API answers with, reads as it did
// before the sentinels were prefixed, and still matches its sentinel.
func TestDetailedErrorsKeepTheirClientText(t *testing.T) {
	s := storetest.OpenBolt(t)
	ctx := t.Context()
	if _, err := s.CreateUser(ctx, store.User{Username: "alice"}); err != nil {
		t.Fatal(err)
	}
	_, taken := s.CreateUser(ctx, store.User{Username: "alice"})
	_, empty := s.CreateRole(ctx, store.Role{Name: ""})
	_, badPerm := s.CreateRole(ctx, store.Role{Name: "r", Permissions: []acl.Permission{{Resource: "a/#/b", Operation: acl.OpRead, Context: acl.ContextMQTT}}})
	for _, c := range []struct {
		name     string
		err      error
		sentinel error
		want     string
	}{
		{"a taken username", taken, store.ErrConflict, `create user "alice": conflict: username "alice" is taken`},
		{"an empty role name", empty, store.ErrInvalid, `create role "": invalid record: role name is empty`},
		{"an invalid permission", badPerm, store.ErrInvalid, ""},
	} {
		if !errors.Is(c.err, c.sentinel) {
			t.Errorf("%s: %v does not match %v", c.name, c.err, c.sentinel)
			continue
		}
		if c.want != "" && c.err.Error() != c.want {
			t.Errorf("%s: text %q, want %q", c.name, c.err.Error(), c.want)
		}
	}
	if !errors.Is(badPerm, acl.ErrInvalidFilter) && !errors.Is(badPerm, acl.ErrInvalidPermission) {
		t.Errorf("an invalid permission: %v no longer matches the acl error it wraps", badPerm)
	}
}
