package authhook

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/audit"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/pki"
	"github.com/warden-mqtt/warden/store"
)

// These tests drive the connection steps (resolveUser, checkCredentials,
// admit) through a surface-neutral attempt, against a real bbolt store and
// without a broker: the way a NATS auth callout or a broker's auth
// webhook is to drive them.

// steps is a hook with no server attached, its store, and the means to
// make credentials for it.
type steps struct {
	h      *Hook
	st     store.Store
	tokens *credential.Tokens
	ca     *pki.CA
	role   string // the role every user holds: readWrite on devices/{username}/#
	audit  bytes.Buffer
}

func newSteps(t *testing.T, tweak func(*Options)) *steps {
	t.Helper()
	ctx := t.Context()
	s := &steps{}
	var err error
	if s.ca, err = pki.NewCA("steps CA", time.Hour); err != nil {
		t.Fatal(err)
	}
	if s.st, err = store.OpenBolt(filepath.Join(t.TempDir(), "steps.db")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.st.Close() })
	if s.tokens, err = credential.NewTokens(ctx, s.st, "warden-steps"); err != nil {
		t.Fatal(err)
	}
	devices := acl.Permission{Resource: "devices/{username}/#", Operation: acl.OpReadWrite, Context: acl.ContextMQTT}
	role, err := s.st.CreateRole(ctx, store.Role{Name: "devices", Permissions: []acl.Permission{devices}})
	if err != nil {
		t.Fatal(err)
	}
	s.role = role.ID
	o := Options{Store: s.st, Tokens: s.tokens, Logger: slog.New(slog.DiscardHandler), Audit: audit.New(&s.audit)}
	if tweak != nil {
		tweak(&o)
	}
	if s.h, err = New(ctx, o); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.h.Stop() })
	return s
}

// user stores a user holding the devices role; a password is hashed with
// cheap parameters, edit adjusts the record first.
func (s *steps) user(t *testing.T, name, password string, edit func(*store.User)) store.User {
	t.Helper()
	u := store.User{Username: name, Roles: []string{s.role}}
	if password != "" {
		hash, err := credential.Hash(password, credential.Params{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32})
		if err != nil {
			t.Fatal(err)
		}
		u.PasswordHash = hash
	}
	if edit != nil {
		edit(&u)
	}
	u, err := s.st.CreateUser(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// cert is a client certificate for cn, as a TLS listener would have
// verified it against the CA.
func (s *steps) cert(t *testing.T, cn string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := s.ca.IssueClient(&key.PublicKey, cn, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// try is an MQTT 5 attempt of username with password from one address.
func try(username, password string) attempt {
	a := attempt{Attempt: Attempt{Username: username, ClientID: username + "-1", Remote: "192.0.2.7:40000", Now: time.Now()}, V5: true}
	if password != "" {
		a.Password = []byte(password)
	}
	return a
}

// decide runs the three steps one by one and says which one refused.
func (s *steps) decide(ctx context.Context, l *login) (step string, sess *session, r refusal) {
	if r = s.h.resolveUser(ctx, l); r.refused() {
		return "resolveUser", nil, r
	}
	if r = s.h.checkCredentials(ctx, l); r.refused() {
		return "checkCredentials", nil, r
	}
	if sess, r = s.h.admit(l); r.refused() {
		return "admit", nil, r
	}
	return "", sess, r
}

func TestStepsDecideAttempts(t *testing.T) {
	s := newSteps(t, nil)
	ctx := t.Context()
	alice := s.user(t, "alice", "alice-secret-1", nil)
	s.user(t, "zoë", "zoe-secret-123", nil)
	s.user(t, "sus", "sus-secret-123", func(u *store.User) { u.Suspended = true })
	certGrant := []store.GrantType{{Method: store.GrantCertificate}}
	s.user(t, "press-1", "", func(u *store.User) { u.GrantTypes = certGrant })
	s.user(t, "pinned", "", func(u *store.User) {
		u.GrantTypes = certGrant
		u.Certificates = []store.Certificate{{Fingerprint: strings.Repeat("ab", 32)}}
	})
	s.user(t, "both", "both-secret-12", func(u *store.User) {
		u.GrantTypes = []store.GrantType{{Method: store.GrantPassword}, {Method: store.GrantCertificate, IsRequired: true}}
	})
	s.user(t, "prefixed", "prefixed-secret", func(u *store.User) { u.MQTTPublishPrefix = "devices/prefixed/" })
	token, _, err := s.tokens.Issue(ctx, alice, credential.KindLogin, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	revoked, rec, err := s.tokens.Issue(ctx, alice, credential.KindLogin, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.tokens.Revoke(ctx, rec.ID); err != nil {
		t.Fatal(err)
	}

	type want struct {
		step   string // the step that refuses; "" admits
		kind   refusalKind
		reason string
		counts bool
	}
	cases := []struct {
		name  string
		a     attempt
		edit  func(*attempt)
		want  want
		check func(t *testing.T, l *login, sess *session)
	}{
		{name: "the right password admits, with its permissions bound to the name",
			a: try("alice", "alice-secret-1"),
			check: func(t *testing.T, l *login, sess *session) {
				if !l.proof.byPassword || l.proof.pwVersion != alice.PasswordVersion {
					t.Errorf("proof %+v, want the password", l.proof)
				}
				if !sess.bound.Allows("devices/alice/x", acl.OpWrite) || sess.bound.Allows("devices/bob/x", acl.OpRead) {
					t.Error("session not bound to alice's permissions")
				}
			}},
		{name: "a decomposed spelling finds the stored name", a: try("zoe\u0308", "zoe-secret-123"),
			check: func(t *testing.T, l *login, _ *session) {
				if l.username != "zoë" {
					t.Errorf("username %q, want the NFC spelling", l.username)
				}
			}},
		{name: "a login token sent as the password admits", a: try("alice", token),
			check: func(t *testing.T, l *login, _ *session) {
				if l.proof.tokenID == "" || l.proof.byPassword || l.tokenExp.IsZero() {
					t.Errorf("proof %+v, token expiry %v: want the token", l.proof, l.tokenExp)
				}
			}},
		{name: "a certificate without a username admits its common name", a: try("", ""),
			edit: func(a *attempt) { a.Cert = s.cert(t, "press-1") },
			check: func(t *testing.T, l *login, _ *session) {
				if l.username != "press-1" || !l.certName || l.proof.certFP == "" {
					t.Errorf("username %q (from the certificate: %v), proof %+v", l.username, l.certName, l.proof)
				}
			}},
		{name: "a will is admitted with the publish prefix", a: try("prefixed", "prefixed-secret"),
			edit: func(a *attempt) { a.Will, a.WillTopic = true, "gone" },
			check: func(t *testing.T, l *login, _ *session) {
				if l.willTopic != "devices/prefixed/gone" {
					t.Errorf("will topic %q, want it prefixed", l.willTopic)
				}
			}},
		{name: "no username and no certificate", a: try("", "whatever"),
			want: want{"resolveUser", refuseBadCredentials, "anonymous", false}},
		{name: "an unknown user is refused as a wrong password", a: try("mallory", "whatever"),
			want: want{"resolveUser", refuseBadCredentials, "unknown user", true}},
		{name: "a wrong password", a: try("alice", "nope"),
			want: want{"checkCredentials", refuseBadCredentials, "wrong password", true}},
		{name: "a suspended user is refused as a wrong password", a: try("sus", "sus-secret-123"),
			want: want{"checkCredentials", refuseBadCredentials, "suspended", true}},
		{name: "a password for a user without the password grant", a: try("press-1", "whatever"),
			want: want{"checkCredentials", refuseBadCredentials, "password grant not allowed", true}},
		{name: "a username without any credential", a: try("alice", ""),
			want: want{"checkCredentials", refuseBadCredentials, "no valid credential", true}},
		{name: "the right password without the required certificate", a: try("both", "both-secret-12"),
			want: want{"checkCredentials", refuseNotAuthorized, "client certificate required", true}},
		{name: "a certificate not pinned on the user does not count", a: try("pinned", ""),
			edit: func(a *attempt) { a.Cert = s.cert(t, "pinned") },
			want: want{"checkCredentials", refuseBadCredentials, "no valid credential", false}},
		{name: "a revoked token is no guess", a: try("alice", revoked),
			want: want{"checkCredentials", refuseBadCredentials, "token revoked", false}},
		{name: "a will on a topic the user may not write", a: try("alice", "alice-secret-1"),
			edit: func(a *attempt) { a.Will, a.WillTopic = true, "devices/bob/gone" },
			want: want{"admit", refuseNotAuthorized, "will topic not permitted", false}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.edit != nil {
				c.edit(&c.a)
			}
			l := newLogin(c.a)
			step, sess, r := s.decide(ctx, &l)
			got := want{step, r.kind, r.reason, r.countsTowardsLockout()}
			if got != c.want {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
			if step == "" && sess == nil {
				t.Fatal("admitted without a session")
			}
			if c.check != nil {
				c.check(t, &l, sess)
			}
		})
	}
}

// TestStepsRecordRefusals: authenticate logs, audits and counts what the
// steps refuse: a counted refusal blocks the next password attempt before
// the store is asked, a refusal that is no guess does not, and a
// certificate still gets through the block.
func TestStepsRecordRefusals(t *testing.T) {
	s := newSteps(t, func(o *Options) { o.MaxFailuresPerUser = 1 })
	ctx := t.Context()
	s.user(t, "press-2", "press-secret-1", func(u *store.User) {
		u.GrantTypes = []store.GrantType{{Method: store.GrantPassword}, {Method: store.GrantCertificate}}
	})
	authenticate := func(a attempt) refusal {
		t.Helper()
		l := newLogin(a)
		sess, r := s.h.authenticate(ctx, &l)
		if (sess == nil) != r.refused() {
			t.Fatalf("session %v with refusal %+v", sess, r)
		}
		return r
	}

	other := try("press-2", "")
	other.Cert = s.cert(t, "someone-else")
	if r := authenticate(other); r.reason != "no valid credential" || r.countsTowardsLockout() {
		t.Fatalf("a certificate of another name: %+v, want an uncounted refusal", r)
	}
	if r := authenticate(try("press-2", "press-secret-1")); r.refused() {
		t.Fatalf("right password after an uncounted refusal: %+v", r)
	}
	if r := authenticate(try("press-2", "wrong-secret-1")); r.reason != "wrong password" {
		t.Fatalf("wrong password: %+v", r)
	}
	if r := authenticate(try("press-2", "press-secret-1")); r.kind != refuseBlocked || r.reason != "locked" {
		t.Fatalf("right password after a counted failure: %+v, want locked", r)
	}
	withCert := try("press-2", "")
	withCert.Cert = s.cert(t, "press-2")
	if r := authenticate(withCert); r.refused() {
		t.Fatalf("certificate while the password is locked: %+v", r)
	}

	records := s.audit.String()
	for _, reason := range []string{"no valid credential", "wrong password", "locked"} {
		if !strings.Contains(records, `"reason":"`+reason+`"`) {
			t.Errorf("audit records lack %q:\n%s", reason, records)
		}
	}
	if strings.Contains(records, "secret") {
		t.Errorf("a password reached the audit records:\n%s", records)
	}
}
