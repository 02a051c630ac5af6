package authhook_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/warden-mqtt/warden/audit"
	"github.com/warden-mqtt/warden/authhook"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/internal/logbuf"
	"github.com/warden-mqtt/warden/internal/poll"
	"github.com/warden-mqtt/warden/pki"
	"github.com/warden-mqtt/warden/store"
)

// Tests of the brute-force defence and of what a refused CONNECT tells
// (issue 14, items 5, 7 and 16). Clients come from several loopback
// addresses (Linux routes all of 127.0.0.0/8 to lo), as devices and
// attackers on other machines would.

// dialFrom opens a TCP connection to addr from the local address local.
func dialFrom(t testing.TB, addr, local string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, local, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// connectFrom sends CONNECT over plain TCP from local; the CONNACK code.
func connectFrom(t testing.TB, n *node, local string, o connectOpts) byte {
	t.Helper()
	o.clean = true
	if o.clientID == "" {
		o.clientID = fmt.Sprintf("c-%d", time.Now().UnixNano())
	}
	_, code := dialRaw(t, dialFrom(t, n.broker.Addr("tcp"), local), o)
	return code
}

// tlsConnectFrom sends CONNECT over TLS from local, presenting cert.
func tlsConnectFrom(t testing.TB, n *node, ca *pki.CA, cert *tls.Certificate, local string, o connectOpts) byte {
	t.Helper()
	cfg := &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"}
	if cert != nil {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	c := tls.Client(dialFrom(t, n.broker.Addr("tls"), local), cfg)
	if err := c.Handshake(); err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	o.clean = true
	if o.clientID == "" {
		o.clientID = fmt.Sprintf("c-%d", time.Now().UnixNano())
	}
	_, code := dialRaw(t, c, o)
	return code
}

// guarded is a node with a TLS listener (client certificates of ca) whose
// verifier and lockout the test holds, as cmd/warden shares them.
type guarded struct {
	*node
	ca    *pki.CA
	ver   *credential.Verifier
	lock  *credential.Lockout
	trail *logbuf.Buffer
}

func startGuarded(t testing.TB, lo credential.LockoutOptions, tweak func(*authhook.Options)) *guarded {
	t.Helper()
	ca := newTestCA(t, "warden test CA")
	srv, err := ca.IssueServer(nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ver, err := credential.NewVerifier(credential.VerifierOptions{Workers: 1, Params: fastParams})
	if err != nil {
		t.Fatal(err)
	}
	g := &guarded{ca: ca, ver: ver, lock: credential.NewLockout(lo), trail: &logbuf.Buffer{}}
	g.node = startNode(t, nodeOpts{
		tls: &tls.Config{Certificates: []tls.Certificate{srv}, ClientCAs: ca.Pool(), ClientAuth: tls.VerifyClientCertIfGiven},
		tweak: func(o *authhook.Options) {
			o.Verifier, o.Lockout, o.Audit = ver, g.lock, audit.New(g.trail)
			if tweak != nil {
				tweak(o)
			}
		},
	})
	return g
}

// reasons returns the audit reasons recorded for user, in order.
func (g *guarded) reasons(t testing.TB, user string) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(strings.NewReader(g.trail.String()))
	for sc.Scan() {
		var r map[string]any
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("audit record not JSON: %q", sc.Text())
		}
		if r["user"] == user {
			out = append(out, r["reason"].(string))
		}
	}
	return out
}

// TestLockoutSprayCannotKeepDeviceOut (item 5): an attacker guessing a
// device's password from another address blocks only its own attempts;
// the device's right password from its own address still connects. Once
// guesses from many addresses reach the username's total, password
// logins of that username are blocked everywhere (the stated limit), but
// the device's client certificate and login token still connect: password
// failures never block them.
func TestLockoutSprayCannotKeepDeviceOut(t *testing.T) {
	t.Parallel()
	g := startGuarded(t, credential.LockoutOptions{MaxPerUserIP: 3, MaxPerUser: 9, MaxPerIP: 100, Backoff: time.Minute}, nil)
	u := addUser(t, g.st, "press-7", "press-secret-7", nil, func(u *store.User) {
		u.GrantTypes = []store.GrantType{{Method: store.GrantPassword}, {Method: store.GrantCertificate}}
	})
	cert := issueClient(t, g.ca, "press-7")
	tok, _, err := g.tokens.Issue(context.Background(), u, credential.KindLogin, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	const device, attacker = "127.0.0.1", "127.0.0.2"

	// One attacker address: 10 guesses; the first 3 are verified, the
	// rest refused unverified, with the same answer.
	before := g.ver.Verifications()
	var codes []byte
	for i := range 10 {
		codes = append(codes, connectFrom(t, g.node, attacker, connectOpts{username: "press-7", password: fmt.Sprint("guess-", i)}))
	}
	if code := connectFrom(t, g.node, device, connectOpts{username: "press-7", password: "press-secret-7"}); code != 0 {
		t.Fatalf("device's right password from its own address while another address is blocked: CONNACK 0x%02x, want 0", code)
	}
	if n := g.ver.Verifications() - before; n != 4 {
		t.Errorf("%d verifications for 10 guesses and the device's login, want 4 (3 guesses, then blocked without hashing)", n)
	}
	if code := connectFrom(t, g.node, attacker, connectOpts{username: "press-7", password: "press-secret-7"}); code != 0x86 {
		t.Fatalf("right password from the blocked attacker address: CONNACK 0x%02x, want 0x86", code)
	}
	for i, code := range codes {
		if code != 0x86 {
			t.Fatalf("guess %d: CONNACK 0x%02x, want 0x86 (blocked or not, as a wrong password)", i, code)
		}
	}

	// Guesses from three more addresses reach the username's total of 9.
	for _, a := range []string{"127.0.0.3", "127.0.0.4", "127.0.0.5"} {
		for i := range 3 {
			connectFrom(t, g.node, a, connectOpts{username: "press-7", password: fmt.Sprint("guess-", a, i)})
		}
	}
	if code := connectFrom(t, g.node, device, connectOpts{username: "press-7", password: "press-secret-7"}); code != 0x86 {
		t.Fatalf("device's password once the username's total is reached: CONNACK 0x%02x, want 0x86 (blocked)", code)
	}
	if code := tlsConnectFrom(t, g.node, g.ca, &cert, device, connectOpts{}); code != 0 {
		t.Fatalf("device's client certificate while its password is blocked: CONNACK 0x%02x, want 0", code)
	}
	if code := tlsConnectFrom(t, g.node, g.ca, &cert, attacker, connectOpts{}); code != 0 {
		t.Fatalf("client certificate from the blocked address: CONNACK 0x%02x, want 0", code)
	}
	if code := connectFrom(t, g.node, attacker, connectOpts{username: "press-7", password: tok}); code != 0 {
		t.Fatalf("login token while the password is blocked: CONNACK 0x%02x, want 0", code)
	}
	// A certificate with a password that cannot be checked now: the
	// certificate authenticates, the password is not required.
	if code := tlsConnectFrom(t, g.node, g.ca, &cert, device, connectOpts{username: "press-7", password: "press-secret-7"}); code != 0 {
		t.Fatalf("client certificate with a blocked password: CONNACK 0x%02x, want 0", code)
	}
	if r := g.reasons(t, "press-7"); !slices.Contains(r, "locked") || !slices.Contains(r, "wrong password") {
		t.Errorf("audit reasons %q lack the lock and the wrong passwords", r)
	}
}

// TestLockoutAddressBlock: an address over its failure limit is told so
// (MQTT 5 0x9F "connection rate exceeded", MQTT 3.1.1 3 "server
// unavailable"), for every username, without hashing; other addresses
// are not affected, and a certificate or token from it still connects.
func TestLockoutAddressBlock(t *testing.T) {
	t.Parallel()
	g := startGuarded(t, credential.LockoutOptions{MaxPerUserIP: 100, MaxPerUser: 100, MaxPerIP: 5, Backoff: time.Minute}, nil)
	u := addUser(t, g.st, "cam-1", "cam-secret-1", nil, func(u *store.User) {
		u.GrantTypes = []store.GrantType{{Method: store.GrantPassword}, {Method: store.GrantCertificate}}
	})
	tok, _, err := g.tokens.Issue(context.Background(), u, credential.KindLogin, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	const attacker = "127.0.0.6"
	for i := range 5 {
		connectFrom(t, g.node, attacker, connectOpts{username: fmt.Sprint("user-", i), password: "guess-password"})
	}
	if code := connectFrom(t, g.node, attacker, connectOpts{username: "cam-1", password: tok}); code != 0 {
		t.Fatalf("login token from the blocked address: CONNACK 0x%02x, want 0", code)
	}
	cert := issueClient(t, g.ca, "cam-1")
	if code := tlsConnectFrom(t, g.node, g.ca, &cert, attacker, connectOpts{}); code != 0 {
		t.Fatalf("client certificate from the blocked address: CONNACK 0x%02x, want 0", code)
	}
	if code := connectFrom(t, g.node, "127.0.0.7", connectOpts{username: "cam-1", password: "cam-secret-1"}); code != 0 {
		t.Fatalf("another address: CONNACK 0x%02x, want 0", code)
	}
	before := g.ver.Verifications()
	if code := connectFrom(t, g.node, attacker, connectOpts{username: "cam-1", password: "cam-secret-1"}); code != 0x9F {
		t.Fatalf("v5 from the blocked address: CONNACK 0x%02x, want 0x9F", code)
	}
	if code := connectFrom(t, g.node, attacker, connectOpts{version: 4, username: "anyone", password: "x"}); code != 3 {
		t.Fatalf("v3.1.1 from the blocked address: CONNACK %d, want 3", code)
	}
	if g.ver.Verifications() != before {
		t.Error("a blocked address made the server hash")
	}
}

// connackBytes sends CONNECT and returns every byte the server sends until
// it closes the connection (a refused CONNECT: the CONNACK alone).
func connackBytes(t testing.TB, n *node, o connectOpts) []byte {
	t.Helper()
	c := dialFrom(t, n.broker.Addr("tcp"), "127.0.0.1")
	o.clientID, o.clean = "probe", true
	if _, err := c.Write(connectPacket(t, o)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("read: %v", err)
	}
	return b
}

// TestRefusalsLookAlike (item 7): an unknown user, a suspended user, a
// wrong password, a user without a password and a user who may not use
// a password get the very same CONNACK, byte for byte, in MQTT 5 and
// 3.1.1, and each costs one password verification on the pool, so none
// answers faster. The reason is in the audit trail.
func TestRefusalsLookAlike(t *testing.T) {
	t.Parallel()
	g := startGuarded(t, credential.LockoutOptions{MaxPerUserIP: -1, MaxPerUser: -1, MaxPerIP: -1}, nil)
	addUser(t, g.st, "alice", "alice-secret-1", nil, nil)
	addUser(t, g.st, "sus", "sus-secret-12", nil, func(u *store.User) { u.Suspended = true })
	addUser(t, g.st, "nopw", "", nil, nil)
	addUser(t, g.st, "certonly", "certonly-pass1", nil, func(u *store.User) {
		u.GrantTypes = []store.GrantType{{Method: store.GrantCertificate}}
	})
	cases := []struct{ name, user, password, reason string }{
		{"wrong password", "alice", "not-the-password", "wrong password"},
		{"unknown user", "mallory", "alice-secret-1", "unknown user"},
		{"suspended user, right password", "sus", "sus-secret-12", "suspended"},
		{"no password set", "nopw", "some-password-1", "no password set"},
		{"password grant not allowed", "certonly", "certonly-pass1", "password grant not allowed"},
	}
	for _, v := range versions {
		var want []byte
		for _, c := range cases {
			before := g.ver.Verifications()
			got := connackBytes(t, g.node, connectOpts{version: v, username: c.user, password: c.password})
			if len(got) < 4 || got[0] != 0x20 {
				t.Fatalf("%s %s: not a CONNACK: % x", vname(v), c.name, got)
			}
			if want == nil {
				want = got
				if code := map[byte]byte{4: 4, 5: 0x86}[v]; got[3] != code {
					t.Fatalf("%s %s: code 0x%02x, want 0x%02x", vname(v), c.name, got[3], code)
				}
			} else if !bytes.Equal(got, want) {
				t.Errorf("%s %s: CONNACK % x, want % x (as %s)", vname(v), c.name, got, want, cases[0].name)
			}
			if n := g.ver.Verifications() - before; n != 1 {
				t.Errorf("%s %s: %d password verifications, want 1 (as a wrong password)", vname(v), c.name, n)
			}
		}
	}
	for _, c := range cases {
		if r := g.reasons(t, c.user); len(r) != 2 || r[0] != c.reason {
			t.Errorf("%s: audit reasons %q, want %q twice", c.name, r, c.reason)
		}
	}
}

// TestUnknownUserTakesAsLongAsAWrongPassword (item 7, time): with
// warden's default argon2id parameters, refusing an unknown user takes
// about as long as refusing a wrong password (before the fix: 0.1 ms
// against 20-40 ms). The margin is wide on purpose: the median of either
// must be at least a quarter of the other's, which a skipped verification
// (a 100-fold gap) cannot meet and two equal ones always do.
func TestUnknownUserTakesAsLongAsAWrongPassword(t *testing.T) {
	if testing.Short() {
		t.Skip("hashes with the default argon2id parameters")
	}
	n := startNode(t, nodeOpts{tweak: func(o *authhook.Options) {
		o.MaxFailuresPerUser, o.MaxFailuresPerUserTotal, o.MaxFailuresPerIP = -1, -1, -1
	}})
	hash, err := credential.Hash("alice-secret-1", credential.DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	addUser(t, n.st, "alice", "", nil, func(u *store.User) { u.PasswordHash = hash })
	median := func(user string) time.Duration {
		var ds []time.Duration
		for i := range 3 {
			start := time.Now()
			if code := connectFrom(t, n, "127.0.0.1", connectOpts{username: user, password: fmt.Sprint("wrong-", i)}); code != 0x86 {
				t.Fatalf("%s: CONNACK 0x%02x", user, code)
			}
			ds = append(ds, time.Since(start))
		}
		slices.Sort(ds)
		return ds[1]
	}
	wrong, unknown := median("alice"), median("nobody-here")
	t.Logf("median refusal: wrong password %v, unknown user %v", wrong, unknown)
	if unknown < wrong/4 || wrong < unknown/4 {
		t.Fatalf("unknown user refused in %v, wrong password in %v: the time tells who exists", unknown, wrong)
	}
}

// mfaUser adds a user with an active MFA key (as after enrollment).
func mfaUser(t testing.TB, st store.Store, name, password string, edit func(*store.User)) store.User {
	t.Helper()
	return addUser(t, st, name, password, nil, func(u *store.User) {
		u.GrantTypes = []store.GrantType{{Method: store.GrantPassword}, {Method: store.GrantCertificate}}
		u.MFA = &store.MFAState{Keys: []store.MFAKey{{ID: "k1", Type: "totp", Status: store.MFAStatusActive, CreatedAt: time.Now()}}}
		if edit != nil {
			edit(u)
		}
	})
}

// TestMFAUserCannotConnectWithPasswordAlone (item 16): with MFA on, a
// user with an active MFA key is refused over MQTT when its password is
// its only credential (0x86 / 4, as a wrong password; audit "mfa
// required"); its login token, or its client certificate, connects. A
// user without MFA is not affected.
func TestMFAUserCannotConnectWithPasswordAlone(t *testing.T) {
	t.Parallel()
	g := startGuarded(t, credential.LockoutOptions{}, func(o *authhook.Options) { o.MFA = true })
	boss := mfaUser(t, g.st, "boss", "boss-secret-12", nil)
	addUser(t, g.st, "plain", "plain-secret-1", nil, nil)
	for _, v := range versions {
		want := map[byte]byte{4: 4, 5: 0x86}[v]
		if code := connectFrom(t, g.node, "127.0.0.1", connectOpts{version: v, username: "boss", password: "boss-secret-12"}); code != want {
			t.Fatalf("%s: MFA user with its password alone: CONNACK 0x%02x, want 0x%02x", vname(v), code, want)
		}
	}
	if r := g.reasons(t, "boss"); len(r) != 2 || r[0] != "mfa required" {
		t.Errorf("audit reasons %q, want \"mfa required\" twice", r)
	}
	tok, _, err := g.tokens.Issue(context.Background(), boss, credential.KindLogin, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if code := connectFrom(t, g.node, "127.0.0.1", connectOpts{username: "boss", password: tok}); code != 0 {
		t.Fatalf("MFA user with a login token: CONNACK 0x%02x, want 0", code)
	}
	cert := issueClient(t, g.ca, "boss")
	if code := tlsConnectFrom(t, g.node, g.ca, &cert, "127.0.0.1", connectOpts{}); code != 0 {
		t.Fatalf("MFA user with its client certificate: CONNACK 0x%02x, want 0", code)
	}
	if code := tlsConnectFrom(t, g.node, g.ca, &cert, "127.0.0.1", connectOpts{username: "boss", password: "boss-secret-12"}); code != 0 {
		t.Fatalf("MFA user with certificate and password: CONNACK 0x%02x, want 0", code)
	}
	if code := connectFrom(t, g.node, "127.0.0.1", connectOpts{username: "plain", password: "plain-secret-1"}); code != 0 {
		t.Fatalf("user without MFA: CONNACK 0x%02x, want 0", code)
	}
}

// TestMFAPasswordOverMQTTWhenAllowed: --mfa-mqtt-password (and MFA
// switched off) restore password-only CONNECTs of MFA users; the stored
// MFA lock (too many wrong codes) refuses the password even then, but
// not the user's token.
func TestMFAPasswordOverMQTTWhenAllowed(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name  string
		tweak func(*authhook.Options)
	}{
		{"mfa-mqtt-password", func(o *authhook.Options) { o.MFA, o.MFAAllowPassword = true, true }},
		{"MFA off", func(o *authhook.Options) { o.MFA = false }},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := startGuarded(t, credential.LockoutOptions{}, c.tweak)
			mfaUser(t, g.st, "boss", "boss-secret-12", nil)
			if code := connectFrom(t, g.node, "127.0.0.1", connectOpts{username: "boss", password: "boss-secret-12"}); code != 0 {
				t.Fatalf("MFA user with its password: CONNACK 0x%02x, want 0", code)
			}
		})
	}
	t.Run("stored MFA lock", func(t *testing.T) {
		g := startGuarded(t, credential.LockoutOptions{}, func(o *authhook.Options) { o.MFA, o.MFAAllowPassword = true, true })
		boss := mfaUser(t, g.st, "boss", "boss-secret-12", func(u *store.User) { u.MFA.LockedUntil = time.Now().Add(time.Hour) })
		if code := connectFrom(t, g.node, "127.0.0.1", connectOpts{username: "boss", password: "boss-secret-12"}); code != 0x86 {
			t.Fatalf("MFA-locked user with its password: CONNACK 0x%02x, want 0x86", code)
		}
		if r := g.reasons(t, "boss"); len(r) != 1 || r[0] != "mfa locked" {
			t.Errorf("audit reasons %q, want \"mfa locked\"", r)
		}
		tok, _, err := g.tokens.Issue(context.Background(), boss, credential.KindLogin, "", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if code := connectFrom(t, g.node, "127.0.0.1", connectOpts{username: "boss", password: tok}); code != 0 {
			t.Fatalf("MFA-locked user with a token: CONNACK 0x%02x, want 0", code)
		}
	})
}

// TestConnectBusyWhenPoolSaturated: while every verification worker is
// busy, an uncached CONNECT waits VerifyWait and is then refused as
// "server busy" (0x89 / 3), without counting as a failure; a CONNECT
// served from the caches does not wait at all.
func TestConnectBusyWhenPoolSaturated(t *testing.T) {
	t.Parallel()
	g := startGuarded(t, credential.LockoutOptions{MaxPerUserIP: 1}, func(o *authhook.Options) { o.VerifyWait = 100 * time.Millisecond })
	slow, err := credential.Hash("slow-password-1", credential.Params{Memory: 64 << 10, Time: 8, Threads: 1, SaltLen: 16, KeyLen: 32})
	if err != nil {
		t.Fatal(err)
	}
	addUser(t, g.st, "slow", "", nil, func(u *store.User) { u.PasswordHash = slow })
	addUser(t, g.st, "cam-2", "cam-secret-2", nil, nil)
	if code := connectFrom(t, g.node, "127.0.0.1", connectOpts{username: "cam-2", password: "cam-secret-2"}); code != 0 {
		t.Fatalf("warm-up: CONNACK 0x%02x", code)
	}
	before := g.ver.Verifications()
	done := make(chan byte, 1)
	go func() { done <- connectFrom(t, g.node, "127.0.0.8", connectOpts{username: "slow", password: "not-it"}) }()
	poll.Until(t, 10*time.Second, "the slow verification started", func() bool { return g.ver.Verifications() > before })
	for _, v := range versions {
		want := map[byte]byte{4: 3, 5: 0x89}[v]
		if code := connectFrom(t, g.node, "127.0.0.1", connectOpts{version: v, username: "cam-2", password: "wrong-password"}); code != want {
			t.Fatalf("%s: uncached CONNECT while the pool is saturated: CONNACK 0x%02x, want 0x%02x", vname(v), code, want)
		}
	}
	if code := connectFrom(t, g.node, "127.0.0.1", connectOpts{username: "cam-2", password: "cam-secret-2"}); code != 0 {
		t.Fatalf("cached CONNECT while the pool is saturated: CONNACK 0x%02x, want 0 (no wait, and the busy answers counted nothing)", code)
	}
	if code := <-done; code != 0x86 {
		t.Fatalf("slow wrong password: CONNACK 0x%02x, want 0x86", code)
	}
}

// TestLockoutOneSpellingPerName (item 15 with item 5): a username typed
// decomposed (NFD) is the stored NFC user, so its failures count towards
// the same lockout: an attacker cannot double its guesses by alternating
// spellings, and the device's NFD spelling still logs in.
func TestLockoutOneSpellingPerName(t *testing.T) {
	t.Parallel()
	g := startGuarded(t, credential.LockoutOptions{MaxPerUserIP: 3, MaxPerUser: 100, MaxPerIP: 100, Backoff: time.Minute}, nil)
	const nfc, nfd = "jos\u00e9-press", "jose\u0301-press"
	addUser(t, g.st, nfc, "press-secret-9", nil, nil)
	const device, attacker = "127.0.0.1", "127.0.0.2"
	if code := connectFrom(t, g.node, device, connectOpts{username: nfd, password: "press-secret-9"}); code != 0 {
		t.Fatalf("decomposed spelling with the right password: CONNACK 0x%02x, want 0", code)
	}
	for i, name := range []string{nfc, nfd, nfd} {
		connectFrom(t, g.node, attacker, connectOpts{username: name, password: fmt.Sprint("guess-", i)})
	}
	if code := connectFrom(t, g.node, attacker, connectOpts{username: nfc, password: "press-secret-9"}); code != 0x86 {
		t.Fatalf("right password after 3 failures under two spellings: CONNACK 0x%02x, want 0x86 (blocked: one name, one count)", code)
	}
}
