package account_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/warden-mqtt/warden/account"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/store"
)

// tokens records login tokens and an application token of u, bound to
// its current password, and returns their IDs.
func (f *fixture) tokens(u store.User, kinds ...string) []string {
	f.t.Helper()
	u, err := f.st.User(context.Background(), u.ID)
	if err != nil {
		f.t.Fatal(err)
	}
	var ids []string
	for _, kind := range kinds {
		tok, err := f.st.CreateToken(context.Background(), store.Token{ID: store.NewID(), UserID: u.ID, Kind: kind,
			PasswordVersion: u.PasswordVersion, CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)})
		if err != nil {
			f.t.Fatal(err)
		}
		ids = append(ids, tok.ID)
	}
	return ids
}

// remaining returns which of ids are still recorded.
func (f *fixture) remaining(ids []string) []bool {
	f.t.Helper()
	out := make([]bool, len(ids))
	for i, id := range ids {
		_, err := f.st.Token(context.Background(), id)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			f.t.Fatal(err)
		}
		out[i] = err == nil
	}
	return out
}

// TestPasswordChangeEndsOtherSessions: a user's own change keeps the
// session that made it (bound to the new password) and ends its other
// login sessions; application tokens go only when asked. An admin's
// reset ends every login session of the user.
func TestPasswordChangeEndsOtherSessions(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		ctx := t.Context()
		u := f.user("user", nil)
		ids := f.tokens(u, credential.KindLogin, credential.KindLogin, credential.KindApplication)
		a := f.actor(u)
		a.Token = credential.Claims{TokenID: ids[0], UserID: u.ID, Kind: credential.KindLogin}
		err := f.svc.ChangePassword(ctx, a, account.PasswordChange{Password: testPassword, NewPassword: "a-new-password-1"})
		wantErr(t, "changing the password", err, nil, "")
		if got := f.remaining(ids); !slices.Equal(got, []bool{true, false, true}) {
			t.Fatalf("tokens left (own login, other login, application): %v, want true false true", got)
		}
		kept, err := f.st.Token(ctx, ids[0])
		if err != nil {
			t.Fatal(err)
		}
		if now, err := f.st.User(ctx, u.ID); err != nil || kept.PasswordVersion != now.PasswordVersion {
			t.Fatalf("the kept session is bound to password version %d, want the new one (%+v, %v)", kept.PasswordVersion, now, err)
		}

		a = f.actor(u)
		a.Token.TokenID, a.Token.Kind = ids[0], credential.KindLogin
		err = f.svc.ChangePassword(ctx, a, account.PasswordChange{Password: "a-new-password-1", NewPassword: testPassword, RevokeApplicationTokens: true})
		wantErr(t, "changing it again, with the application tokens", err, nil, "")
		if got := f.remaining(ids); !slices.Equal(got, []bool{true, false, false}) {
			t.Fatalf("tokens left: %v, want only the own session", got)
		}

		pw := "reset-by-admin-1"
		_, err = f.svc.UpdateUser(ctx, f.admin, u.ID, account.UserUpdate{Password: &pw})
		wantErr(t, "an admin's reset", err, nil, "")
		if got := f.remaining(ids[:1]); got[0] {
			t.Fatalf("after an admin's reset the user's session is left: %v", got)
		}
	})
}

// TestPasswordChangeRefusals: the current password is required and
// checked; wrong ones count towards the login lockout, which then refuses
// even the right one with the same answer; the new one meets the policy;
// an admin's reset refuses an empty password and a token revocation
// without a new password.
func TestPasswordChangeRefusals(t *testing.T) {
	f := boltFixture(t)
	ctx := t.Context()
	u := f.user("user", nil)
	a := f.actor(u)
	change := func(current, next string) error {
		return f.svc.ChangePassword(ctx, a, account.PasswordChange{Password: current, NewPassword: next})
	}
	wantErr(t, "no current password", change("", "whatever-long-1"), account.ErrInvalid, "password and newPassword are required")
	var pe *credential.PolicyError
	if err := change(testPassword, "short"); !errors.As(err, &pe) {
		t.Fatalf("a new password below the policy: %v, want a *credential.PolicyError", err)
	}
	for range lockoutFailures {
		wantErr(t, "a wrong current password", change("wrong-password-1", "whatever-long-1"), account.ErrWrongPassword, "wrong password")
	}
	err := change(testPassword, "whatever-long-1")
	wantErr(t, "the right password while locked out", err, account.ErrLocked, "wrong password")
	if !errors.Is(err, account.ErrForbidden) || errors.Is(err, account.ErrWrongPassword) {
		t.Fatalf("ErrLocked is %v, want it of kind ErrForbidden and told apart from ErrWrongPassword", err)
	}
	a.Remote = "198.51.100.7:1"
	wantErr(t, "the right password from another address", change(testPassword, "whatever-long-1"), nil, "")

	empty, revoke := "", true
	_, err = f.svc.UpdateUser(ctx, f.admin, u.ID, account.UserUpdate{Password: &empty})
	wantErr(t, "an empty password", err, account.ErrInvalid, "password must not be empty")
	_, err = f.svc.UpdateUser(ctx, f.admin, u.ID, account.UserUpdate{RevokeApplicationTokens: revoke})
	wantErr(t, "a revocation without a password", err, account.ErrInvalid, "revokeApplicationTokens goes with a new password")
}
