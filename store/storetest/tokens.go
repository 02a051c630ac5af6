package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/warden-mqtt/warden/store"
)

// Token families: a token obtained with another (an application-session
// token exchanged for an application token) names it in ParentID and is
// revoked with it, in the same transaction, whichever way the parent goes.

// commitEvents reads the events of the next n commits and returns, per
// commit, its token deletions sorted, failing unless each commit's events
// share one version.
func commitEvents(t *testing.T, ch <-chan store.Event, sizes ...int) [][]string {
	t.Helper()
	var out [][]string
	for _, n := range sizes {
		var ids []string
		var ver uint64
		for i := range n {
			e := nextEvent(t, ch)
			if i == 0 {
				ver = e.Version
			} else if e.Version != ver {
				t.Errorf("event %+v has version %d, want %d: one commit, one version", e, e.Version, ver)
			}
			ids = append(ids, fmt.Sprintf("%s/%s/%s", e.Kind, e.Op, e.ID))
		}
		slices.Sort(ids)
		out = append(out, ids)
	}
	select {
	case e := <-ch:
		t.Errorf("unexpected extra event %+v", e)
	default:
	}
	return out
}

func deleted(ids ...string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = "token/delete/" + id
	}
	slices.Sort(out)
	return out
}

func wantGone(t *testing.T, s store.Store, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if _, err := s.Token(testCtx(t), id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Token(%s): err = %v, want ErrNotFound (revoked with its parent)", id, err)
		}
	}
}

func wantKept(t *testing.T, s store.Store, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if _, err := s.Token(testCtx(t), id); err != nil {
			t.Errorf("Token(%s): %v, want it kept", id, err)
		}
	}
}

// testTokenFamilies: a child needs a live parent of its own user; deleting
// the parent deletes its children and theirs in one commit, with an event
// for each; deleting a child leaves the parent.
func testTokenFamilies(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	u := mustUser(t, s, store.User{Username: "alice"})
	v := mustUser(t, s, store.User{Username: "bob"})
	mustToken(t, s, store.Token{ID: "app", UserID: u.ID, Kind: "application"})
	mustToken(t, s, store.Token{ID: "bobs", UserID: v.ID, Kind: "application"})

	_, err := s.CreateToken(ctx, store.Token{ID: "x", UserID: u.ID, ParentID: "no-such-token"})
	wantErr(t, "child of a missing parent", err, store.ErrNotFound)
	_, err = s.CreateToken(ctx, store.Token{ID: "x", UserID: u.ID, ParentID: "bobs"})
	wantErr(t, "child of another user's token", err, store.ErrInvalid)
	_, err = s.CreateToken(ctx, store.Token{ID: "x", UserID: u.ID, ParentID: "x"})
	wantErr(t, "token that is its own parent", err, store.ErrInvalid)
	wantGone(t, s, "x")

	s1 := mustToken(t, s, store.Token{ID: "s1", UserID: u.ID, Kind: "application-session", ParentID: "app"})
	if s1.ParentID != "app" {
		t.Errorf("CreateToken returned ParentID %q", s1.ParentID)
	}
	if got, err := s.Token(ctx, "s1"); err != nil || got.ParentID != "app" {
		t.Errorf("Token(s1) = %+v, %v; want ParentID app", got, err)
	}
	mustToken(t, s, store.Token{ID: "s2", UserID: u.ID, Kind: "application-session", ParentID: "app"})
	mustToken(t, s, store.Token{ID: "g1", UserID: u.ID, Kind: "x", ParentID: "s2"})
	mustToken(t, s, store.Token{ID: "login", UserID: u.ID, Kind: "login"})

	ch, err := s.Watch(ctx)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	// A child goes alone.
	if err := s.DeleteToken(ctx, "s1"); err != nil {
		t.Fatalf("DeleteToken(s1): %v", err)
	}
	wantKept(t, s, "app", "s2", "g1")
	// The parent takes the rest of its family, not its siblings.
	if err := s.DeleteToken(ctx, "app"); err != nil {
		t.Fatalf("DeleteToken(app): %v", err)
	}
	wantGone(t, s, "app", "s1", "s2", "g1")
	wantKept(t, s, "login", "bobs")
	got := commitEvents(t, ch, 1, 3)
	if want := [][]string{deleted("s1"), deleted("app", "s2", "g1")}; !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("events per commit %v, want %v", got, want)
	}
	toks, err := s.UserTokens(ctx, u.ID)
	if err != nil || !slices.Equal(tokenIDs(toks), []string{"login"}) {
		t.Errorf("UserTokens after the cascade = %v, %v; want [login]", tokenIDs(toks), err)
	}
	// Gone means gone: no child can be hung on a revoked parent.
	_, err = s.CreateToken(ctx, store.Token{ID: "late", UserID: u.ID, ParentID: "app"})
	wantErr(t, "child of a revoked parent", err, store.ErrNotFound)

	// A new parent with the old ID starts without children.
	mustToken(t, s, store.Token{ID: "app", UserID: u.ID, Kind: "application"})
	mustToken(t, s, store.Token{ID: "s3", UserID: u.ID, ParentID: "app"})
	if err := s.DeleteToken(ctx, "app"); err != nil {
		t.Fatalf("DeleteToken(app) again: %v", err)
	}
	wantGone(t, s, "s3")
}

// testDeleteUserTokensWhere: only the matching tokens go, with the tokens
// obtained with them whether or not those match, in one commit.
func testDeleteUserTokensWhere(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	u := mustUser(t, s, store.User{Username: "alice"})
	v := mustUser(t, s, store.User{Username: "bob"})
	for _, tok := range []store.Token{
		{ID: "l1", UserID: u.ID, Kind: "login"},
		{ID: "l2", UserID: u.ID, Kind: "login"},
		{ID: "a1", UserID: u.ID, Kind: "application"},
		{ID: "a2", UserID: u.ID, Kind: "application"},
		{ID: "s1", UserID: u.ID, Kind: "application-session", ParentID: "a1"},
		{ID: "s2", UserID: u.ID, Kind: "application-session", ParentID: "a2"},
		{ID: "bl", UserID: v.ID, Kind: "login"},
	} {
		mustToken(t, s, tok)
	}
	ch, err := s.Watch(ctx)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	kind := func(k string) func(store.Token) bool { return func(t store.Token) bool { return t.Kind == k } }

	n, err := s.DeleteUserTokensWhere(ctx, u.ID, kind("login"))
	if err != nil || n != 2 {
		t.Fatalf("DeleteUserTokensWhere(login) = %d, %v; want 2", n, err)
	}
	wantGone(t, s, "l1", "l2")
	wantKept(t, s, "a1", "a2", "s1", "s2", "bl")

	n, err = s.DeleteUserTokensWhere(ctx, u.ID, func(t store.Token) bool { return t.ID == "a1" })
	if err != nil || n != 2 {
		t.Fatalf("DeleteUserTokensWhere(a1) = %d, %v; want 2 (a1 and s1)", n, err)
	}
	wantGone(t, s, "a1", "s1")
	wantKept(t, s, "a2", "s2", "bl")

	if n, err := s.DeleteUserTokensWhere(ctx, u.ID, kind("nothing")); err != nil || n != 0 {
		t.Errorf("DeleteUserTokensWhere matching nothing = %d, %v; want 0", n, err)
	}
	if n, err := s.DeleteUserTokensWhere(ctx, "no-such-user", kind("login")); err != nil || n != 0 {
		t.Errorf("DeleteUserTokensWhere of an unknown user = %d, %v; want 0, nil", n, err)
	}
	got := commitEvents(t, ch, 2, 2)
	if want := [][]string{deleted("l1", "l2"), deleted("a1", "s1")}; !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("events per commit %v, want %v", got, want)
	}

	// DeleteUserTokens takes every family whole and leaves no index behind:
	// a parent recreated with an old ID has no children.
	if n, err := s.DeleteUserTokens(ctx, u.ID); err != nil || n != 2 {
		t.Fatalf("DeleteUserTokens = %d, %v; want 2", n, err)
	}
	wantGone(t, s, "a2", "s2")
	mustToken(t, s, store.Token{ID: "a2", UserID: u.ID, Kind: "application"})
	if n, err := s.DeleteUserTokensWhere(ctx, u.ID, kind("application")); err != nil || n != 1 {
		t.Errorf("DeleteUserTokensWhere after DeleteUserTokens = %d, %v; want 1", n, err)
	}
}

// testTokenPasswordVersion: a token bound to a password version is refused
// once the password changed, so a login checked against the old password
// cannot record its token after the change.
func testTokenPasswordVersion(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	u := mustUser(t, s, store.User{Username: "alice", PasswordHash: "h1"})
	if u.PasswordVersion == 0 {
		t.Fatal("user with a password has PasswordVersion 0")
	}
	old := u.PasswordVersion
	mustToken(t, s, store.Token{ID: "before", UserID: u.ID, Kind: "login", PasswordVersion: old})
	u, err := s.UpdateUser(ctx, u.ID, func(x *store.User) error { x.PasswordHash = "h2"; return nil })
	if err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	_, err = s.CreateToken(ctx, store.Token{ID: "stale", UserID: u.ID, Kind: "login", PasswordVersion: old})
	wantErr(t, "token bound to the old password", err, store.ErrConflict)
	wantGone(t, s, "stale")
	mustToken(t, s, store.Token{ID: "fresh", UserID: u.ID, Kind: "login", PasswordVersion: u.PasswordVersion})
	mustToken(t, s, store.Token{ID: "unbound", UserID: u.ID, Kind: "application"})
}

// testConcurrentRevokeAndExchange races the revocation of a parent with
// the creation of children: whatever the order, no child survives its
// parent.
func testConcurrentRevokeAndExchange(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	u := mustUser(t, s, store.User{Username: "alice"})
	for round := range 10 {
		parent := fmt.Sprintf("app%d", round)
		mustToken(t, s, store.Token{ID: parent, UserID: u.ID, Kind: "application"})
		errs := concurrently(5, func(i int) error {
			if i == 0 {
				return s.DeleteToken(ctx, parent)
			}
			_, err := s.CreateToken(ctx, store.Token{ID: fmt.Sprintf("%s-s%d", parent, i), UserID: u.ID, ParentID: parent})
			return err
		})
		if errs[0] != nil {
			t.Fatalf("round %d: DeleteToken: %v", round, errs[0])
		}
		for i, err := range errs[1:] {
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				t.Errorf("round %d: child %d: %v, want success or ErrNotFound", round, i+1, err)
			}
		}
	}
	toks, err := s.UserTokens(ctx, u.ID)
	if err != nil {
		t.Fatalf("UserTokens: %v", err)
	}
	if len(toks) != 0 {
		t.Errorf("children outlived their revoked parents: %s", strings.Join(tokenIDs(toks), ", "))
	}
}

// testTokenFamiliesSnapshot: families survive a snapshot and restore (the
// index is rebuilt), and a snapshot whose child has no parent of its user
// is refused.
func testTokenFamiliesSnapshot(t *testing.T, s store.Store) {
	ctx := testCtx(t)
	u := mustUser(t, s, store.User{Username: "alice", PasswordHash: "h"})
	v := mustUser(t, s, store.User{Username: "bob"})
	mustToken(t, s, store.Token{ID: "app", UserID: u.ID, Kind: "application"})
	mustToken(t, s, store.Token{ID: "bobs", UserID: v.ID, Kind: "application"})
	mustToken(t, s, store.Token{ID: "s1", UserID: u.ID, Kind: "application-session", ParentID: "app", PasswordVersion: u.PasswordVersion})
	snap := snapshot(t, s)
	if i := slices.IndexFunc(snap.Tokens, func(t store.Token) bool { return t.ID == "s1" }); i < 0 || snap.Tokens[i].ParentID != "app" || snap.Tokens[i].PasswordVersion != u.PasswordVersion {
		t.Fatalf("snapshot lost the token's parent or password version: %+v", snap.Tokens)
	}
	for name, child := range map[string]store.Token{
		"missing parent":        {ID: "orphan", UserID: u.ID, ParentID: "no-such-token"},
		"another user's parent": {ID: "orphan", UserID: u.ID, ParentID: "bobs"},
		"its own parent":        {ID: "orphan", UserID: u.ID, ParentID: "orphan"},
	} {
		bad := snap
		bad.Tokens = append(slices.Clone(snap.Tokens), child)
		wantErr(t, "Restore with a token whose parent is a "+name, s.Restore(ctx, bad), store.ErrInvalid)
	}
	if err := s.DeleteToken(ctx, "app"); err != nil {
		t.Fatalf("DeleteToken: %v", err)
	}
	if err := s.Restore(ctx, snap); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	wantKept(t, s, "app", "s1")
	if err := s.DeleteToken(ctx, "app"); err != nil {
		t.Fatalf("DeleteToken after Restore: %v", err)
	}
	wantGone(t, s, "s1")
}
