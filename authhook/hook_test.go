package authhook_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/authhook"
	"github.com/warden-mqtt/warden/internal/poll"
	"github.com/warden-mqtt/warden/store"
)

var versions = []byte{4, 5}

func vname(v byte) string { return map[byte]string{4: "v3.1.1", 5: "v5"}[v] }

func TestConnectRefusals(t *testing.T) {
	t.Parallel()
	n := startNode(t, nodeOpts{})
	addUser(t, n.st, "alice", "alice-secret-1", nil, nil)
	addUser(t, n.st, "sus", "sus-secret-12", nil, func(u *store.User) { u.Suspended = true })
	addUser(t, n.st, "certonly", "certonly-pass1", nil, func(u *store.User) {
		u.GrantTypes = []store.GrantType{{Method: store.GrantCertificate}}
	})
	for _, v := range versions {
		bad := byte(0x86)
		if v == 4 {
			bad = 4
		}
		for _, c := range []struct {
			name string
			o    connectOpts
			want byte
		}{
			{"right password", connectOpts{username: "alice", password: "alice-secret-1"}, 0},
			{"wrong password", connectOpts{username: "alice", password: "nope"}, bad},
			{"unknown user", connectOpts{username: "mallory", password: "whatever"}, bad},
			{"anonymous", connectOpts{}, bad},
			{"username without password", connectOpts{username: "alice"}, bad},
			// As an unknown user: the answer does not tell who exists.
			{"suspended", connectOpts{username: "sus", password: "sus-secret-12"}, bad},
			{"password grant missing", connectOpts{username: "certonly", password: "certonly-pass1"}, bad},
		} {
			t.Run(vname(v)+"/"+c.name, func(t *testing.T) {
				c.o.version, c.o.clientID, c.o.clean = v, fmt.Sprintf("c-%d-%d", v, time.Now().UnixNano()), true
				_, code := n.connect(t, c.o)
				if code != c.want {
					t.Fatalf("CONNACK 0x%02x, want 0x%02x", code, c.want)
				}
			})
		}
	}
}

// TestPublishMatrix: a denied publish never reaches a subscriber, for every
// version × QoS, and the publisher sees the documented ack.
func TestPublishMatrix(t *testing.T) {
	t.Parallel()
	n := startNode(t, nodeOpts{})
	addUser(t, n.st, "pub", "pub-secret-123", []acl.Permission{perm("ok/#", acl.OpWrite)}, nil)
	addUser(t, n.st, "sub", "sub-secret-123", []acl.Permission{perm("#", acl.OpRead)}, nil)
	sub := n.mustConnect(t, connectOpts{username: "sub", password: "sub-secret-123", clientID: "sub", clean: true})
	if codes := sub.subscribe("#"); codes[0] > 2 {
		t.Fatalf("subscribe #: 0x%02x", codes[0])
	}
	for _, v := range versions {
		for qos := byte(0); qos <= 2; qos++ {
			t.Run(fmt.Sprintf("%s/qos%d", vname(v), qos), func(t *testing.T) {
				pub := n.mustConnect(t, connectOpts{version: v, username: "pub", password: "pub-secret-123", clientID: fmt.Sprintf("pub-%d-%d", v, qos), clean: true})
				// Denied.
				pub.publish("denied/x", qos, "secret", 0)
				switch {
				case qos == 1:
					ack := pub.expect(packets.Puback, 3*time.Second)
					if want := map[byte]byte{4: 0, 5: 0x87}[v]; ack.ReasonCode != want {
						t.Fatalf("PUBACK 0x%02x, want 0x%02x", ack.ReasonCode, want)
					}
				case qos == 2:
					ack := pub.expect(packets.Pubrec, 3*time.Second)
					if want := map[byte]byte{4: 0, 5: 0x87}[v]; ack.ReasonCode != want {
						t.Fatalf("PUBREC 0x%02x, want 0x%02x", ack.ReasonCode, want)
					}
				}
				sub.noPublish(200 * time.Millisecond)
				if err := pub.ping(); err != nil {
					t.Fatalf("publisher disconnected after a denied publish: %v", err)
				}
				// Allowed.
				pub.publish("ok/x", qos, "hello", 0)
				got := sub.expect(packets.Publish, 3*time.Second)
				if got.TopicName != "ok/x" || string(got.Payload) != "hello" {
					t.Fatalf("delivered %q %q", got.TopicName, got.Payload)
				}
			})
		}
	}
}

func TestSubscribeCoverage(t *testing.T) {
	t.Parallel()
	n := startNode(t, nodeOpts{})
	addUser(t, n.st, "dev", "dev-secret-123", []acl.Permission{
		perm("plant/{username}/#", acl.OpRead),
		perm("cmd/+/status", acl.OpReadWrite),
		perm("$SYS/broker/uptime", acl.OpRead),
	}, nil)
	for _, v := range versions {
		deny := map[byte]byte{4: 0x80, 5: 0x87}[v]
		rc := n.mustConnect(t, connectOpts{version: v, username: "dev", password: "dev-secret-123", clientID: "dev-" + vname(v), clean: true})
		for _, c := range []struct {
			filter string
			ok     bool
		}{
			{"plant/dev/#", true},
			{"plant/dev/a/+", true},
			{"plant/dev", true},
			{"plant/other/#", false},
			{"plant/+/x", false},
			{"cmd/7/status", true},
			{"cmd/+/status", true},
			{"cmd/#", false},
			{"#", false},
			{"$SYS/#", false},
			{"$SYS/broker/uptime", true},
			{"$share/g/plant/dev/#", true},
			{"$share/g/plant/#", false},
		} {
			code := rc.subscribe(c.filter)[0]
			if (code <= 2) != c.ok || (!c.ok && code != deny) {
				t.Errorf("%s subscribe %q: SUBACK 0x%02x, want allowed=%v (deny 0x%02x)", vname(v), c.filter, code, c.ok, deny)
			}
		}
	}
}

// TestPlaceholderCannotWiden: a username made of wildcards gets nothing
// beyond its literal level.
func TestPlaceholderCannotWiden(t *testing.T) {
	t.Parallel()
	n := startNode(t, nodeOpts{})
	addUser(t, n.st, "a+b", "wild-secret-12", []acl.Permission{perm("home/{username}/#", acl.OpReadWrite)}, nil)
	addUser(t, n.st, "victim", "victim-secret1", []acl.Permission{perm("home/#", acl.OpReadWrite)}, nil)
	rc := n.mustConnect(t, connectOpts{username: "a+b", password: "wild-secret-12", clientID: "w", clean: true})
	if code := rc.subscribe("home/+/#")[0]; code <= 2 {
		t.Fatal("placeholder with '+' widened a subscription")
	}
}

func TestDeliveryCheckAndSYS(t *testing.T) {
	t.Parallel()
	n := startNode(t, nodeOpts{})
	addUser(t, n.st, "w", "writer-secret1", []acl.Permission{perm("#", acl.OpWrite)}, nil)
	addUser(t, n.st, "r", "reader-secret1", []acl.Permission{perm("a/#", acl.OpRead), perm("#", acl.OpRead)}, nil)
	r := n.mustConnect(t, connectOpts{username: "r", password: "reader-secret1", clientID: "r", clean: true})
	if code := r.subscribe("#")[0]; code > 2 {
		t.Fatalf("subscribe #: 0x%02x", code)
	}
	// '#' must not deliver $SYS topics (MQTT rule), although Mochi publishes them.
	r.noPublish(1500 * time.Millisecond)
}

func TestPublishPrefixAndAliases(t *testing.T) {
	t.Parallel()
	n := startNode(t, nodeOpts{})
	addUser(t, n.st, "line1", "line1-secret1", []acl.Permission{perm("plant1/#", acl.OpWrite)}, func(u *store.User) { u.MQTTPublishPrefix = "plant1/" })
	addUser(t, n.st, "obs", "observer-sec1", []acl.Permission{perm("#", acl.OpRead)}, nil)
	obs := n.mustConnect(t, connectOpts{username: "obs", password: "observer-sec1", clientID: "obs", clean: true})
	obs.subscribe("#")
	for _, v := range versions {
		pub := n.mustConnect(t, connectOpts{version: v, username: "line1", password: "line1-secret1", clientID: "line1-" + vname(v), clean: true})
		pub.publish("temp", 1, "21", 0)
		if got := obs.expect(packets.Publish, 3*time.Second); got.TopicName != "plant1/temp" {
			t.Fatalf("%s: subscriber saw %q, want plant1/temp", vname(v), got.TopicName)
		}
		pub.expect(packets.Puback, 3*time.Second)
	}
	// MQTT 5 topic alias: set alias 1 on "temp", then publish with the
	// alias only. Both are prefixed and checked.
	pub := n.mustConnect(t, connectOpts{version: 5, username: "line1", password: "line1-secret1", clientID: "alias", clean: true})
	pub.publish("temp", 0, "a", 1)
	pub.publish("", 0, "b", 1)
	for _, want := range []string{"a", "b"} {
		got := obs.expect(packets.Publish, 3*time.Second)
		if got.TopicName != "plant1/temp" || string(got.Payload) != want {
			t.Fatalf("alias publish delivered %q %q", got.TopicName, got.Payload)
		}
	}
	// A user without prefix but a narrow permission cannot slip a denied
	// topic through an alias.
	addUser(t, n.st, "narrow", "narrow-secret1", []acl.Permission{perm("ok", acl.OpWrite)}, nil)
	nw := n.mustConnect(t, connectOpts{version: 5, username: "narrow", password: "narrow-secret1", clientID: "narrow", clean: true})
	nw.publish("ok", 0, "fine", 2)
	if got := obs.expect(packets.Publish, 3*time.Second); got.TopicName != "ok" {
		t.Fatalf("got %q", got.TopicName)
	}
	nw.publish("forbidden", 0, "x", 3) // denied: alias 3 is not even set
	nw.publish("", 1, "x", 3)          // alias-only on a refused alias
	obs.noPublish(300 * time.Millisecond)
}

func TestWillTopicChecked(t *testing.T) {
	t.Parallel()
	n := startNode(t, nodeOpts{})
	addUser(t, n.st, "dev", "dev-secret-123", []acl.Permission{perm("plant1/dev/#", acl.OpWrite)}, func(u *store.User) { u.MQTTPublishPrefix = "plant1/" })
	addUser(t, n.st, "obs", "observer-sec1", []acl.Permission{perm("#", acl.OpRead)}, nil)
	for _, v := range versions {
		notAuth := map[byte]byte{4: 5, 5: 0x87}[v]
		if _, code := n.connect(t, connectOpts{version: v, username: "dev", password: "dev-secret-123", clientID: "w1", clean: true, willTopic: "outside/x"}); code != notAuth {
			t.Fatalf("%s: will on a forbidden topic: CONNACK 0x%02x, want 0x%02x", vname(v), code, notAuth)
		}
	}
	obs := n.mustConnect(t, connectOpts{username: "obs", password: "observer-sec1", clientID: "obs", clean: true})
	obs.subscribe("#")
	dev := n.mustConnect(t, connectOpts{username: "dev", password: "dev-secret-123", clientID: "w2", clean: true, willTopic: "dev/status"})
	_ = dev.c.Close() // abrupt: the will is sent, prefixed
	if got := obs.expect(packets.Publish, 3*time.Second); got.TopicName != "plant1/dev/status" {
		t.Fatalf("will delivered on %q", got.TopicName)
	}
}

func TestClientIDTakeoverAcrossUsers(t *testing.T) {
	t.Parallel()
	n := startNode(t, nodeOpts{})
	addUser(t, n.st, "alice", "alice-secret-1", []acl.Permission{perm("alice/#", acl.OpReadWrite)}, nil)
	addUser(t, n.st, "mallory", "mallory-secr1", []acl.Permission{perm("mallory/#", acl.OpReadWrite)}, nil)
	a := n.mustConnect(t, connectOpts{username: "alice", password: "alice-secret-1", clientID: "shared-id"})
	a.subscribe("alice/#")
	for _, v := range versions {
		want := map[byte]byte{4: 2, 5: 0x85}[v]
		if _, code := n.connect(t, connectOpts{version: v, username: "mallory", password: "mallory-secr1", clientID: "shared-id"}); code != want {
			t.Fatalf("%s: takeover of another user's client ID: CONNACK 0x%02x, want 0x%02x", vname(v), code, want)
		}
	}
	if err := a.ping(); err != nil {
		t.Fatalf("alice lost her connection: %v", err)
	}
	// alice's own reconnect takes over as usual.
	n.mustConnect(t, connectOpts{username: "alice", password: "alice-secret-1", clientID: "shared-id"})
	// Once alice is offline, mallory may use the ID but inherits nothing.
	_ = a.c.Close()
	b := n.mustConnect(t, connectOpts{username: "alice", password: "alice-secret-1", clientID: "shared-id"})
	b.write([]byte{0xe0, 0x00}) // clean DISCONNECT: the persistent session stays
	time.Sleep(100 * time.Millisecond)
	m := n.mustConnect(t, connectOpts{username: "mallory", password: "mallory-secr1", clientID: "shared-id"})
	addUser(t, n.st, "w", "writer-secret1", []acl.Permission{perm("#", acl.OpWrite)}, nil)
	w := n.mustConnect(t, connectOpts{username: "w", password: "writer-secret1", clientID: "w", clean: true})
	w.publish("alice/private", 0, "x", 0)
	m.noPublish(300 * time.Millisecond)
}

func TestLiveRevocation(t *testing.T) {
	n := startNode(t, nodeOpts{})
	ctx := context.Background()
	u := addUser(t, n.st, "dev", "dev-secret-123", []acl.Permission{perm("data/#", acl.OpRead), perm("other/#", acl.OpRead)}, nil)
	addUser(t, n.st, "w", "writer-secret1", []acl.Permission{perm("#", acl.OpWrite)}, nil)
	w := n.mustConnect(t, connectOpts{username: "w", password: "writer-secret1", clientID: "w", clean: true})
	dev := n.mustConnect(t, connectOpts{username: "dev", password: "dev-secret-123", clientID: "dev", clean: true})
	dev.subscribe("data/#")
	w.publish("data/1", 0, "before", 0)
	dev.expect(packets.Publish, 3*time.Second)

	// Remove the read permission: the next delivery is not sent.
	if _, err := n.st.UpdateRole(ctx, u.Roles[0], func(r *store.Role) error {
		r.Permissions = []acl.Permission{perm("other/#", acl.OpRead)}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 2*time.Second, "subscription pruned", func() bool {
		return n.broker.Server().Topics.Subscribers("data/1").Subscriptions["dev"].Filter == ""
	})
	w.publish("data/2", 0, "after", 0)
	dev.noPublish(300 * time.Millisecond)

	// Delete the user: disconnected within 1 s.
	start := time.Now()
	if err := n.st.DeleteUser(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	if !dev.closed(time.Second) {
		t.Fatal("deleted user's client still connected after 1 s")
	}
	t.Logf("disconnected %v after delete", time.Since(start))
}

func TestPasswordChangeInvalidatesCacheAndDisconnects(t *testing.T) {
	t.Parallel()
	n := startNode(t, nodeOpts{})
	u := addUser(t, n.st, "dev", "old-password-1", nil, nil)
	c := n.mustConnect(t, connectOpts{username: "dev", password: "old-password-1", clientID: "a", clean: true})
	h, _ := credentialHash("new-password-1")
	if _, err := n.st.UpdateUser(context.Background(), u.ID, func(u *store.User) error { u.PasswordHash = h; return nil }); err != nil {
		t.Fatal(err)
	}
	if !c.closed(2 * time.Second) {
		t.Fatal("client of a changed password stays connected")
	}
	if _, code := n.connect(t, connectOpts{username: "dev", password: "old-password-1", clientID: "b", clean: true}); code != 0x86 {
		t.Fatalf("old password after change: 0x%02x", code)
	}
	n.mustConnect(t, connectOpts{username: "dev", password: "new-password-1", clientID: "c", clean: true})
}

func TestTokenLogin(t *testing.T) {
	t.Parallel()
	n := startNode(t, nodeOpts{})
	ctx := context.Background()
	u := addUser(t, n.st, "svc", "svc-secret-123", []acl.Permission{perm("#", acl.OpRead)}, nil)
	tok, rec, err := n.tokens.Issue(ctx, u, "login", "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c := n.mustConnect(t, connectOpts{username: "svc", password: tok, clientID: "tok", clean: true})
	if _, code := n.connect(t, connectOpts{username: "other", password: tok, clientID: "tok2", clean: true}); code != 0x86 {
		t.Fatalf("token of svc used by another username: 0x%02x", code)
	}
	if err := n.tokens.Revoke(ctx, rec.ID); err != nil {
		t.Fatal(err)
	}
	if !c.closed(2 * time.Second) {
		t.Fatal("client stays connected after its token was revoked")
	}
	if _, code := n.connect(t, connectOpts{username: "svc", password: tok, clientID: "tok3", clean: true}); code != 0x86 {
		t.Fatalf("revoked token: 0x%02x", code)
	}
	short, _, err := n.tokens.Issue(ctx, u, "login", "", 1500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	s := n.mustConnect(t, connectOpts{username: "svc", password: short, clientID: "short", clean: true})
	if !s.closed(4 * time.Second) {
		t.Fatal("client stays connected after its token expired")
	}
}

func TestBruteForceLockout(t *testing.T) {
	t.Parallel()
	n := startNode(t, nodeOpts{tweak: func(o *authhook.Options) { o.MaxFailuresPerUser = 3; o.Backoff = time.Minute }})
	addUser(t, n.st, "dev", "dev-secret-123", nil, nil)
	for i := range 3 {
		if _, code := n.connect(t, connectOpts{username: "dev", password: fmt.Sprint("guess", i), clientID: "g", clean: true}); code != 0x86 {
			t.Fatalf("guess %d: 0x%02x", i, code)
		}
	}
	// The same answer as a wrong password: the lock tells nothing.
	if _, code := n.connect(t, connectOpts{username: "dev", password: "dev-secret-123", clientID: "g", clean: true}); code != 0x86 {
		t.Fatalf("right password during lockout: 0x%02x, want 0x86", code)
	}
}

func TestGrantTypesRequirePasswordAndCertificate(t *testing.T) {
	t.Parallel()
	n := startNode(t, nodeOpts{})
	addUser(t, n.st, "both", "both-secret-12", nil, func(u *store.User) {
		u.GrantTypes = []store.GrantType{{Method: store.GrantPassword, IsRequired: true}, {Method: store.GrantCertificate, IsRequired: true}}
	})
	// Over plain TCP there is no certificate: refused despite the right password.
	if _, code := n.connect(t, connectOpts{username: "both", password: "both-secret-12", clientID: "b", clean: true}); code != 0x87 {
		t.Fatalf("password only, certificate required: 0x%02x, want 0x87", code)
	}
}
