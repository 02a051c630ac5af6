package credential

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

// TestTokenObtainedWithAnotherGoesWithIt: a token issued with a parent
// verifies until the parent is revoked, then is revoked too; none can be
// issued once the parent is gone.
func TestTokenObtainedWithAnotherGoesWithIt(t *testing.T) {
	t.Parallel()
	s := storetest.OpenBolt(t)
	tk := newTestTokens(t, s)
	u := newTokenUser(t, s, "svc")
	ctx := context.Background()
	app, appRec, err := tk.Issue(ctx, u, KindApplication, "billing", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	sess, rec, err := tk.IssueWithParent(ctx, u, appRec.ID, KindApplicationSession, "", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if rec.ParentID != appRec.ID || rec.Kind != KindApplicationSession {
		t.Fatalf("record %+v, want parent %s and kind %s", rec, appRec.ID, KindApplicationSession)
	}
	if c, err := tk.Verify(ctx, sess); err != nil || c.Kind != KindApplicationSession {
		t.Fatalf("Verify(session) = %+v, %v", c, err)
	}
	if err := tk.Revoke(ctx, appRec.ID); err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{"application": app, "session": sess} {
		if _, err := tk.Verify(ctx, tok); !errors.Is(err, ErrTokenRevoked) {
			t.Errorf("Verify(%s) after revoking the application token: %v, want ErrTokenRevoked", name, err)
		}
	}
	if _, _, err := tk.IssueWithParent(ctx, u, appRec.ID, KindApplicationSession, "", time.Minute); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("IssueWithParent of a revoked parent: %v, want store.ErrNotFound", err)
	}
	if _, _, err := tk.IssueWithParent(ctx, u, "", KindApplicationSession, "", time.Minute); err == nil {
		t.Error("IssueWithParent without a parent succeeded")
	}
}

// TestIssueForAStaleUserRecordIsRefused: a login that checked the old
// password cannot record its token once the password changed.
func TestIssueForAStaleUserRecordIsRefused(t *testing.T) {
	t.Parallel()
	s := storetest.OpenBolt(t)
	tk := newTestTokens(t, s)
	ctx := context.Background()
	u, err := s.CreateUser(ctx, store.User{Username: "alice", PasswordHash: "old"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateUser(ctx, u.ID, func(x *store.User) error { x.PasswordHash = "new"; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tk.Issue(ctx, u, KindLogin, "", time.Hour); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Issue for the user as read before the change: %v, want store.ErrConflict", err)
	}
	fresh, err := s.User(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := tk.Issue(ctx, fresh, KindLogin, "", time.Hour); err != nil {
		t.Fatalf("Issue for the current user: %v", err)
	}
}

func TestAcceptedKind(t *testing.T) {
	t.Parallel()
	for kind, want := range map[string]bool{
		KindLogin: true, KindApplication: true, KindApplicationSession: true,
		KindDevice: false, "": false, "Login": false, "admin": false,
	} {
		if got := AcceptedKind(kind); got != want {
			t.Errorf("AcceptedKind(%q) = %v, want %v", kind, got, want)
		}
	}
}
