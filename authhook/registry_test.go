package authhook_test

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/authhook"
	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/registry"
	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

// newRegistry builds a client registry on st (fast hashing, the test CA).
func newRegistry(t *testing.T, st store.Store, autoGrant ...string) *registry.Registry {
	t.Helper()
	r, err := registry.New(registry.Options{Store: st, Params: fastParams, AutoGrantRoles: autoGrant})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// sharedRole creates a shared role holding perms and returns its ID.
func sharedRole(t *testing.T, st store.Store, name string, perms ...acl.Permission) string {
	t.Helper()
	r, err := st.CreateRole(context.Background(), store.Role{Name: name, IsShared: true, Permissions: perms})
	if err != nil {
		t.Fatal(err)
	}
	return r.ID
}

// TestImplicitRegistrationPassword: Connectware's implicit flow with a
// real MQTT client. While locked, a CONNECT of an unknown user is an
// ordinary failure and nothing is recorded; while open it is refused but
// recorded (hashed); the device's retries while it waits are not counted
// as brute force; after an admin confirms, the same credentials connect
// and get exactly the confirmed permissions.
func TestImplicitRegistrationPassword(t *testing.T) {
	t.Parallel()
	st := storetest.OpenBolt(t)
	reg := newRegistry(t, st)
	n := startNode(t, nodeOpts{store: st, tweak: func(o *authhook.Options) { o.Registry = reg }})
	ctx := context.Background()
	const user, pw = "sensor-0042", "sensor-secret-42"

	_, ack, _, err := pahoConnect(t, n, "s42", user, pw)
	if err == nil || ack == nil || ack.ReasonCode != 0x86 {
		t.Fatalf("locked registry: connect of an unknown user = %v %+v, want CONNACK 0x86", err, ack)
	}
	if reqs, _ := st.RegistryRequests(ctx); len(reqs) != 0 {
		t.Fatalf("locked registry recorded %d requests", len(reqs))
	}

	if _, err := reg.Open(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	// More attempts than the per-user failure limit (10): a device
	// waiting for its admin must not lock itself out.
	for i := range 12 {
		_, ack, _, err := pahoConnect(t, n, "s42", user, pw)
		if err == nil || ack == nil || ack.ReasonCode != 0x87 {
			t.Fatalf("attempt %d while pending: %v %+v, want CONNACK 0x87", i, err, ack)
		}
	}
	q, err := st.RegistryRequest(ctx, user)
	if err != nil {
		t.Fatalf("the attempt was not recorded: %v", err)
	}
	if q.Flow != registry.FlowImplicit || q.CredentialType != registry.CredentialPassword || q.PasswordHash == "" {
		t.Fatalf("recorded request: %+v", q)
	}
	if ok, _ := credential.Verify(pw, q.PasswordHash); !ok {
		t.Fatal("the recorded hash does not verify the device's password")
	}

	writers := sharedRole(t, st, "sensor-writers", perm("sensors/{username}/#", acl.OpWrite))
	if _, err := reg.Confirm(ctx, user, registry.Grant{Roles: []string{writers}}); err != nil {
		t.Fatal(err)
	}
	rc := n.mustConnect(t, connectOpts{clientID: "s42", username: user, password: pw})
	id := rc.publish("sensors/"+user+"/temp", 1, "21", 0)
	if ack := rc.expect(packets.Puback, 5*time.Second); ack.PacketID != id || ack.ReasonCode != 0 {
		t.Fatalf("allowed publish: PUBACK 0x%02x", ack.ReasonCode)
	}
	rc.publish("sensors/other/temp", 1, "21", 0)
	if ack := rc.expect(packets.Puback, 5*time.Second); ack.ReasonCode != 0x87 {
		t.Fatalf("publish outside the confirmed permissions: PUBACK 0x%02x, want 0x87", ack.ReasonCode)
	}
	// Another password for the now-existing user is just wrong.
	if _, code := n.connect(t, connectOpts{clientID: "s42b", username: user, password: "not-the-password"}); code != 0x86 {
		t.Fatalf("wrong password after confirmation: CONNACK 0x%02x", code)
	}
}

// TestImplicitRegistrationCertificate: a device with a client certificate
// from a trusted CA but no user is recorded by the certificate's
// fingerprint; once confirmed it connects with that certificate, and
// another certificate with the same name is refused (pinned).
func TestImplicitRegistrationCertificate(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "warden test CA")
	srv, err := ca.IssueServer(nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	st := storetest.OpenBolt(t)
	reg := newRegistry(t, st)
	n := startNode(t, nodeOpts{store: st, tweak: func(o *authhook.Options) { o.Registry = reg },
		tls: &tls.Config{Certificates: []tls.Certificate{srv}, ClientCAs: ca.Pool(), ClientAuth: tls.VerifyClientCertIfGiven}})
	ctx := context.Background()
	cert := issueClient(t, ca, "camera-7")

	if _, err := reg.Open(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, code := tlsConnect(t, n, ca, &cert, connectOpts{clientID: "cam7"}); code != 0x87 {
		t.Fatalf("unknown certificate user while open: CONNACK 0x%02x, want 0x87", code)
	}
	q, err := st.RegistryRequest(ctx, "camera-7")
	if err != nil || q.CredentialType != registry.CredentialCertificate || q.Fingerprint == "" || q.PasswordHash != "" {
		t.Fatalf("recorded request %+v, %v", q, err)
	}
	if _, err := reg.Confirm(ctx, "camera-7", registry.Grant{Permissions: []acl.Permission{perm("cams/#", acl.OpWrite)}}); err != nil {
		t.Fatal(err)
	}
	if _, code := tlsConnect(t, n, ca, &cert, connectOpts{clientID: "cam7"}); code != 0 {
		t.Fatalf("confirmed certificate: CONNACK 0x%02x, want 0", code)
	}
	other := issueClient(t, ca, "camera-7")
	if _, code := tlsConnect(t, n, ca, &other, connectOpts{clientID: "cam7b"}); code == 0 {
		t.Fatal("another certificate with the confirmed name was accepted")
	}
}

// TestImplicitRegistrationAutoGrant: with auto-grant configured, the first
// CONNECT while open creates the user with the configured role and is
// accepted; while locked nothing happens.
func TestImplicitRegistrationAutoGrant(t *testing.T) {
	t.Parallel()
	st := storetest.OpenBolt(t)
	sharedRole(t, st, "line-a", perm("line-a/{username}/#", acl.OpReadWrite))
	reg := newRegistry(t, st, "line-a")
	n := startNode(t, nodeOpts{store: st, tweak: func(o *authhook.Options) { o.Registry = reg }})
	ctx := context.Background()
	if _, code := n.connect(t, connectOpts{clientID: "d1", username: "press-01", password: "press-secret-01"}); code != 0x86 {
		t.Fatalf("locked: CONNACK 0x%02x, want 0x86", code)
	}
	if _, err := reg.Open(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	rc := n.mustConnect(t, connectOpts{clientID: "d1", username: "press-01", password: "press-secret-01"})
	if codes := rc.subscribe("line-a/press-01/#", "line-a/press-02/#"); codes[0] > 2 || codes[1] != 0x87 {
		t.Fatalf("auto-granted permissions: SUBACK %v", codes)
	}
	u, err := st.UserByUsername(ctx, "press-01")
	if err != nil || len(u.Roles) != 2 {
		t.Fatalf("auto-granted user %+v, %v", u, err)
	}
}
