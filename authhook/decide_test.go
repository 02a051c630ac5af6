package authhook_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/audit"
	"github.com/warden-mqtt/warden/authhook"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/internal/logbuf"
	"github.com/warden-mqtt/warden/store"
)

// TestDecide: another surface gets the embedded broker's decisions: the
// user's mqtt permissions (placeholders left for the surface to bind) on
// a right password, the login token's expiry when one is the password,
// and a *Refusal with the code and the audit reason otherwise, audited
// without the password; a user with a publish prefix is refused where
// the surface cannot apply it.
func TestDecide(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	trail := &logbuf.Buffer{}
	n := startNode(t, nodeOpts{tweak: func(o *authhook.Options) { o.Audit = audit.New(trail) }})
	st, h, tokens := n.st, n.hook, n.tokens
	want := []acl.Permission{perm("dev/{clientId}/#", acl.OpWrite), perm("cmd/#", acl.OpRead)}
	u := addUser(t, st, "dev", "Dev-password-1", append(want, acl.Permission{Resource: "/api/x", Operation: acl.OpRead, Context: acl.ContextHTTP}), nil)
	addUser(t, st, "pre", "Pre-password-1", want, func(u *store.User) { u.MQTTPublishPrefix = "plant1/" })

	d, err := h.Decide(ctx, authhook.Attempt{Username: "dev", Password: []byte("Dev-password-1"), ClientID: "c1", Remote: "10.0.0.1"})
	if err != nil {
		t.Fatalf("right password: %v", err)
	}
	if d.UserID != u.ID || d.Username != "dev" || d.ClientID != "c1" || !d.TokenExpiry.IsZero() || len(d.Permissions) != 2 ||
		d.Permissions[0].Resource != want[0].Resource || d.Permissions[1].Resource != want[1].Resource {
		t.Errorf("decision = %+v, want dev's two mqtt permissions", d)
	}

	tok, rec, err := tokens.Issue(ctx, u, credential.KindLogin, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	d, err = h.Decide(ctx, authhook.Attempt{Username: "dev", Password: []byte(tok), ClientID: "c2", Remote: "10.0.0.1"})
	if err != nil || !d.TokenExpiry.Equal(rec.ExpiresAt) {
		t.Errorf("login token: expiry %v, err %v; want %v", d.TokenExpiry, err, rec.ExpiresAt)
	}

	for _, c := range []struct {
		name string
		a    authhook.Attempt
		code authhook.RefusalCode
		why  string
	}{
		{"wrong password", authhook.Attempt{Username: "dev", Password: []byte("Secret-guess-1")}, authhook.RefusedBadCredentials, "wrong password"},
		{"unknown user", authhook.Attempt{Username: "ghost", Password: []byte("Secret-guess-2")}, authhook.RefusedBadCredentials, "unknown user"},
		{"prefix", authhook.Attempt{Username: "pre", Password: []byte("Pre-password-1"), Admit: refusePrefix}, authhook.RefusedNotAuthorized, "publish prefix not supported by this broker"},
	} {
		_, err := h.Decide(ctx, c.a)
		var r *authhook.Refusal
		if !errors.As(err, &r) || r.Code != c.code || r.Reason != c.why {
			t.Errorf("%s: err = %v, want code %v reason %q", c.name, err, c.code, c.why)
		}
		if !strings.Contains(trail.String(), `"reason":"`+c.why+`"`) {
			t.Errorf("%s: not audited: %s", c.name, trail.String())
		}
	}
	for _, secret := range []string{"Secret-guess-1", "Secret-guess-2", "Dev-password-1", "Pre-password-1"} {
		if strings.Contains(trail.String(), secret) {
			t.Errorf("audit trail contains %q", secret)
		}
	}
}

// refusePrefix refuses a user with a publish prefix, as a surface that
// cannot prepend one (NATS) does.
func refusePrefix(d authhook.Decision) error {
	if d.PublishPrefix != "" {
		return errors.New("publish prefix not supported by this broker")
	}
	return nil
}
