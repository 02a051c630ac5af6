package authhook_test

import (
	"context"
	"testing"
	"time"

	"github.com/warden-mqtt/warden/authhook"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/store"
)

// TestPasswordSessionEndsWhenMFAApplies: with MFA on, a session that
// connected with the account password alone is disconnected when its user
// enrols MFA or is MFA-locked (too many wrong codes), as a new CONNECT
// with that password would be refused; the user's sessions that connected
// with a login token or a client certificate go on. With
// --mfa-mqtt-password, enrolling does not end the password session, the
// MFA lock still does (as it refuses the password at CONNECT).
func TestPasswordSessionEndsWhenMFAApplies(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	enrol := func(u *store.User) error {
		u.MFA = &store.MFAState{Keys: []store.MFAKey{{ID: "k1", Type: "totp", Status: store.MFAStatusActive, CreatedAt: time.Now()}}}
		return nil
	}
	lock := func(u *store.User) error {
		u.MFA = &store.MFAState{LockedUntil: time.Now().Add(time.Hour)}
		return nil
	}
	for _, c := range []struct {
		name        string
		allowPW     bool
		change      func(u *store.User) error
		pwSessionUp bool
	}{
		{"user enrols MFA", false, enrol, false},
		{"user is MFA-locked", false, lock, false},
		{"user enrols MFA, --mfa-mqtt-password", true, enrol, true},
		{"user is MFA-locked, --mfa-mqtt-password", true, lock, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := startGuarded(t, credential.LockoutOptions{}, func(o *authhook.Options) { o.MFA, o.MFAAllowPassword = true, c.allowPW })
			u := addUser(t, g.st, "op", "op-secret-123", nil, func(u *store.User) {
				u.GrantTypes = []store.GrantType{{Method: store.GrantPassword}, {Method: store.GrantCertificate}}
			})
			tok, _, err := g.tokens.Issue(ctx, u, credential.KindLogin, "", time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			pw := g.mustConnect(t, connectOpts{username: "op", password: "op-secret-123", clientID: "op-pw", clean: true})
			token := g.mustConnect(t, connectOpts{username: "op", password: tok, clientID: "op-token", clean: true})
			cert := issueClient(t, g.ca, "op")
			byCert, code := tlsConnect(t, g.node, g.ca, &cert, connectOpts{clientID: "op-cert", clean: true})
			if code != 0 {
				t.Fatalf("certificate session: CONNACK 0x%02x", code)
			}
			if _, err := g.st.UpdateUser(ctx, u.ID, c.change); err != nil {
				t.Fatal(err)
			}
			if closed := pw.closed(2 * time.Second); closed == c.pwSessionUp {
				t.Errorf("password session closed: %v, want %v", closed, !c.pwSessionUp)
			}
			for name, rc := range map[string]*rawClient{"token": token, "certificate": byCert} {
				if err := rc.ping(); err != nil {
					t.Errorf("%s session ended: %v", name, err)
				}
			}
		})
	}
}
