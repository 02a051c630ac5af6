package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

// TestUserAddResetMFASaysWhatItRemoved runs `warden user add --reset-mfa`
// (issue 15, item 11): it says on stderr how many MFA keys it removed, or
// that the user had none.
func TestUserAddResetMFASaysWhatItRemoved(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildWarden(t)
	dataDir := t.TempDir()
	env := []string{"WARDEN_DATA_DIR=" + dataDir}
	add := func(want string) {
		t.Helper()
		_, stderr := bMustCommand(t, bin, env, validPassword(t)+"\n", "user", "add", "rescue", "--role", "admin", "--password-stdin", "--reset-mfa")
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}

	add("warden user add: --reset-mfa: rescue is new and has no MFA enrolled")

	// Enrolled with one active key and one still pending, as the MFA API
	// leaves it; the store is closed again before the command runs.
	s := storetest.OpenBolt(t, storetest.Path(filepath.Join(dataDir, storeFile)))
	u, err := s.UserByUsername(t.Context(), "rescue")
	if err == nil {
		_, err = s.UpdateUser(t.Context(), u.ID, func(u *store.User) error {
			u.MFA = &store.MFAState{Keys: []store.MFAKey{
				{ID: "k1", Type: store.MFATypeTOTP, Status: store.MFAStatusActive},
				{ID: "k2", Type: store.MFATypeTOTP, Status: store.MFAStatusPending},
			}, BackupCodes: []string{"h1", "h2"}}
			return nil
		})
	}
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}

	add("warden user add: MFA removed from rescue: 2 MFA keys (1 active, 1 pending activation), with its backup codes and trusted devices")
	if u := bSnapshotFile(t, dataDir); !hasNoMFA(u.Users, "rescue") {
		t.Error("the MFA state is still stored after --reset-mfa")
	}
	add("warden user add: --reset-mfa: rescue had no MFA key enrolled; nothing to remove")
}

// hasNoMFA reports whether the user named name exists without MFA state.
func hasNoMFA(users []store.User, name string) bool {
	for _, u := range users {
		if u.Username == name {
			return u.MFA == nil
		}
	}
	return false
}
