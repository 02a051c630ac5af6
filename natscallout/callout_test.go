package natscallout_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/audit"
	"github.com/warden-mqtt/warden/authhook"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/internal/logbuf"
	"github.com/warden-mqtt/warden/internal/mqtttest"
	"github.com/warden-mqtt/warden/internal/poll"
	"github.com/warden-mqtt/warden/natscallout"
	"github.com/warden-mqtt/warden/pki"
	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

const authPassword = "auth-user-password"

// fastParams keep test logins quick.
var fastParams = credential.Params{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// env is a NATS server whose auth callout a warden hook answers.
type env struct {
	srv    *server.Server
	sopts  *server.Options // the server's options, its bound MQTT port filled in
	st     store.Store
	hook   *authhook.Hook
	tokens *credential.Tokens
	trail  *logbuf.Buffer      // the audit trail of the hook
	opts   natscallout.Options // what start uses for another responder
}

// newEnv starts a NATS server with the accounts AUTH (the callout's),
// MQTT (where admitted clients land) and SYS, its auth_callout naming a
// fresh issuer key (and, with encrypt, a fresh xkey) and the auth user,
// and a warden hook over a fresh bbolt store; tweak adjusts the server's
// options. No responder yet (start).
func newEnv(t *testing.T, encrypt bool, tweak ...func(*server.Options)) *env {
	t.Helper()
	issuer, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := issuer.PublicKey()
	authAcc, sysAcc := server.NewAccount("AUTH"), server.NewAccount("SYS")
	sopts := &server.Options{
		Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		Accounts:      []*server.Account{authAcc, server.NewAccount("MQTT"), sysAcc},
		SystemAccount: "SYS",
		Users: []*server.User{{Username: "auth", Password: authPassword, Account: authAcc},
			{Username: "auth-system", Password: authPassword, Account: sysAcc}},
		AuthCallout: &server.AuthCallout{Issuer: pub, Account: "AUTH", AuthUsers: []string{"auth", "auth-system"}},
	}
	var xkey nkeys.KeyPair
	if encrypt {
		if xkey, err = nkeys.CreateCurveKeys(); err != nil {
			t.Fatal(err)
		}
		sopts.AuthCallout.XKey, _ = xkey.PublicKey()
	}
	for _, f := range tweak {
		f(sopts)
	}
	srv, err := server.NewServer(sopts)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(5 * time.Second) {
		t.Fatal("nats-server not ready")
	}

	e := &env{srv: srv, sopts: sopts, opts: natscallout.Options{
		URL:         srv.ClientURL(),
		Connect:     []nats.Option{nats.UserInfo("auth", authPassword)},
		System:      []nats.Option{nats.UserInfo("auth-system", authPassword)},
		Issuer:      issuer,
		XKey:        xkey,
		Permissions: natscallout.Permissions,
	}}
	e.attach(t, storetest.OpenBolt(t))
	return e
}

// attach makes st the model: a warden hook over it decides for the
// responders started from now on.
func (e *env) attach(t *testing.T, st store.Store) {
	t.Helper()
	ctx := context.Background()
	tokens, err := credential.NewTokens(ctx, st, "warden-test")
	if err != nil {
		t.Fatal(err)
	}
	trail := &logbuf.Buffer{}
	h, err := authhook.New(ctx, authhook.Options{Store: st, Tokens: tokens, Logger: slog.New(slog.DiscardHandler), Audit: audit.New(trail)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Stop() })
	e.st, e.hook, e.tokens, e.trail = st, h, tokens, trail
	e.opts.Decider, e.opts.Store = h, st
}

// start runs one more warden responder.
func (e *env) start(t *testing.T) *natscallout.Service {
	t.Helper()
	s, err := natscallout.Start(t.Context(), e.opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// addUser creates a user with a password and a role holding perms.
func (e *env) addUser(t *testing.T, name, password string, perms ...acl.Permission) store.User {
	t.Helper()
	ctx := context.Background()
	r, err := e.st.CreateRole(ctx, store.Role{Name: name + "-role", Permissions: perms})
	if err != nil {
		t.Fatal(err)
	}
	hash, err := credential.Hash(password, fastParams)
	if err != nil {
		t.Fatal(err)
	}
	u, err := e.st.CreateUser(ctx, store.User{Username: name, PasswordHash: hash, Roles: []string{r.ID},
		GrantTypes: []store.GrantType{{Method: store.GrantPassword}}})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// connect connects a plain NATS client; its asynchronous errors (a
// permissions violation) arrive on the returned channel.
func (e *env) connect(t *testing.T, user, password string) (*nats.Conn, <-chan error, error) {
	t.Helper()
	errs := make(chan error, 16)
	nc, err := nats.Connect(e.srv.ClientURL(), nats.UserInfo(user, password), nats.MaxReconnects(0),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case errs <- err:
			default:
			}
		}))
	if err == nil {
		t.Cleanup(nc.Close)
	}
	return nc, errs, err
}

func perm(resource string, op acl.Operation) acl.Permission {
	return acl.Permission{Resource: resource, Operation: op, Context: acl.ContextMQTT}
}

// TestCalloutAdmitsAndRefuses: a plain NATS client with a user's right
// password is admitted by warden through the server's auth callout, in
// clear and with the requests encrypted (xkey); a wrong password, an
// unknown user and a user with a publish prefix are refused.
func TestCalloutAdmitsAndRefuses(t *testing.T) {
	t.Parallel()
	for _, encrypt := range []bool{false, true} {
		t.Run(map[bool]string{false: "clear", true: "xkey"}[encrypt], func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, encrypt)
			e.start(t)
			e.addUser(t, "dev", "Dev-password-1", perm("telemetry", acl.OpReadWrite))
			pre := e.addUser(t, "pre", "Pre-password-1", perm("telemetry", acl.OpReadWrite))
			if _, err := e.st.UpdateUser(context.Background(), pre.ID, func(u *store.User) error { u.MQTTPublishPrefix = "plant1/"; return nil }); err != nil {
				t.Fatal(err)
			}

			nc, _, err := e.connect(t, "dev", "Dev-password-1")
			if err != nil {
				t.Fatalf("right password refused: %v", err)
			}
			if acc := e.accountOf(t, nc); acc != "MQTT" {
				t.Errorf("admitted into account %q, want MQTT", acc)
			}
			for _, c := range [][2]string{{"dev", "Secret-guess-1"}, {"ghost", "Secret-guess-2"}, {"pre", "Pre-password-1"}} {
				if _, _, err := e.connect(t, c[0], c[1]); !errors.Is(err, nats.ErrAuthorization) {
					t.Errorf("%s/%s: err = %v, want %v", c[0], c[1], err, nats.ErrAuthorization)
				}
			}
		})
	}
}

// accountOf is the account the server placed nc in.
func (e *env) accountOf(t *testing.T, nc *nats.Conn) string {
	t.Helper()
	cid, err := nc.GetClientID()
	if err != nil {
		t.Fatal(err)
	}
	conns, err := e.srv.Connz(&server.ConnzOptions{CID: cid, Username: true})
	if err != nil || len(conns.Conns) != 1 {
		t.Fatalf("connz: %v %v", conns, err)
	}
	return conns.Conns[0].Account
}

// TestCalloutPermissions: the user JWT carries the converted permissions:
// a permitted publish reaches a subscriber, a denied one never does and
// its publisher hears of the violation.
func TestCalloutPermissions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	e.start(t)
	e.addUser(t, "dev", "Dev-password-1", perm("telemetry", acl.OpWrite))
	e.addUser(t, "spy", "Spy-password-1", perm("telemetry", acl.OpRead), perm("secret", acl.OpRead))

	spy, _, err := e.connect(t, "spy", "Spy-password-1")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *nats.Msg, 4) // both subjects, in the order they arrive
	for _, subj := range []string{"secret", "telemetry"} {
		if _, err := spy.ChanSubscribe(subj, got); err != nil {
			t.Fatal(err)
		}
	}
	if err := spy.Flush(); err != nil {
		t.Fatal(err)
	}
	dev, devErrs, err := e.connect(t, "dev", "Dev-password-1")
	if err != nil {
		t.Fatal(err)
	}
	// One publisher's messages arrive in order: had the denied one
	// passed, it would come before the permitted one.
	for _, subj := range []string{"secret", "telemetry"} {
		if err := dev.Publish(subj, []byte(subj)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case m := <-got:
		if m.Subject != "telemetry" {
			t.Fatalf("spy got a message on %q first, want telemetry", m.Subject)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("permitted publish never arrived")
	}
	select {
	case err := <-devErrs:
		if !errors.Is(err, nats.ErrPermissionViolation) {
			t.Errorf("publisher's error = %v, want a permissions violation", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("denied publish not reported to the publisher")
	}
}

// TestCalloutTokenExpiry: a login token as the password gives a user JWT
// that expires with the token: the server closes the connection then.
func TestCalloutTokenExpiry(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	e.start(t)
	u := e.addUser(t, "dev", "Dev-password-1", perm("telemetry", acl.OpWrite))
	tok, _, err := e.tokens.IssueUntil(context.Background(), u, credential.KindLogin, "", time.Now().Add(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	nc, err := nats.Connect(e.srv.ClientURL(), nats.UserInfo("dev", tok), nats.NoReconnect(),
		nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
	if err != nil {
		t.Fatalf("login token refused: %v", err)
	}
	defer nc.Close()
	select {
	case <-closed:
	case <-time.After(6 * time.Second):
		t.Fatal("connection outlived its login token")
	}
}

// TestCalloutQueueGroup: two warden responders answer together; with one
// closed, connects go on through the other.
func TestCalloutQueueGroup(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	first := e.start(t)
	e.start(t)
	e.addUser(t, "dev", "Dev-password-1", perm("telemetry", acl.OpWrite))
	for range 4 {
		if _, _, err := e.connect(t, "dev", "Dev-password-1"); err != nil {
			t.Fatalf("with two responders: %v", err)
		}
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		if _, _, err := e.connect(t, "dev", "Dev-password-1"); err != nil {
			t.Fatalf("with one responder left: %v", err)
		}
	}
}

// TestCalloutMQTTClient: an MQTT 3.1.1 client connecting to the server's
// MQTT listener is decided by warden with its MQTT client ID (the
// permissions are bound to it), and refused on a wrong password.
func TestCalloutMQTTClient(t *testing.T) {
	t.Parallel()
	e := newMQTTEnv(t)
	clientIDs := make(chan string, 4)
	e.opts.Permissions = func(perms []acl.Permission, username, clientID string) (jwt.Permissions, error) {
		clientIDs <- clientID
		return natscallout.Permissions(perms, username, clientID)
	}
	e.start(t)
	e.addUser(t, "dev", "Dev-password-1", perm("dev/#", acl.OpReadWrite))
	if code := e.connack(t, "dev", "Dev-password-1", "c1"); code != 0 {
		t.Fatalf("right password: CONNACK %d", code)
	}
	if id := <-clientIDs; id != "c1" {
		t.Errorf("permissions bound to client ID %q, want c1", id)
	}
	if code := e.connack(t, "dev", "Secret-guess-1", "c1"); code == 0 {
		t.Error("wrong password accepted")
	}
}

// newMQTTEnv is newEnv with the server's MQTT listener (JetStream on, in
// the MQTT account, which NATS's MQTT needs).
func newMQTTEnv(t *testing.T, tweak ...func(*server.Options)) *env {
	t.Helper()
	e := newEnv(t, false, append([]func(*server.Options){func(o *server.Options) {
		o.ServerName = "n1"
		o.JetStream, o.StoreDir = true, t.TempDir()
		o.MQTT.Host, o.MQTT.Port = "127.0.0.1", -1
	}}, tweak...)...)
	acc, err := e.srv.LookupAccount("MQTT")
	if err == nil {
		err = acc.EnableJetStream(map[string]server.JetStreamAccountLimits{"": {MaxMemory: -1, MaxStore: -1, MaxStreams: -1, MaxConsumers: -1, MaxAckPending: -1, MemoryMaxStreamBytes: -1, StoreMaxStreamBytes: -1}}, nil)
	}
	if err != nil {
		t.Fatalf("JetStream for MQTT: %v", err)
	}
	return e
}

// connack connects an MQTT 3.1.1 client (clean session), returns the
// CONNACK's return code and disconnects.
func (e *env) connack(t *testing.T, user, password, clientID string) byte {
	t.Helper()
	addr := net.JoinHostPort(e.sopts.MQTT.Host, strconv.Itoa(e.sopts.MQTT.Port))
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(mqtttest.Connect{Version: 4, ClientID: clientID, Username: user, Password: password, Keepalive: 30}.Bytes()); err != nil {
		t.Fatal(err)
	}
	first, body := mqtttest.MustReadPacket(t, c)
	if first>>4 != 2 || len(body) != 2 {
		t.Fatalf("not a CONNACK: %#x %v", first, body)
	}
	if body[1] == 0 {
		_, _ = c.Write([]byte{0xe0, 0})
		_, _ = io.Copy(io.Discard, c) // the server closes it: the session is free again
	}
	return body[1]
}

// TestCalloutClientCertificate: a client certificate the server verified
// reaches warden in the request's TLS information: a certificate user
// (no password) is admitted by its common name, checked again against
// ClientCAs; a certificate of a user without the certificate grant is
// refused.
func TestCalloutClientCertificate(t *testing.T) {
	t.Parallel()
	ca, err := pki.NewCA("warden test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	srvCert, err := ca.IssueServer([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, false, func(o *server.Options) {
		o.TLS, o.TLSTimeout = true, 5
		o.TLSConfig = &tls.Config{Certificates: []tls.Certificate{srvCert}, ClientCAs: ca.Pool(), ClientAuth: tls.VerifyClientCertIfGiven, MinVersion: tls.VersionTLS12}
	})
	roots := nats.Secure(&tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12})
	e.opts.Connect = append(e.opts.Connect, roots)
	e.opts.ClientCAs = ca.Pool()
	e.start(t)
	ctx := context.Background()
	if _, err := e.st.CreateUser(ctx, store.User{Username: "devcert", GrantTypes: []store.GrantType{{Method: store.GrantCertificate}}}); err != nil {
		t.Fatal(err)
	}
	e.addUser(t, "pwonly", "Pw-password-1")

	connect := func(cn string) error {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		cert, _, err := ca.IssueClient(&key.PublicKey, cn, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		nc, err := nats.Connect(e.srv.ClientURL(), roots, nats.MaxReconnects(0), nats.Secure(&tls.Config{
			RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12,
			Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}},
		}))
		if err == nil {
			nc.Close()
		}
		return err
	}
	if err := connect("devcert"); err != nil {
		t.Errorf("certificate user refused: %v", err)
	}
	if err := connect("pwonly"); !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("certificate of a password-only user: err = %v, want %v", err, nats.ErrAuthorization)
	}
}

// TestCalloutRefusesUnexpressibleLoudly: a user whose permissions NATS
// cannot express exactly (a first level of #, which NATS's > would let
// reach $ topics) is refused, and the refusal is audited with the reason,
// as any other refused CONNECT; it never gets a wider or narrower JWT.
func TestCalloutRefusesUnexpressibleLoudly(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	e.start(t)
	e.addUser(t, "everything", "Everything-password-1", perm("#", acl.OpReadWrite))
	if _, _, err := e.connect(t, "everything", "Everything-password-1"); err == nil {
		t.Fatal("a user holding # connected through NATS")
	}
	poll.Until(t, 5*time.Second, "the refusal audited with its reason", func() bool {
		return strings.Contains(e.trail.String(), "permissions not expressible in NATS")
	})
	if strings.Contains(e.trail.String(), "Everything-password-1") {
		t.Error("the audit trail holds the password")
	}
}

// TestCalloutPasswordSessionExpiry: a client admitted by password holds a
// user JWT that expires after Options.Expiry (less up to a tenth, and the
// JWT counts whole seconds: up to one more), and a login token valid for
// longer does not extend it.
func TestCalloutPasswordSessionExpiry(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	e.opts.Expiry = 3 * time.Second
	e.start(t)
	u := e.addUser(t, "dev", "Dev-password-1", perm("telemetry", acl.OpWrite))
	tok, _, err := e.tokens.Issue(context.Background(), u, credential.KindLogin, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, pw := range []string{"Dev-password-1", tok} {
		closed := make(chan struct{})
		start := time.Now()
		nc, err := nats.Connect(e.srv.ClientURL(), nats.UserInfo("dev", pw), nats.NoReconnect(),
			nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		defer nc.Close()
		select {
		case <-closed:
			if d := time.Since(start); d < 1600*time.Millisecond {
				t.Errorf("session ended after %v, before its expiry (3 s less a tenth, less the JWT's second)", d)
			}
		case <-time.After(8 * time.Second):
			t.Fatal("connection outlived Options.Expiry")
		}
	}
}
