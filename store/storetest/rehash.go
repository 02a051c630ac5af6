package storetest

import (
	"testing"

	"github.com/warden-mqtt/warden/store"
)

// testRehashPassword: RehashPassword swaps the hash of the same password
// without the marks of a password change (PasswordVersion, UpdatedAt),
// so a token bound to the version stays valid; it emits a user event for
// the other nodes' caches, and refuses a hash that changed meanwhile, an
// unknown user and an empty hash.
func testRehashPassword(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	u := mustUser(t, s, store.User{Username: "alice", PasswordHash: "weak-hash"})
	mustToken(t, s, store.Token{ID: "session", UserID: u.ID, Kind: "login", PasswordVersion: u.PasswordVersion})
	ch, err := s.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RehashPassword(ctx, u.ID, "weak-hash", "strong-hash"); err != nil {
		t.Fatalf("RehashPassword: %v", err)
	}
	got := mustGetUser(t, s, u.ID)
	if got.PasswordHash != "strong-hash" || got.PasswordVersion != u.PasswordVersion || !got.UpdatedAt.Equal(u.UpdatedAt) {
		t.Errorf("after RehashPassword: hash %q version %d updated %v, want strong-hash, version %d, updated %v",
			got.PasswordHash, got.PasswordVersion, got.UpdatedAt, u.PasswordVersion, u.UpdatedAt)
	}
	if e := nextEvent(t, ch); e.Kind != store.KindUser || e.ID != u.ID {
		t.Errorf("event %+v, want a user event for %s", e, u.ID)
	}
	if _, err := s.CreateToken(ctx, store.Token{ID: "after", UserID: u.ID, Kind: "login", PasswordVersion: u.PasswordVersion}); err != nil {
		t.Errorf("a token bound to the password version is refused after a rehash: %v", err)
	}
	if _, err := s.Token(ctx, "session"); err != nil {
		t.Errorf("the token issued before the rehash: %v", err)
	}

	wantErr(t, "RehashPassword from a hash no longer stored", s.RehashPassword(ctx, u.ID, "weak-hash", "other-hash"), store.ErrConflict)
	wantErr(t, "RehashPassword of an unknown user", s.RehashPassword(ctx, "nobody", "weak-hash", "other-hash"), store.ErrNotFound)
	wantErr(t, "RehashPassword to an empty hash", s.RehashPassword(ctx, u.ID, "strong-hash", ""), store.ErrInvalid)
	if got := mustGetUser(t, s, u.ID); got.PasswordHash != "strong-hash" {
		t.Errorf("refused rehashes changed the hash to %q", got.PasswordHash)
	}
}
