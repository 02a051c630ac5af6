package authhook_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/internal/poll"
	"github.com/warden-mqtt/warden/pki"
	"github.com/warden-mqtt/warden/store"
)

// newTestCA creates an internal CA for one test.
func newTestCA(t testing.TB, name string) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA(name, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// startTLSNode starts a node whose TLS listener presents a server
// certificate of ca and verifies client certificates against ca when a
// client sends one (VerifyClientCertIfGiven, as warden serves it).
func startTLSNode(t testing.TB) (*node, *pki.CA) {
	t.Helper()
	ca := newTestCA(t, "warden test CA")
	srv, err := ca.IssueServer(nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	n := startNode(t, nodeOpts{tls: &tls.Config{
		Certificates: []tls.Certificate{srv},
		ClientCAs:    ca.Pool(),
		ClientAuth:   tls.VerifyClientCertIfGiven,
	}})
	return n, ca
}

// issueClient issues a client certificate with common name cn and a fresh
// ECDSA P-256 key, as a device would hold it.
func issueClient(t testing.TB, ca *pki.CA, cn string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert, _, err := ca.IssueClient(&key.PublicKey, cn, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
}

// dialTLS opens a TLS connection to the node's TLS listener, trusting
// roots for the server certificate and presenting cert when not nil. The
// certificate is always sent when the server asks for one, whichever CAs
// the server names as acceptable (Go's client would otherwise silently
// withhold a certificate of another CA; a device does not). The handshake
// error, if any, is returned, not fatal.
func dialTLS(t testing.TB, n *node, roots *pki.CA, cert *tls.Certificate) (*tls.Conn, error) {
	t.Helper()
	cfg := &tls.Config{RootCAs: roots.Pool(), ServerName: "localhost"}
	if cert != nil {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", n.broker.Addr("tls"), cfg)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, nil
}

// tlsConnect dials the TLS listener (fatal on a handshake error) and sends
// CONNECT; it returns the CONNACK reason code.
func tlsConnect(t testing.TB, n *node, ca *pki.CA, cert *tls.Certificate, o connectOpts) (*rawClient, byte) {
	t.Helper()
	c, err := dialTLS(t, n, ca, cert)
	if err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	return dialRaw(t, c, o)
}

// tryConnect sends CONNECT on conn and returns the CONNACK code, or the
// error that ended the connection first (a TLS alert, EOF). Unlike dialRaw
// it does not fail the test, for connections expected to be cut.
func tryConnect(t testing.TB, conn net.Conn, o connectOpts) (byte, error) {
	t.Helper()
	if o.version == 0 {
		o.version = 5
	}
	o.clean = true
	_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write(connectPacket(t, o)); err != nil {
		return 0, err
	}
	rc := &rawClient{t: t, c: conn, r: bufio.NewReader(conn), ver: o.version, next: 1}
	ack, err := rc.read(5 * time.Second)
	if err != nil {
		return 0, err
	}
	if ack.FixedHeader.Type != packets.Connack {
		return 0, fmt.Errorf("got packet type %d, want CONNACK", ack.FixedHeader.Type)
	}
	return ack.ReasonCode, nil
}

// certUser creates a user that authenticates with a client certificate
// only, holding perms; edit adjusts it before it is stored.
func certUser(t testing.TB, st store.Store, name string, perms []acl.Permission, edit func(*store.User)) store.User {
	t.Helper()
	return addUser(t, st, name, "", perms, func(u *store.User) {
		u.GrantTypes = []store.GrantType{{Method: store.GrantCertificate}}
		if edit != nil {
			edit(u)
		}
	})
}

// TestTLSCertificateLogin: a device with a certificate and no credentials
// in CONNECT is the user named by the certificate's CN, and its
// permissions' {username} placeholder binds to that CN.
func TestTLSCertificateLogin(t *testing.T) {
	t.Parallel()
	n, ca := startTLSNode(t)
	certUser(t, n.st, "dev1", []acl.Permission{perm("dev/{username}/#", acl.OpReadWrite)}, nil)
	cert := issueClient(t, ca, "dev1")
	for _, v := range versions {
		t.Run(vname(v), func(t *testing.T) {
			deny := map[byte]byte{4: 0x80, 5: 0x87}[v]
			rc, code := tlsConnect(t, n, ca, &cert, connectOpts{version: v, clientID: "dev1-" + vname(v), clean: true})
			if code != 0 {
				t.Fatalf("certificate without username/password: CONNACK 0x%02x, want 0", code)
			}
			codes := rc.subscribe("dev/dev1/#", "dev/dev2/#", "dev//#")
			if codes[0] > 2 {
				t.Fatalf("subscribe dev/dev1/# (own CN): SUBACK 0x%02x, want granted", codes[0])
			}
			if codes[1] != deny || codes[2] != deny {
				t.Fatalf("subscribe another user's tree / empty username: SUBACK 0x%02x 0x%02x, want 0x%02x", codes[1], codes[2], deny)
			}
			rc.publish("dev/dev1/temp", 1, "21.5", 0)
			got := rc.expect(packets.Publish, 3*time.Second)
			if got.TopicName != "dev/dev1/temp" || string(got.Payload) != "21.5" {
				t.Fatalf("delivered %q %q, want dev/dev1/temp 21.5", got.TopicName, got.Payload)
			}
			// Writing outside dev/dev1/ is dropped.
			rc.publish("dev/dev2/temp", 0, "spoof", 0)
			rc.noPublish(200 * time.Millisecond)
		})
	}
	// The certificate together with its own username (no password) works too.
	if _, code := tlsConnect(t, n, ca, &cert, connectOpts{username: "dev1", clientID: "dev1-named", clean: true}); code != 0 {
		t.Fatalf("certificate with matching username: CONNACK 0x%02x, want 0", code)
	}
}

// TestTLSCertificateOtherUsername: a certificate authenticates only the
// user named by its CN, never the username sent in CONNECT.
func TestTLSCertificateOtherUsername(t *testing.T) {
	t.Parallel()
	n, ca := startTLSNode(t)
	certUser(t, n.st, "dev1", []acl.Permission{perm("#", acl.OpReadWrite)}, nil)
	certUser(t, n.st, "dev2", []acl.Permission{perm("#", acl.OpReadWrite)}, nil)
	cert := issueClient(t, ca, "dev1")
	for _, v := range versions {
		bad := map[byte]byte{4: 4, 5: 0x86}[v]
		if _, code := tlsConnect(t, n, ca, &cert, connectOpts{version: v, username: "dev2", clientID: "spoof-" + vname(v), clean: true}); code != bad {
			t.Fatalf("%s: cert CN=dev1 with username dev2: CONNACK 0x%02x, want 0x%02x", vname(v), code, bad)
		}
	}
}

// TestTLSCertificatePinning: with fingerprints registered, only those
// certificates are accepted, even if another one has the same CN and CA.
func TestTLSCertificatePinning(t *testing.T) {
	t.Parallel()
	n, ca := startTLSNode(t)
	certA := issueClient(t, ca, "pinned")
	certB := issueClient(t, ca, "pinned")
	certUser(t, n.st, "pinned", []acl.Permission{perm("pinned/#", acl.OpReadWrite)}, func(u *store.User) {
		u.Certificates = []store.Certificate{{Fingerprint: pki.Fingerprint(certA.Leaf.Raw), CreatedAt: time.Now()}}
	})
	if _, code := tlsConnect(t, n, ca, &certA, connectOpts{clientID: "pa", clean: true}); code != 0 {
		t.Fatalf("pinned certificate A: CONNACK 0x%02x, want 0", code)
	}
	if _, code := tlsConnect(t, n, ca, &certB, connectOpts{clientID: "pb", clean: true}); code != 0x86 && code != 0x87 {
		t.Fatalf("unpinned certificate B (same CN, same CA): CONNACK 0x%02x, want 0x86 or 0x87", code)
	}
	// An expired registration no longer admits certificate A.
	u, err := n.st.UserByUsername(context.Background(), "pinned")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.st.UpdateUser(context.Background(), u.ID, func(u *store.User) error {
		u.Certificates[0].ExpiresAt = time.Now().Add(-time.Minute)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 2*time.Second, "certificate with an expired registration refused", func() bool {
		_, code := tlsConnect(t, n, ca, &certA, connectOpts{clientID: "pa2", clean: true})
		return code != 0
	})
}

// TestTLSPasswordAndCertificateRequired: both methods required means both
// must succeed on every connect.
func TestTLSPasswordAndCertificateRequired(t *testing.T) {
	t.Parallel()
	n, ca := startTLSNode(t)
	addUser(t, n.st, "both", "both-secret-12", []acl.Permission{perm("both/#", acl.OpReadWrite)}, func(u *store.User) {
		u.GrantTypes = []store.GrantType{{Method: store.GrantPassword, IsRequired: true}, {Method: store.GrantCertificate, IsRequired: true}}
	})
	cert := issueClient(t, ca, "both")
	rc, code := tlsConnect(t, n, ca, &cert, connectOpts{username: "both", password: "both-secret-12", clientID: "b1", clean: true})
	if code != 0 {
		t.Fatalf("certificate + right password: CONNACK 0x%02x, want 0", code)
	}
	if err := rc.ping(); err != nil {
		t.Fatalf("accepted client not usable: %v", err)
	}
	if _, code := tlsConnect(t, n, ca, &cert, connectOpts{clientID: "b2", clean: true}); code != 0x86 {
		t.Fatalf("certificate only, password required: CONNACK 0x%02x, want 0x86", code)
	}
	if _, code := tlsConnect(t, n, ca, &cert, connectOpts{username: "both", password: "wrong-password", clientID: "b3", clean: true}); code != 0x86 {
		t.Fatalf("certificate + wrong password: CONNACK 0x%02x, want 0x86", code)
	}
	if _, code := tlsConnect(t, n, ca, nil, connectOpts{username: "both", password: "both-secret-12", clientID: "b4", clean: true}); code != 0x87 {
		t.Fatalf("password only over TLS, certificate required: CONNACK 0x%02x, want 0x87", code)
	}
	// The refusals above did not lock the user out: both methods still work.
	if _, code := tlsConnect(t, n, ca, &cert, connectOpts{username: "both", password: "both-secret-12", clientID: "b5", clean: true}); code != 0 {
		t.Fatalf("certificate + right password after refusals: CONNACK 0x%02x, want 0", code)
	}
}

// TestTLSUntrustedCA: a certificate from a CA the listener does not trust
// never gives access, with or without the CN's username in CONNECT.
func TestTLSUntrustedCA(t *testing.T) {
	t.Parallel()
	n, ca := startTLSNode(t)
	certUser(t, n.st, "dev1", []acl.Permission{perm("#", acl.OpReadWrite)}, nil)
	rogue := newTestCA(t, "rogue CA")
	cert := issueClient(t, rogue, "dev1")
	for _, o := range []connectOpts{
		{clientID: "rogue1"},
		{clientID: "rogue2", username: "dev1"},
		{clientID: "rogue3", version: 4},
	} {
		conn, err := dialTLS(t, n, ca, &cert)
		if err != nil {
			t.Logf("%+v: handshake refused at dial: %v", o, err)
			continue
		}
		code, err := tryConnect(t, conn, o)
		switch {
		case err != nil:
			t.Logf("%+v: connection cut: %v", o, err)
		case code == 0:
			t.Fatalf("%+v: certificate from an untrusted CA accepted", o)
		default:
			t.Logf("%+v: CONNACK 0x%02x", o, code)
		}
	}
	// The trusted certificate for the same CN still works (the refusals
	// are about the CA, not the user).
	good := issueClient(t, ca, "dev1")
	if _, code := tlsConnect(t, n, ca, &good, connectOpts{clientID: "good", clean: true}); code != 0 {
		t.Fatalf("trusted certificate: CONNACK 0x%02x, want 0", code)
	}
}

// TestTLSCertificateRemovedDisconnects: unpinning the certificate a client
// is connected with disconnects it, and it cannot come back.
func TestTLSCertificateRemovedDisconnects(t *testing.T) {
	t.Parallel()
	n, ca := startTLSNode(t)
	cert := issueClient(t, ca, "dev3")
	other := issueClient(t, ca, "dev3")
	u := certUser(t, n.st, "dev3", []acl.Permission{perm("dev3/#", acl.OpReadWrite)}, func(u *store.User) {
		u.Certificates = []store.Certificate{{Fingerprint: pki.Fingerprint(cert.Leaf.Raw), CreatedAt: time.Now()}}
	})
	addUser(t, n.st, "bystander", "bystander-pw1", []acl.Permission{perm("b/#", acl.OpReadWrite)}, nil)
	rc, code := tlsConnect(t, n, ca, &cert, connectOpts{clientID: "dev3", clean: true})
	if code != 0 {
		t.Fatalf("pinned certificate: CONNACK 0x%02x, want 0", code)
	}
	by := n.mustConnect(t, connectOpts{username: "bystander", password: "bystander-pw1", clientID: "by", clean: true})
	if err := rc.ping(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := n.st.UpdateUser(context.Background(), u.ID, func(u *store.User) error {
		u.Certificates = []store.Certificate{{Fingerprint: pki.Fingerprint(other.Leaf.Raw), CreatedAt: time.Now()}}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !rc.closed(2 * time.Second) {
		t.Fatal("client stays connected 2 s after its certificate was unpinned")
	}
	t.Logf("disconnected %v after the fingerprint was replaced", time.Since(start))
	if err := by.ping(); err != nil {
		t.Fatalf("another user's client was disconnected too: %v", err)
	}
	if _, code := tlsConnect(t, n, ca, &cert, connectOpts{clientID: "dev3-again", clean: true}); code == 0 {
		t.Fatal("unpinned certificate accepted on reconnect")
	}
	if _, code := tlsConnect(t, n, ca, &other, connectOpts{clientID: "dev3-new", clean: true}); code != 0 {
		t.Fatalf("newly pinned certificate: CONNACK 0x%02x, want 0", code)
	}
}

// TestTLSCertificateWithoutGrant: a valid certificate does not
// authenticate a user without the certificate grant type.
func TestTLSCertificateWithoutGrant(t *testing.T) {
	t.Parallel()
	n, ca := startTLSNode(t)
	addUser(t, n.st, "pwonly", "pwonly-secret1", []acl.Permission{perm("#", acl.OpReadWrite)}, nil)
	cert := issueClient(t, ca, "pwonly")
	for _, v := range versions {
		bad := map[byte]byte{4: 4, 5: 0x86}[v]
		if _, code := tlsConnect(t, n, ca, &cert, connectOpts{version: v, clientID: "nogrant-" + vname(v), clean: true}); code != bad {
			t.Fatalf("%s: certificate for a password-only user: CONNACK 0x%02x, want 0x%02x", vname(v), code, bad)
		}
		if _, code := tlsConnect(t, n, ca, &cert, connectOpts{version: v, username: "pwonly", clientID: "nogrant2-" + vname(v), clean: true}); code != bad {
			t.Fatalf("%s: certificate + username for a password-only user: CONNACK 0x%02x, want 0x%02x", vname(v), code, bad)
		}
	}
	// Its password still works over TLS, certificate or not.
	if _, code := tlsConnect(t, n, ca, &cert, connectOpts{username: "pwonly", password: "pwonly-secret1", clientID: "pw", clean: true}); code != 0 {
		t.Fatalf("password over TLS: CONNACK 0x%02x, want 0", code)
	}
}
